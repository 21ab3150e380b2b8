"""Fulfil or refund a paid pay order, close an expired one: the payment
service's side of the recovery jobs (PAYMENT-GUARDS' ``compensate`` and
``close_expired`` call it through ``PayOrderRepository``/``PaymentActions``).

Every path that learns "the channel says paid" (notification, active query,
compensation, timeout close) goes through :meth:`Fulfilment.fulfil`:

* the success processing settles it (one global transaction), or finds it
  already settled (a duplicate: nothing changes);
* if it can no longer be fulfilled (our pay order CLOSED, the order closed,
  or the order paid through another pay order: paid twice) the payment is
  refunded through its channel with the stable number ``refund-<pay order>``,
  so a retry never refunds twice, and the pay order becomes REFUNDED.

State changes go through rm proxies inside global transactions, so they
respect the AT global locks of a settlement in flight.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from typing import Any

import atx.rm as rm
from atx.clock import now_ms
from atx.errors import NotFoundError
from atx.shop.common.db import Database, execute
from atx.shop.common.errors import InvalidStateError, SettlementInProgressError
from atx.shop.common.rpc import call
from atx.shop.common.server import client_channel
from atx.shop.payment.channel.client import RefundResult, TradeInfo
from atx.shop.payment.channel.recovery import PayOrderRef, reconcile
from atx.shop.payment.channel.refunds import refund_number, refund_payment
from atx.shop.payment.channels import StreamRegistry
from atx.shop.payment.processing import SuccessProcessor
from atx.shop.v1 import order_pb2, order_pb2_grpc

__all__ = ["Fulfilment", "Outcome", "PayOrderStore"]

logger = logging.getLogger(__name__)

_OPEN = ("PENDING", "ABANDONED")
_REF_COLUMNS = "pay_order_id, order_id, channel, amount, created_at, expire_at"


class Outcome(enum.StrEnum):
    SETTLED = "SETTLED"
    DUPLICATE = "DUPLICATE"
    REFUNDED = "REFUNDED"


def _ref(row: Sequence[Any]) -> PayOrderRef:
    return PayOrderRef(str(row[0]), str(row[1]), str(row[2]), int(row[3]), int(row[4]), int(row[5]))


class PayOrderStore:
    """PayOrderRepository over the payment database (open = PENDING or ABANDONED)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def pending_older_than(self, age_ms: int, now_ms: int) -> Sequence[PayOrderRef]:
        rows = self.db.query(
            f"SELECT {_REF_COLUMNS} FROM pay_orders WHERE state IN (?, ?) AND created_at <= ?"
            " ORDER BY created_at",
            (*_OPEN, now_ms - age_ms),
        )
        return [_ref(row) for row in rows]

    def expired_unpaid(self, now_ms: int) -> Sequence[PayOrderRef]:
        rows = self.db.query(
            f"SELECT {_REF_COLUMNS} FROM pay_orders WHERE state IN (?, ?) AND expire_at <= ?"
            " ORDER BY expire_at",
            (*_OPEN, now_ms),
        )
        return [_ref(row) for row in rows]


