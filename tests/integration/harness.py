"""Helpers for the multi-process shop tests: buying, waiting, looking into the DBs."""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

import atx.shop.common.errors  # noqa: F401  (registers the shop's error codes)
from atx.clock import now_ms
from atx.errors import AtxError, from_rpc_error
from atx.shop.common.db import Database
from atx.shop.payment.channel import protocol as p
from atx.shop.payment.channel.signing import load_or_create_keys, signed
from atx.shop.topology import CHANNEL_NAME, Shop
from atx.shop.v1 import chain_pb2, collectible_pb2, order_pb2, payment_channel_pb2, payment_pb2

T = TypeVar("T")


def wait_for(probe: Callable[[], T], what: str, timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    while True:
        value = probe()
        if value:
            if os.environ.get("ATX_TRACE_WAITS"):
                print(f"waited {time.monotonic() - start:.2f}s for {what}")
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def rpc(method: Callable[..., T], request: Any, timeout: float = 30.0) -> T:
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None


def collectible(shop: Shop, total: int, price: int = 1000) -> str:
    cid = f"c-{uuid.uuid4().hex[:8]}"
    rpc(
        shop.collectibles.CreateCollectible,
        collectible_pb2.CreateCollectibleRequest(
            collectible_id=cid, name=cid, price=price, total=total
        ),
    )
    return cid


def stock(shop: Shop, cid: str) -> int:
    reply = rpc(
        shop.collectibles.GetCollectible, collectible_pb2.GetCollectibleRequest(collectible_id=cid)
    )
    return int(reply.collectible.stock)


def order(shop: Shop, user: str, cid: str, quantity: int = 1) -> order_pb2.Order:
    reply: order_pb2.CreateOrderResponse = rpc(
        shop.orders.CreateOrder,
        order_pb2.CreateOrderRequest(user_id=user, collectible_id=cid, quantity=quantity),
    )
    return reply.order


def pay_order(shop: Shop, order_id: str) -> payment_pb2.PayOrder:
    reply: payment_pb2.CreatePayOrderResponse = rpc(
        shop.payments.CreatePayOrder,
        payment_pb2.CreatePayOrderRequest(order_id=order_id, channel=CHANNEL_NAME),
    )
    return reply.pay_order


def simulate_pay(shop: Shop, pay_order_id: str) -> None:
    rpc(
        shop.pay_channel.SimulatePay,
        payment_channel_pb2.SimulatePayRequest(out_trade_no=pay_order_id),
    )


def pay_state(shop: Shop, pay_order_id: str) -> str:
    reply = rpc(
        shop.payments.GetPayOrder, payment_pb2.GetPayOrderRequest(pay_order_id=pay_order_id)
    )
    return payment_pb2.PayOrderState.Name(reply.pay_order.state).removeprefix("PAY_ORDER_STATE_")


def order_state(shop: Shop, order_id: str) -> str:
    reply = rpc(shop.orders.GetOrder, order_pb2.GetOrderRequest(order_id=order_id))
    return order_pb2.OrderState.Name(reply.order.state).removeprefix("ORDER_STATE_")


def holdings(shop: Shop, order_id: str) -> list[collectible_pb2.Holding]:
    reply = rpc(
        shop.collectibles.ListHoldings, collectible_pb2.ListHoldingsRequest(order_id=order_id)
    )
    return list(reply.holdings)


def minted(shop: Shop, order_id: str) -> bool:
    found = holdings(shop, order_id)
    return bool(found) and all(h.state == collectible_pb2.HOLDING_STATE_MINTED for h in found)


def mints(shop: Shop, request_id: str = "") -> list[chain_pb2.MintRecord]:
    return list(rpc(shop.chain.ListMints, chain_pb2.ListMintsRequest(request_id=request_id)).mints)


def set_chain(shop: Shop, available: bool) -> None:
    rpc(shop.chain.SetAvailability, chain_pb2.SetAvailabilityRequest(available=available))


def db(shop: Shop, service: str) -> Database:
    return Database(shop.config.db(service), service)


def snapshot(shop: Shop) -> dict[str, list[tuple[Any, ...]]]:
    """Every business row of the three transactional databases, plus chain mints."""
    tables = {
        "order": ["SELECT order_id, state, pay_order_id FROM orders ORDER BY order_id"],
        "collectible": [
            "SELECT collectible_id, stock FROM collectibles ORDER BY collectible_id",
            "SELECT order_id, state FROM reservations ORDER BY order_id",
            "SELECT holding_id, state FROM holdings ORDER BY holding_id",
        ],
        "payment": [
            "SELECT pay_order_id, state, channel_trade_no FROM pay_orders ORDER BY pay_order_id",
            "SELECT notify_id FROM pay_notifications ORDER BY notify_id",
            "SELECT id, state FROM atx_outbox ORDER BY id",
        ],
        "chain": ["SELECT request_id FROM chain_mints ORDER BY request_id"],
    }
    return {sql: db(shop, service).query(sql) for service, sqls in tables.items() for sql in sqls}


def outbox_rows(shop: Shop) -> list[tuple[Any, ...]]:
    return db(shop, "payment").query("SELECT request_id, state, attempts FROM atx_outbox")


def notify_answers(shop: Shop, pay_order_id: str) -> list[str]:
    """What the payment service answered each delivery of the channel's notifications."""
    connection = sqlite3.connect(shop.config.directory / "channel.db", timeout=10)
    try:
        rows = connection.execute(
            "SELECT a.answer FROM notify_attempts a JOIN notifications n"
            " ON a.notify_id = n.notify_id WHERE n.out_trade_no = ? ORDER BY a.at_ms",
            (pay_order_id,),
        ).fetchall()
    finally:
        connection.close()
    return [str(r[0]) for r in rows]


def notification(
    shop: Shop, pay: payment_pb2.PayOrder, amount: int | None = None, key: Any = None
) -> dict[str, str]:
    """A notification signed like the channel's (or with ``key``)."""
    keys = load_or_create_keys(shop.config.directory / "keys", CHANNEL_NAME)
    now = now_ms()
    params = {
        "notify_id": uuid.uuid4().hex,
        "notify_time": p.format_time(now),
        "notify_type": "trade_status_sync",
        "app_id": p.DEFAULT_APP_ID,
        "seller_id": p.DEFAULT_SELLER_ID,
        "trade_no": f"T{uuid.uuid4().int % 10**18}",
        "out_trade_no": pay.pay_order_id,
        "trade_status": p.TRADE_SUCCESS,
        "total_amount": p.format_amount(pay.amount if amount is None else amount),
        "gmt_payment": p.format_time(now),
    }
    return signed(params, key or keys.platform_private)


def notify(shop: Shop, params: dict[str, str]) -> str:
    reply = rpc(
        shop.payments.HandleNotification,
        payment_pb2.HandleNotificationRequest(channel=CHANNEL_NAME, params=params),
    )
    return str(reply.ack)


def try_order(shop: Shop, user: str, cid: str, retries: int = 20) -> str:
    """Order, retrying lock conflicts; returns the order id, or the error code."""
    for _ in range(retries):
        try:
            return order(shop, user, cid).order_id
        except AtxError as error:
            if error.code == "SHOP_SOLD_OUT":
                return error.code
            if error.retryable or error.code in ("LOCK_CONFLICT", "RM_GLOBAL_LOCK_WAIT_TIMEOUT"):
                time.sleep(0.05)
                continue
            return error.code
    return "GAVE_UP"
