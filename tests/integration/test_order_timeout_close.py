"""Timeout close, the two paths the payment job alone does not cover (issue 6,
item 5), end to end with every service a separate process:

* the order service's ``order_timeout_close`` job closes an expired order no
  pay order holds, and leaves one whose payment may be in flight to the
  payment service (SQLite without Redis: the job lock in the order DB;
  MariaDB with Redis);
* the channel's own expiry (its deadline is earlier) calls us back with
  TRADE_CLOSED: we query, then close both ends with the stock, or fulfil a
  payment that raced the close.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from atx.clock import now_ms
from atx.errors import AtxError
from atx.hooks.outbox import STATE_DONE
from atx.shop.order.jobs import ORDER_TIMEOUT_CLOSE_JOB
from atx.shop.payment.channel import protocol as p
from atx.shop.payment.channel.signing import load_or_create_keys, signed
from atx.shop.topology import CHANNEL_NAME, Shop
from atx.shop.v1 import order_pb2, payment_pb2
from tests.integration import harness as h
from tests.integration import robustness as r
from tests.integration.conftest import ShopFactory

pytestmark = pytest.mark.slow

ON_DEMAND = ["--compensation-interval-s", "0", "--timeout-close-interval-s", "0"]


def _run_order_job(shop: Shop) -> order_pb2.OrderServiceRunJobResponse:
    reply: order_pb2.OrderServiceRunJobResponse = h.rpc(
        shop.orders.RunJob, order_pb2.OrderServiceRunJobRequest(job=ORDER_TIMEOUT_CLOSE_JOB)
    )
    return reply


def test_order_timeout_close_job(
    shop_factory: ShopFactory, backend: str, request: pytest.FixtureRequest
) -> None:
    redis_url = str(request.getfixturevalue("redis_url")) if backend == "mariadb" else ""
    shop = shop_factory(
        redis_url=redis_url,
        order_args=["--order-ttl-s", "3", "--close-grace-s", "0", "--close-interval-s", "0"],
        payment_args=ON_DEMAND,
    )
    cid = h.collectible(shop, total=10)
    never_paid = h.order(shop, "ann", cid)
    # Notifications dropped: the pay orders below stay open here after the deadlines.
    r.set_faults(shop, drop_notifications=True)
    unpaid = h.order(shop, "bob", cid)
    unpaid_pay = h.pay_order(shop, unpaid.order_id)
    # Deadlines: channel < pay order <= order.
    assert unpaid_pay.expire_time_ms <= unpaid.expire_time_ms
    racing = h.order(shop, "cy", cid)
    racing_pay = h.pay_order(shop, racing.order_id)
    h.simulate_pay(shop, racing_pay.pay_order_id)  # paid; we have not heard
    assert h.stock(shop, cid) == 7
    deadline = max(o.expire_time_ms for o in (never_paid, unpaid, racing))
    time.sleep(max(0.0, (deadline - now_ms()) / 1000) + 0.2)

    # Too late to start paying an expired order.
    with pytest.raises(AtxError) as refused:
        h.pay_order(shop, never_paid.order_id)
    assert refused.value.code == "SHOP_INVALID_STATE"

    # The order job closes only the order no pay order holds, with its stock.
    run = _run_order_job(shop)
    assert run.ran and run.processed == 1
    assert h.order_state(shop, never_paid.order_id) == "CLOSED"
    assert h.stock(shop, cid) == 8
    for held in (unpaid, racing):
        assert h.order_state(shop, held.order_id) == "CREATED"
    assert _run_order_job(shop).processed == 0

    # The payment job settles the held ones: one closed at both ends, one fulfilled.
    run_pay = r.run_job(shop, "timeout_close")
    assert run_pay.ran and run_pay.processed == 2
    assert h.pay_state(shop, unpaid_pay.pay_order_id) == "CLOSED"
    assert h.order_state(shop, unpaid.order_id) == "CLOSED"
    assert r.trade_status(shop, CHANNEL_NAME, unpaid_pay.pay_order_id) == p.TRADE_CLOSED
    assert h.pay_state(shop, racing_pay.pay_order_id) == "SUCCESS"
    h.wait_for(lambda: h.minted(shop, racing.order_id), "the racing payment fulfilled")
    assert r.channel_refunds(shop, CHANNEL_NAME) == []
    assert h.stock(shop, cid) == 9  # ann's and bob's back, cy's sold

    # An order not yet expired is left alone.
    fresh = h.order(shop, "dee", cid)
    run = _run_order_job(shop)
    if now_ms() < fresh.expire_time_ms:  # the run certainly began before its deadline
        assert run.processed == 0
        assert h.order_state(shop, fresh.order_id) == "CREATED"


def _notification(shop: Shop, pay: payment_pb2.PayOrder, key: Any = None) -> dict[str, str]:
    """A TRADE_CLOSED notification signed like the channel's (or with ``key``)."""
    keys = load_or_create_keys(shop.config.directory / "keys", CHANNEL_NAME)
    params = h.notification(shop, pay)
    params = {k: v for k, v in params.items() if k not in ("sign", "sign_type", "gmt_payment")}
    params["trade_status"] = p.TRADE_CLOSED
    return signed(params, key or keys.platform_private)


