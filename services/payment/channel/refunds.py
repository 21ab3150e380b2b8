"""Refunds with stable numbers, and the "paid twice" resolution.

A refund's ``out_request_no`` is derived from the pay order it refunds, so
that any retry (a crash, a timeout, a second job run) asks the channel for
the same refund, which the channel performs at most once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from atx.shop.payment.channel.client import ChannelClient, RefundResult
from atx.shop.payment.channel.errors import UnknownChannelError

__all__ = [
    "DoublePaymentResolution",
    "Payment",
    "choose_kept",
    "refund_number",
    "refund_payment",
    "resolve_double_payment",
]

logger = logging.getLogger(__name__)


def refund_number(pay_order_id: str) -> str:
    """The one refund request number of a pay order."""
    return f"refund-{pay_order_id}"


def refund_payment(
    client: ChannelClient, pay_order_id: str, out_trade_no: str, amount: int
) -> RefundResult:
    """Refund the pay order in full, idempotently; safe to call again."""
    result = client.refund(out_trade_no, amount, refund_number(pay_order_id))
    logger.info(
        "refund of pay order %s at %s: fund_change=%s",
        pay_order_id,
        client.name,
        result.fund_change,
    )
    return result


@dataclass(frozen=True)
class Payment:
    """A successful payment of an order through one channel."""

    pay_order_id: str
    channel: str
    out_trade_no: str
    #: Minor units.
    amount: int
    paid_ms: int


@dataclass(frozen=True)
class DoublePaymentResolution:
    kept: Payment
    refunded: tuple[tuple[Payment, RefundResult], ...]


def choose_kept(payments: Sequence[Payment]) -> Payment:
    """The first successful payment (earliest, then lowest pay order id)."""
    return min(payments, key=lambda payment: (payment.paid_ms, payment.pay_order_id))


def resolve_double_payment(
    payments: Sequence[Payment],
    channels: Mapping[str, ChannelClient],
    kept: Payment | None = None,
) -> DoublePaymentResolution:
    """Keep one payment of an order (``kept``, else the first) and refund the
    others through their channels. Idempotent: call it again after any failure."""
    if not payments:
        raise ValueError("no payments to resolve")
    keep = kept or choose_kept(payments)
    refunded: list[tuple[Payment, RefundResult]] = []
    for payment in payments:
        if payment.pay_order_id == keep.pay_order_id:
            continue
        client = channels.get(payment.channel)
        if client is None:
            raise UnknownChannelError(payment.channel)
        result = refund_payment(client, payment.pay_order_id, payment.out_trade_no, payment.amount)
        refunded.append((payment, result))
    return DoublePaymentResolution(keep, tuple(refunded))