class Fulfilment:
    """PaymentActions of the payment service, plus the fulfil-or-refund entry point."""

    def __init__(
        self,
        db: Database,
        processor: SuccessProcessor,
        channels: StreamRegistry,
        order_address: str,
        tx_timeout: float = 30.0,
    ) -> None:
        self.db = db
        self.processor = processor
        self.channels = channels
        self.orders = order_pb2_grpc.OrderServiceStub(client_channel(order_address))
        self.tx_timeout = tx_timeout

    def _row(self, pay_order_id: str) -> tuple[Any, ...]:
        rows = self.db.query(
            "SELECT pay_order_id, order_id, channel, amount, state FROM pay_orders"
            " WHERE pay_order_id = ?",
            (pay_order_id,),
        )
        if not rows:
            raise NotFoundError(f"no pay order {pay_order_id!r}", pay_order_id=pay_order_id)
        return rows[0]

    def _unfulfillable(self, row: tuple[Any, ...]) -> str:
        """Why this paid pay order can no longer be fulfilled ('' if it can)."""
        if row[4] in ("CLOSED", "REFUNDED"):
            return f"pay order {row[4]}"
        order = call(self.orders.GetOrder, order_pb2.GetOrderRequest(order_id=str(row[1]))).order
        if order.state == order_pb2.ORDER_STATE_CLOSED:
            return "order closed"
        if order.state != order_pb2.ORDER_STATE_CREATED and order.pay_order_id != row[0]:
            return f"order paid through {order.pay_order_id}"
        return ""

    def fulfil(
        self,
        pay_order_id: str,
        trade_no: str,
        paid_ms: int,
        notify_id: str = "",
        status: str = "",
    ) -> Outcome:
        """The channel says ``pay_order_id`` is paid: settle it, or refund it.

        Raises when neither is possible now (TC down, settlement in flight):
        the caller answers "fail" / the job retries on its next run.
        """
        row = self._row(pay_order_id)
        if row[4] == "REFUNDED":
            return Outcome.REFUNDED
        reason = "" if row[4] == "SUCCESS" else self._unfulfillable(row)
        if not reason:
            try:
                settlement = self.processor.settle(
                    pay_order_id, trade_no, paid_ms, notify_id=notify_id, status=status
                )
            except InvalidStateError:
                # Lost a race (closed meanwhile, or paid twice): look again.
                reason = self._unfulfillable(self._row(pay_order_id))
                if not reason:
                    raise
            else:
                return Outcome.SETTLED if settlement.processed else Outcome.DUPLICATE
        self.refund(row, trade_no, paid_ms, reason)
        return Outcome.REFUNDED

    def refund(
        self, row: tuple[Any, ...], trade_no: str, paid_ms: int, reason: str
    ) -> RefundResult:
        """Refund the pay order in full at its channel, once, and mark it REFUNDED."""
        pay_order_id, channel, amount = str(row[0]), str(row[2]), int(row[3])
        number = refund_number(pay_order_id)
        logger.warning("pay order %s paid but %s: refunding as %s", pay_order_id, reason, number)
        with self.db.transaction(proxy=False) as connection:
            cursor = execute(
                connection, self.db, "SELECT state FROM pay_refunds WHERE refund_no = ?", (number,)
            )
            exists = cursor.fetchone() is not None
            cursor.close()
            if not exists:
                execute(
                    connection,
                    self.db,
                    "INSERT INTO pay_refunds VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        number,
                        pay_order_id,
                        channel,
                        amount,
                        reason[:200],
                        "PENDING",
                        now_ms(),
                        now_ms(),
                    ),
                ).close()
        result = refund_payment(self.channels.get(channel), pay_order_id, pay_order_id, amount)
        self._mark_refunded(pay_order_id, trade_no, paid_ms)
        with self.db.transaction(proxy=False) as connection:
            execute(
                connection,
                self.db,
                "UPDATE pay_refunds SET state = ?, updated_at = ? WHERE refund_no = ?",
                ("DONE", now_ms(), number),
            ).close()
        return result

    def _mark_refunded(self, pay_order_id: str, trade_no: str, paid_ms: int) -> None:
        with (
            rm.global_transaction("pay_refunded", timeout=self.tx_timeout) as tx,
            self.db.transaction() as connection,
        ):
            cursor = execute(
                connection,
                self.db,
                "UPDATE pay_orders SET state = ?, channel_trade_no = ?, paid_at = ?,"
                " updated_at = ? WHERE pay_order_id = ? AND state IN (?, ?, ?)",
                ("REFUNDED", trade_no, paid_ms, now_ms(), pay_order_id, *_OPEN, "CLOSED"),
            )
            updated = cursor.rowcount
            cursor.close()
        if updated != 1:
            state = str(self._row(pay_order_id)[4])
            if state != "REFUNDED":
                # A settlement of this very pay order still in flight: try again later.
                raise SettlementInProgressError(pay_order_id, tx.xid or "", state)
        logger.info("pay order %s REFUNDED (%s)", pay_order_id, tx.xid, extra={"xid": tx.xid})

    # --- PaymentActions -----------------------------------------------------------

    def settle(self, pay_order: PayOrderRef, trade: TradeInfo) -> bool:
        if trade.total_amount != pay_order.amount:
            logger.error(
                "pay order %s: channel amount %d differs from ours %d; left for an operator",
                pay_order.pay_order_id,
                trade.total_amount,
                pay_order.amount,
            )
            return True
        self.fulfil(pay_order.pay_order_id, trade.trade_no, trade.paid_time_ms or now_ms())
        return True  # settled, or refunded here

    def close(self, pay_order: PayOrderRef) -> None:
        """Close the pay order and, when no other pay order of it is open, the order
        with its reserved stock: one global transaction."""
        with rm.global_transaction("pay_timeout_close", timeout=self.tx_timeout) as tx:
            xid = tx.xid or ""
            with self.db.transaction() as connection:
                cursor = execute(
                    connection,
                    self.db,
                    "UPDATE pay_orders SET state = ?, updated_at = ? WHERE pay_order_id = ?"
                    " AND state IN (?, ?)",
                    ("CLOSED", now_ms(), pay_order.pay_order_id, *_OPEN),
                )
                updated = cursor.rowcount
                cursor.close()
                if updated != 1:
                    return
                cursor = execute(
                    connection,
                    self.db,
                    "SELECT COUNT(*) FROM pay_orders WHERE order_id = ? AND pay_order_id <> ?"
                    " AND state IN (?, ?, ?)",
                    (pay_order.order_id, pay_order.pay_order_id, *_OPEN, "SUCCESS"),
                )
                others = int(cursor.fetchone()[0])
                cursor.close()
            if not others:
                order = call(
                    self.orders.GetOrder, order_pb2.GetOrderRequest(order_id=pay_order.order_id)
                ).order
                if order.state == order_pb2.ORDER_STATE_CREATED:
                    call(
                        self.orders.CloseOrder,
                        order_pb2.CloseOrderRequest(
                            order_id=pay_order.order_id, reason="pay order timed out"
                        ),
                    )
        logger.info(
            "pay order %s CLOSED (timeout) in %s", pay_order.pay_order_id, xid, extra={"xid": xid}
        )

    def reconcile(self, pay_order_id: str) -> str:
        """The channel notified TRADE_CLOSED: confirm with a query, then close
        (pay order and order with its stock, one global transaction), or fulfil
        or refund a payment that raced the close. Idempotent."""
        rows = self.db.query(
            f"SELECT {_REF_COLUMNS}, state FROM pay_orders WHERE pay_order_id = ?",
            (pay_order_id,),
        )
        if not rows:
            raise NotFoundError(f"no pay order {pay_order_id!r}", pay_order_id=pay_order_id)
        if rows[0][6] not in _OPEN:
            return f"already {rows[0][6]}"
        ref = _ref(rows[0])
        processed = reconcile(ref, self.channels.get(ref.channel), self)
        return f"now {self._row(pay_order_id)[4]}" if processed else "still open at the channel"

    def refunded(self, pay_order: PayOrderRef, refund: RefundResult) -> None:
        self._mark_refunded(pay_order.pay_order_id, "", 0)