@pytest.mark.parametrize("backend", ["mariadb"])
def test_trade_closed_notification_closes_after_a_query(
    shop_factory: ShopFactory, redis_url: str, tmp_path: Path
) -> None:
    release_fault = tmp_path / "release-fault"
    shop = shop_factory(
        redis_url=redis_url,
        # The channel expires 3 s after a pay order is created; our deadline 3 s later.
        payment_args=["--pay-ttl-s", "6", "--channel-margin-s", "3", *ON_DEMAND],
        env={"collectible": {"ATX_FAULT_RELEASE_RESERVATION": f"file:{release_fault}"}},
    )
    cid = h.collectible(shop, total=10)

    # The channel expires first and calls us back: closed here, order closed, stock back.
    unpaid = h.order(shop, "ann", cid)
    pay = h.pay_order(shop, unpaid.order_id)
    assert pay.expire_time_ms - pay.created_time_ms == 6000
    # Branches of one global transaction commit locally one after another in
    # phase one: wait for all of it rather than read one part and assume the rest.
    h.wait_for(
        lambda: (
            (
                r.notify_answers_at(shop, CHANNEL_NAME, pay.pay_order_id),
                h.order_state(shop, unpaid.order_id),
                h.pay_state(shop, pay.pay_order_id),
                h.stock(shop, cid),
            )
            == (["success"], "CLOSED", "CLOSED", 10)
        ),
        "the TRADE_CLOSED notification acknowledged, order and pay order closed, stock back",
    )

    # One global transaction: a failing stock release leaves both open; the
    # notification is refused, and its retry closes both.
    release_fault.touch()
    stuck = h.order(shop, "bob", cid)
    stuck_pay = h.pay_order(shop, stuck.order_id)
    h.wait_for(
        lambda: "fail" in r.notify_answers_at(shop, CHANNEL_NAME, stuck_pay.pay_order_id),
        "the TRADE_CLOSED notification refused",
    )
    assert h.pay_state(shop, stuck_pay.pay_order_id) == "PENDING"
    assert h.order_state(shop, stuck.order_id) == "CREATED"
    assert h.stock(shop, cid) == 9
    release_fault.unlink()
    h.wait_for(
        lambda: (
            (
                h.order_state(shop, stuck.order_id),
                h.pay_state(shop, stuck_pay.pay_order_id),
                h.stock(shop, cid),
            )
            == ("CLOSED", "CLOSED", 10)
        ),
        "the retry closing it",
    )

    # A close is never trusted blindly (within the channel's 3 s). Forged:
    # refused. Genuine but the channel says the trade is still open: nothing closed.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    r.set_faults(shop, drop_notifications=True)
    racing = h.order(shop, "cy", cid)
    racing_pay = h.pay_order(shop, racing.order_id)
    assert h.notify(shop, _notification(shop, racing_pay, key=stranger)) == "fail"
    assert h.notify(shop, _notification(shop, racing_pay)) == "success"
    # A payment races the close: the query says paid, so it is fulfilled.
    h.simulate_pay(shop, racing_pay.pay_order_id)
    assert h.pay_state(shop, racing_pay.pay_order_id) == "PENDING"
    assert h.order_state(shop, racing.order_id) == "CREATED"
    closing = _notification(shop, racing_pay)
    assert h.notify(shop, closing) == "success"
    assert h.pay_state(shop, racing_pay.pay_order_id) == "SUCCESS"
    h.wait_for(
        lambda: h.order_state(shop, racing.order_id) == "COMPLETED", "the racing payment fulfilled"
    )
    # Replayed: ignored.
    h.wait_for(
        lambda: (
            not h.db(shop, "payment").query(
                "SELECT 1 FROM atx_outbox WHERE state <> ?", (STATE_DONE,)
            )
        ),
        "the outbox to drain",
    )
    quiet = h.snapshot(shop)
    assert h.notify(shop, closing) == "success"
    assert h.snapshot(shop) == quiet
    assert r.channel_refunds(shop, CHANNEL_NAME) == []
    assert h.stock(shop, cid) == 9
