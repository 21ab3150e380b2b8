"""Helpers for the payment-robustness tests: channels by name, jobs, the
simulators' own databases (refunds, notifications, trades)."""

from __future__ import annotations

import sqlite3
from typing import Any

from atx.shop.topology import CHANNEL_NAME, Shop
from atx.shop.v1 import order_pb2, payment_channel_pb2, payment_pb2
from tests.integration import harness as h

__all__ = [
    "channel_db",
    "channel_refunds",
    "channel_rows",
    "close_order",
    "list_channels",
    "notify_answers_at",
    "pay_order_at",
    "run_job",
    "set_faults",
    "trade_status",
]


def channel_db(shop: Shop, channel: str) -> str:
    name = "channel" if channel == CHANNEL_NAME else f"channel-{channel}"
    return str(shop.config.directory / f"{name}.db")


def channel_rows(shop: Shop, channel: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    connection = sqlite3.connect(channel_db(shop, channel), timeout=10)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def channel_refunds(shop: Shop, channel: str) -> list[tuple[str, str, str]]:
    """(out_request_no, out_trade_no, refund_amount) of every refund the channel made."""
    rows = channel_rows(
        shop, channel, "SELECT out_request_no, out_trade_no, refund_amount FROM refunds"
    )
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def trade_status(shop: Shop, channel: str, out_trade_no: str) -> str:
    rows = channel_rows(
        shop, channel, "SELECT status FROM trades WHERE out_trade_no = ?", (out_trade_no,)
    )
    return str(rows[0][0]) if rows else ""


def notify_answers_at(shop: Shop, channel: str, pay_order_id: str) -> list[str]:
    rows = channel_rows(
        shop,
        channel,
        "SELECT a.answer FROM notify_attempts a JOIN notifications n"
        " ON a.notify_id = n.notify_id WHERE n.out_trade_no = ? ORDER BY a.at_ms",
        (pay_order_id,),
    )
    return [str(r[0]) for r in rows]


def set_faults(
    shop: Shop,
    channel: str = CHANNEL_NAME,
    failure_rate: float = 0.0,
    latency_ms: int = 0,
    drop_notifications: bool = False,
) -> None:
    h.rpc(
        shop.channel_at(channel).SetFaults,
        payment_channel_pb2.SetFaultsRequest(
            failure_rate=failure_rate,
            latency_ms=latency_ms,
            drop_notifications=drop_notifications,
        ),
    )


def list_channels(shop: Shop, user: str, process: str = "payment") -> list[str]:
    reply = h.rpc(
        shop.payment_at(process).ListChannels, payment_pb2.ListChannelsRequest(user_id=user)
    )
    return [c.name for c in reply.channels]


def pay_order_at(
    shop: Shop, order_id: str, channel: str, process: str = "payment"
) -> payment_pb2.PayOrder:
    reply: payment_pb2.CreatePayOrderResponse = h.rpc(
        shop.payment_at(process).CreatePayOrder,
        payment_pb2.CreatePayOrderRequest(order_id=order_id, channel=channel),
    )
    return reply.pay_order


def run_job(shop: Shop, job: str, process: str = "payment") -> payment_pb2.RunJobResponse:
    reply: payment_pb2.RunJobResponse = h.rpc(
        shop.payment_at(process).RunJob, payment_pb2.RunJobRequest(job=job), timeout=60
    )
    return reply


def close_order(shop: Shop, order_id: str) -> None:
    h.rpc(shop.orders.CloseOrder, order_pb2.CloseOrderRequest(order_id=order_id))
