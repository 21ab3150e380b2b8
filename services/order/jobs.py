"""The order service's scheduled job ``order_timeout_close``.

An order that never got a pay order would stay CREATED forever, its stock
reserved: nothing else acts on its deadline. This job closes such orders
(order CLOSED, reservation released: one global transaction, CloseOrder's).

It never closes an order whose payment may be in flight. Deadlines are
ordered channel < pay order <= order (CreatePayOrder clamps the pay order's
to the order's and refuses an expired order), and an order is closed only

* when it is CREATED and its deadline passed ``grace`` ago, and
* when the payment service (ListPayOrders) reports every pay order of it
  CLOSED or REFUNDED, or none at all.

An open (PENDING / ABANDONED) or SUCCESS pay order is left to the payment
service: its timeout job, or the channel's TRADE_CLOSED callback, closes the
pay order and the order together after asking the channel; a payment that
raced is fulfilled. If the payment service cannot be asked, nothing is closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from atx.clock import now_ms
from atx.errors import AtxError
from atx.shop.common.db import Database
from atx.shop.common.rpc import call
from atx.shop.common.server import client_channel
from atx.shop.v1 import payment_pb2, payment_pb2_grpc

__all__ = ["ORDER_TIMEOUT_CLOSE_JOB", "OrderTimeoutClose"]

logger = logging.getLogger(__name__)

ORDER_TIMEOUT_CLOSE_JOB = "order_timeout_close"
#: Pay order states that no longer hold the order.
_FINISHED = frozenset({payment_pb2.PAY_ORDER_STATE_CLOSED, payment_pb2.PAY_ORDER_STATE_REFUNDED})


class OrderTimeoutClose:
    """The job body: closes expired orders no pay order holds; returns how many."""

    def __init__(
        self,
        db: Database,
        payment_address: str,
        close: Callable[[str, str], object],
        *,
        grace_s: float = 30.0,
        batch: int = 100,
    ) -> None:
        self.db = db
        self.payments = payment_pb2_grpc.PaymentServiceStub(client_channel(payment_address))
        self.close = close
        self.grace_ms = int(grace_s * 1000)
        self.batch = batch

    def held_by_payment(self, order_id: str) -> bool:
        reply = call(
            self.payments.ListPayOrders, payment_pb2.ListPayOrdersRequest(order_id=order_id)
        )
        return any(pay.state not in _FINISHED for pay in reply.pay_orders)

    def __call__(self) -> int:
        now = now_ms()
        rows = self.db.query(
            "SELECT order_id FROM orders WHERE state = ? AND expire_at <= ?"
            f" ORDER BY expire_at LIMIT {int(self.batch)}",
            ("CREATED", now - self.grace_ms),
        )
        closed = 0
        for (order_id,) in rows:
            try:
                if self.held_by_payment(str(order_id)):
                    logger.info("order %s expired but a pay order holds it: left", order_id)
                    continue
                self.close(str(order_id), "order timed out unpaid")
                closed += 1
            except AtxError as error:  # payment service down, lock conflict: next run
                logger.warning("timeout close of order %s: %s", order_id, error)
            except Exception:
                logger.exception("timeout close of order %s failed", order_id)
        return closed
