"""The bodies of the payment service's two scheduled jobs.

* :func:`compensate`: pending pay orders older than a threshold are queried
  at their channel (a missed notification) and processed.
* :func:`close_expired`: unpaid pay orders past our deadline are closed at
  the channel, then queried: closed there means close here; paid at the
  last moment means fulfil if we still can, else refund.

The payment service supplies its database and its success processing
through two small protocols; run the bodies with :class:`JobRunner`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from atx import clock
from atx.errors import AtxError
from atx.shop.payment.channel import protocol as p
from atx.shop.payment.channel.client import ChannelClient, RefundResult, TradeInfo
from atx.shop.payment.channel.errors import TradeNotFoundError, TradeStatusError
from atx.shop.payment.channel.refunds import refund_payment

__all__ = [
    "PayOrderRef",
    "PayOrderRepository",
    "PaymentActions",
    "close_expired",
    "compensate",
    "reconcile",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PayOrderRef:
    """What the jobs need of a pending pay order."""

    pay_order_id: str
    order_id: str
    channel: str
    #: Minor units.
    amount: int
    created_ms: int
    #: Our deadline (the channel got an earlier one).
    expire_ms: int
    #: The channel's out_trade_no; the pay order id unless set.
    out_trade_no: str = ""

    @property
    def trade_ref(self) -> str:
        return self.out_trade_no or self.pay_order_id


class PayOrderRepository(Protocol):
    """Reads of the payment service's database."""

    def pending_older_than(self, age_ms: int, now_ms: int) -> Sequence[PayOrderRef]:
        """PENDING pay orders created before ``now_ms - age_ms``."""
        ...

    def expired_unpaid(self, now_ms: int) -> Sequence[PayOrderRef]:
        """PENDING pay orders whose ``expire_ms`` is at or before ``now_ms``."""
        ...


class PaymentActions(Protocol):
    """The payment service's state changes; each must be idempotent (check the
    pay order's state under a row lock), since a notification may race a job."""

    def settle(self, pay_order: PayOrderRef, trade: TradeInfo) -> bool:
        """Run the success processing (one global transaction). False when the
        order can no longer be fulfilled (closed, stock gone): the job refunds."""
        ...

    def close(self, pay_order: PayOrderRef) -> None:
        """Close the pay order and its order, returning the reserved stock
        (one global transaction)."""
        ...

    def refunded(self, pay_order: PayOrderRef, refund: RefundResult) -> None:
        """Record that the pay order's payment was refunded."""
        ...


def _settle_or_refund(
    pay_order: PayOrderRef, trade: TradeInfo, client: ChannelClient, actions: PaymentActions
) -> None:
    if actions.settle(pay_order, trade):
        return
    logger.info("pay order %s was paid but cannot be fulfilled: refund", pay_order.pay_order_id)
    result = refund_payment(client, pay_order.pay_order_id, pay_order.trade_ref, trade.total_amount)
    actions.refunded(pay_order, result)


def _apply(
    pay_order: PayOrderRef, trade: TradeInfo | None, client: ChannelClient, actions: PaymentActions
) -> bool:
    """Act on what the channel says; True if something was processed."""
    if trade is not None and trade.trade_status in p.PAID_STATUSES:
        _settle_or_refund(pay_order, trade, client, actions)
        return True
    if trade is not None and trade.trade_status == p.TRADE_CLOSED and trade.refunded_amount:
        # Our refund went through but was not recorded: ask again (no money moves).
        ref = pay_order.trade_ref
        result = refund_payment(client, pay_order.pay_order_id, ref, trade.refunded_amount)
        actions.refunded(pay_order, result)
        return True
    if trade is None or trade.trade_status == p.TRADE_CLOSED:
        actions.close(pay_order)
        return True
    return False


def reconcile(pay_order: PayOrderRef, client: ChannelClient, actions: PaymentActions) -> bool:
    """Query the channel now and act on its answer (a TRADE_CLOSED notification
    is never trusted blindly: a payment may have raced the channel's close).
    True if something was processed; raises when the channel cannot tell."""
    return _apply(pay_order, client.query(pay_order.trade_ref), client, actions)


def compensate(
    repo: PayOrderRepository,
    actions: PaymentActions,
    channels: Mapping[str, ChannelClient],
    *,
    older_than_ms: int,
    now_ms: int | None = None,
) -> int:
    """Query the channel for pending pay orders older than ``older_than_ms``:
    paid → success processing (or refund); closed at the channel → close here.
    A trade the channel does not know is left to the timeout job."""
    now = clock.now_ms() if now_ms is None else now_ms
    processed = 0
    for pay_order in repo.pending_older_than(older_than_ms, now):
        client = channels.get(pay_order.channel)
        if client is None:
            logger.warning("pay order %s: no channel %r", pay_order.pay_order_id, pay_order.channel)
            continue
        try:
            trade = client.query(pay_order.trade_ref)
            if _apply(pay_order, trade, client, actions):
                processed += 1
        except TradeNotFoundError:
            continue
        except AtxError as error:  # the channel is down, or one order failed: next run
            logger.warning("compensation of pay order %s: %s", pay_order.pay_order_id, error)
        except Exception:  # one pay order must not stop the others; next run retries
            logger.exception("compensation of pay order %s failed", pay_order.pay_order_id)
    return processed


def close_expired(
    repo: PayOrderRepository,
    actions: PaymentActions,
    channels: Mapping[str, ChannelClient],
    *,
    now_ms: int | None = None,
) -> int:
    """Close unpaid pay orders past our deadline: at the channel first, then
    query it; a payment that raced the close is fulfilled or refunded."""
    now = clock.now_ms() if now_ms is None else now_ms
    processed = 0
    for pay_order in repo.expired_unpaid(now):
        client = channels.get(pay_order.channel)
        if client is None:
            logger.warning("pay order %s: no channel %r", pay_order.pay_order_id, pay_order.channel)
            continue
        try:
            # Refused when paid at the last moment or never created: the query tells.
            with contextlib.suppress(TradeStatusError, TradeNotFoundError):
                client.close_trade(pay_order.trade_ref)
            try:
                trade: TradeInfo | None = client.query(pay_order.trade_ref)
            except TradeNotFoundError:
                trade = None
            if _apply(pay_order, trade, client, actions):
                processed += 1
        except AtxError as error:  # e.g. the channel is down: never close one side only
            logger.warning("timeout close of pay order %s: %s", pay_order.pay_order_id, error)
        except Exception:
            logger.exception("timeout close of pay order %s failed", pay_order.pay_order_id)
    return processed
