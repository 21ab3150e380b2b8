"""Payment robustness end to end: the guards wired into the running
payment and order services, each acceptance item against real Redis and
MariaDB, with the simulators' fault knobs, services as separate processes."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import atx.shop.payment.channel.errors  # noqa: F401  (registers the channel error codes)
from atx.clock import now_ms
from atx.errors import AtxError
from atx.hooks.outbox import STATE_DONE
from atx.shop.payment.channel import protocol as p
from atx.shop.payment.channel.signing import (
    ChannelKeys,
    canonical,
    load_or_create_keys,
    signed,
    verify,
)
from atx.shop.topology import CHANNEL_NAME, Shop
from atx.shop.v1 import order_pb2, payment_channel_pb2, payment_pb2
from tests.integration import harness as h
from tests.integration import robustness as r
from tests.integration.conftest import ShopFactory

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["mariadb"])]

WECHAT = "wechat_sim"
#: Jobs only on demand (RunJob), compensation of any pending pay order.
ON_DEMAND = [
    "--compensation-interval-s", "0", "--timeout-close-interval-s", "0",
    "--compensate-after-s", "0",
]  # fmt: skip


def test_breaker_degrades_recovers_and_is_shared(shop_factory: ShopFactory, redis_url: str) -> None:
    shop = shop_factory(
        redis_url=redis_url,
        payment_replicas=2,
        payment_args=[
            "--breaker-window-ms", "5000", "--breaker-min-requests", "5",
            "--breaker-open-ms", "2500", "--breaker-probe-ttl-ms", "10000", *ON_DEMAND,
        ],
    )  # fmt: skip
    cid = h.collectible(shop, total=20)
    assert r.list_channels(shop, "ann") == [CHANNEL_NAME]

    # Abandoned payments do not count against the channel: 6 precreates, 6 abandons.
    for i in range(6):
        pay = h.pay_order(shop, h.order(shop, f"quitter{i}", cid).order_id)
        h.rpc(
            shop.payments.AbandonPayOrder,
            payment_pb2.AbandonPayOrderRequest(pay_order_id=pay.pay_order_id),
        )
    assert r.list_channels(shop, "ann") == [CHANNEL_NAME]
    assert r.list_channels(shop, "ann", "payment-2") == [CHANNEL_NAME]

    # 30% of the channel's calls fail: it leaves the list (both processes) within the window.
    pending = h.pay_order(shop, h.order(shop, "bob", cid).order_id)
    prober_order = h.order(shop, "prober", cid)
    r.set_faults(shop, failure_rate=0.3)
    calls = 0
    while CHANNEL_NAME in r.list_channels(shop, "ann", "payment-2"):
        calls += 1
        assert calls <= 30, "breaker never opened"
        process = "payment" if calls % 2 else "payment-2"  # both record into one window
        try:
            h.rpc(
                shop.payment_at(process).QueryPayOrder,
                payment_pb2.QueryPayOrderRequest(pay_order_id=pending.pay_order_id),
            )
        except AtxError as error:
            assert error.code == "CHANNEL_UNAVAILABLE"
    for process in ("payment", "payment-2"):
        assert r.list_channels(shop, "carl", process) == []
    with pytest.raises(AtxError) as refused:
        r.pay_order_at(shop, prober_order.order_id, CHANNEL_NAME, "payment-2")
    assert refused.value.code == "CHANNEL_UNAVAILABLE"

    # The channel heals; after the open time one user gets the half-open probe.
    r.set_faults(shop)
    h.wait_for(lambda: r.list_channels(shop, "prober", "payment-2"), "the half-open probe")
    assert r.list_channels(shop, "carl", "payment") == []  # the probe is held by prober
    pay = r.pay_order_at(shop, prober_order.order_id, CHANNEL_NAME, "payment")
    assert pay.pay_url  # the probe succeeded: closed again, for everyone, everywhere
    for process in ("payment", "payment-2"):
        assert r.list_channels(shop, "carl", process) == [CHANNEL_NAME]


def _quiet(shop: Shop, order_id: str) -> None:
    """Wait until the order's purchase is done and the outbox drained."""
    h.wait_for(lambda: h.order_state(shop, order_id) == "COMPLETED", f"{order_id} COMPLETED")
    h.wait_for(
        lambda: (
            not h.db(shop, "payment").query(
                "SELECT 1 FROM atx_outbox WHERE state <> ?", (STATE_DONE,)
            )
        ),
        "the outbox to drain",
    )


def _resigned(params: dict[str, str], key: Any) -> dict[str, str]:
    """``params`` signed again, with ``key`` or the channel's keys' platform key."""
    if isinstance(key, ChannelKeys):
        key = key.platform_private
    return signed({k: v for k, v in params.items() if k not in ("sign", "sign_type")}, key)


def test_missed_notifications_crash_before_ack_and_bad_notifications(
    shop_factory: ShopFactory, redis_url: str, tmp_path: Path
) -> None:
    crash = tmp_path / "crash-before-ack"
    shop = shop_factory(
        redis_url=redis_url,
        payment_args=ON_DEMAND,
        env={"payment": {"ATX_CRASH_NOTIFY_ACK": f"file:{crash}"}},
    )
    cid = h.collectible(shop, total=20)
    r.set_faults(shop, drop_notifications=True)

    # Dropped notification, settled by the active query ("the page did not move on").
    first = h.order(shop, "ann", cid)
    pay = h.pay_order(shop, first.order_id)
    h.simulate_pay(shop, pay.pay_order_id)
    time.sleep(0.5)
    assert h.pay_state(shop, pay.pay_order_id) == "PENDING"
    reply = h.rpc(
        shop.payments.QueryPayOrder, payment_pb2.QueryPayOrderRequest(pay_order_id=pay.pay_order_id)
    )
    assert reply.pay_order.state == payment_pb2.PAY_ORDER_STATE_SUCCESS
    h.wait_for(lambda: h.minted(shop, first.order_id), "ann's holding MINTED")

    # Dropped notification, settled by the compensation job.
    second = h.order(shop, "bob", cid)
    pay = h.pay_order(shop, second.order_id)
    h.simulate_pay(shop, pay.pay_order_id)
    run = r.run_job(shop, "compensation")
    assert run.ran and run.processed == 1
    assert h.pay_state(shop, pay.pay_order_id) == "SUCCESS"
    h.wait_for(lambda: h.minted(shop, second.order_id), "bob's holding MINTED")
    assert r.notify_answers_at(shop, CHANNEL_NAME, pay.pay_order_id) == []  # never delivered

    # A crash after the local commit, before the acknowledgement: processed once.
    r.set_faults(shop)
    crash.touch()
    third = h.order(shop, "cy", cid)
    pay = h.pay_order(shop, third.order_id)
    h.simulate_pay(shop, pay.pay_order_id)
    h.wait_for(lambda: not shop.processes["payment"].running, "the payment service to crash")
    crash.unlink()
    shop.processes["payment"].start(timeout=60)
    h.wait_for(
        lambda: "success" in r.notify_answers_at(shop, CHANNEL_NAME, pay.pay_order_id),
        "the channel's retry to be acknowledged",
        timeout=60,
    )
    answers = r.notify_answers_at(shop, CHANNEL_NAME, pay.pay_order_id)
    assert answers[0] != "success" and answers[-1] == "success"
    _quiet(shop, third.order_id)
    assert h.db(shop, "payment").query(
        "SELECT COUNT(*) FROM pay_notifications WHERE pay_order_id = ?", (pay.pay_order_id,)
    ) == [(1,)]
    holding = h.holdings(shop, third.order_id)[0]
    assert [row[0] for row in h.outbox_rows(shop)].count(f"mint:{holding.holding_id}") == 1
    assert len(h.mints(shop, f"mint:{holding.holding_id}")) == 1

    # Bad notifications change nothing: forged, tampered, stale, replayed id.
    fourth = h.order(shop, "dee", cid)
    pay = h.pay_order(shop, fourth.order_id)
    fifth = h.order(shop, "eve", cid)
    other = h.pay_order(shop, fifth.order_id)
    before = h.snapshot(shop)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert h.notify(shop, h.notification(shop, pay, key=stranger)) == "fail"
    tampered = h.notification(shop, pay)
    tampered["total_amount"] = p.format_amount(pay.amount - 100)
    assert h.notify(shop, tampered) == "fail"
    keys = load_or_create_keys(shop.config.directory / "keys", CHANNEL_NAME)
    stale = h.notification(shop, pay)
    stale["notify_time"] = p.format_time(now_ms() - 10 * 60_000)
    stale = _resigned(stale, keys.platform_private)
    assert h.notify(shop, stale) == "fail"
    assert h.snapshot(shop) == before
    assert h.pay_state(shop, pay.pay_order_id) == "PENDING"

    genuine = h.notification(shop, pay)
    assert h.notify(shop, genuine) == "success"
    _quiet(shop, fourth.order_id)
    before = h.snapshot(shop)
    # The same notify_id again, even validly signed for another pay order: ignored.
    replayed = h.notification(shop, other)
    replayed["notify_id"] = genuine["notify_id"]
    replayed = _resigned(replayed, keys.platform_private)
    assert h.notify(shop, replayed) == "success"
    assert h.notify(shop, genuine) == "success"
    assert h.snapshot(shop) == before
    assert h.pay_state(shop, other.pay_order_id) == "PENDING"


def test_notifications_are_verified_over_exactly_what_was_signed(
    shop_factory: ShopFactory, redis_url: str
) -> None:
    shop = shop_factory(redis_url=redis_url, payment_args=ON_DEMAND)
    cid = h.collectible(shop, total=5)
    buy = h.order(shop, "ann", cid)
    pay = h.pay_order(shop, buy.order_id)
    keys = load_or_create_keys(shop.config.directory / "keys", CHANNEL_NAME)
    captured = h.notification(shop, pay)  # correctly signed by the channel
    before = h.snapshot(shop)

    # A boundary moved: notify_type folded into notify_time, the same signed bytes.
    moved = {k: v for k, v in captured.items() if k != "notify_type"}
    moved["notify_time"] = f"{captured['notify_time']}&notify_type={captured['notify_type']}"
    assert canonical(moved) == canonical(captured)
    assert verify(moved, keys.platform_public)
    refused: list[tuple[str, dict[str, str]]] = [("CHANNEL_MESSAGE_AMBIGUOUS", moved)]
    # Correctly signed, but not in the channel's forms.
    now = p.format_time(now_ms())
    for changes in (
        {"notify_time": now + "zzz"},
        {"notify_time": now + "999"},
        {"trade_status": "PAID!!"},
        {"trade_status": p.WAIT_BUYER_PAY},  # real, not final: we never subscribe to it
    ):
        refused.append(
            ("CHANNEL_NOTIFICATION_FIELD_INVALID", _resigned({**captured, **changes}, keys))
        )
    untyped = {k: v for k, v in captured.items() if k != "notify_type"}
    refused.append(("CHANNEL_NOTIFICATION_FIELD_INVALID", _resigned(untyped, keys)))
    for _, params in refused:
        assert h.notify(shop, params) == "fail", params
    assert h.snapshot(shop) == before  # no settlement, no outbox row, no mint
    assert h.pay_state(shop, pay.pay_order_id) == "PENDING"
    assert h.order_state(shop, buy.order_id) == "CREATED"
    log = shop.processes["payment"].log_path.read_text(errors="replace")
    for code, _ in refused:
        assert f"pay order {pay.pay_order_id} (order {buy.order_id}, PENDING" in log
        assert code in log
    assert "notification field notify_time ('" + now + "zzz')" in log

    # Refusals remembered nothing: the captured notification itself is still accepted.
    assert h.notify(shop, captured) == "success"
    _quiet(shop, buy.order_id)
    assert h.pay_state(shop, pay.pay_order_id) == "SUCCESS"


def test_paid_twice_refunds_once_even_when_the_refund_is_retried(
    shop_factory: ShopFactory, redis_url: str
) -> None:
    shop = shop_factory(
        redis_url=redis_url,
        extra_channels=[WECHAT],
        payment_args=["--channel-timeout-s", "1", *ON_DEMAND],
    )
    cid = h.collectible(shop, total=5, price=4200)
    order = h.order(shop, "ann", cid)
    assert r.list_channels(shop, "ann") == [CHANNEL_NAME, WECHAT]
    kept = r.pay_order_at(shop, order.order_id, CHANNEL_NAME)
    extra = r.pay_order_at(shop, order.order_id, WECHAT)

    h.simulate_pay(shop, kept.pay_order_id)
    h.wait_for(lambda: h.pay_state(shop, kept.pay_order_id) == "SUCCESS", "the first payment")
    # The second channel answers slower than our timeout: the first refund call
    # times out after the channel performed it; the retry must not refund again.
    r.set_faults(shop, WECHAT, latency_ms=2500)
    h.rpc(
        shop.channel_at(WECHAT).SimulatePay,
        payment_channel_pb2.SimulatePayRequest(out_trade_no=extra.pay_order_id),
    )
    h.wait_for(lambda: r.channel_refunds(shop, WECHAT), "the channel to perform the refund")
    h.wait_for(
        lambda: "fail" in r.notify_answers_at(shop, WECHAT, extra.pay_order_id),
        "the refund's lost answer",
    )
    r.set_faults(shop, WECHAT)
    h.wait_for(
        lambda: h.pay_state(shop, extra.pay_order_id) == "REFUNDED", "the extra payment REFUNDED"
    )
    # The simulator records our answer after the RPC returns, a moment after the commit.
    h.wait_for(
        lambda: r.notify_answers_at(shop, WECHAT, extra.pay_order_id)[-1:] == ["success"],
        "the channel to record the acknowledgement",
    )
    assert "fail" in r.notify_answers_at(shop, WECHAT, extra.pay_order_id)
    assert r.channel_refunds(shop, WECHAT) == [
        (f"refund-{extra.pay_order_id}", extra.pay_order_id, "42.00")
    ]
    assert r.channel_refunds(shop, CHANNEL_NAME) == []
    assert h.pay_state(shop, kept.pay_order_id) == "SUCCESS"
    h.wait_for(lambda: h.order_state(shop, order.order_id) == "COMPLETED", "order COMPLETED")
    paid_by = h.rpc(
        shop.orders.GetOrder, order_pb2.GetOrderRequest(order_id=order.order_id)
    ).order.pay_order_id
    assert paid_by == kept.pay_order_id
    # Later runs and queries change nothing.
    r.run_job(shop, "compensation")
    h.rpc(
        shop.payments.QueryPayOrder,
        payment_pb2.QueryPayOrderRequest(pay_order_id=extra.pay_order_id),
    )
    assert len(r.channel_refunds(shop, WECHAT)) == 1
    assert h.db(shop, "payment").query("SELECT refund_no, state FROM pay_refunds") == [
        (f"refund-{extra.pay_order_id}", "DONE")
    ]


def test_timeout_close_at_both_ends_races_and_one_transaction(
    shop_factory: ShopFactory, redis_url: str, tmp_path: Path
) -> None:
    release_fault = tmp_path / "release-fault"
    shop = shop_factory(
        redis_url=redis_url,
        payment_args=["--pay-ttl-s", "3", "--channel-margin-s", "1.5", *ON_DEMAND],
        env={"collectible": {"ATX_FAULT_RELEASE_RESERVATION": f"file:{release_fault}"}},
    )
    cid = h.collectible(shop, total=10)

    # Unpaid: closed at the channel (its earlier deadline), here, and the order; stock back.
    unpaid = h.order(shop, "ann", cid)
    pay = h.pay_order(shop, unpaid.order_id)
    assert pay.expire_time_ms - pay.created_time_ms == 3000
    # Racing payments (notifications dropped): one still fulfillable, one whose order
    # was closed meanwhile.
    r.set_faults(shop, drop_notifications=True)
    late = h.order(shop, "bob", cid)
    late_pay = h.pay_order(shop, late.order_id)
    h.simulate_pay(shop, late_pay.pay_order_id)
    closed = h.order(shop, "cy", cid)
    closed_pay = h.pay_order(shop, closed.order_id)
    h.simulate_pay(shop, closed_pay.pay_order_id)
    r.close_order(shop, closed.order_id)
    # One global transaction: a failing stock release leaves everything open.
    stuck = h.order(shop, "dee", cid)
    stuck_pay = h.pay_order(shop, stuck.order_id)
    stock = h.stock(shop, cid)
    assert stock == 10 - 3

    release_fault.touch()
    time.sleep(max(0.0, (stuck_pay.expire_time_ms - now_ms()) / 1000) + 0.2)
    run = r.run_job(shop, "timeout_close")
    # bob's payment fulfilled, cy's refunded; ann's and dee's closes rolled back whole.
    assert run.ran and run.processed == 2
    for open_order, open_pay in ((unpaid, pay), (stuck, stuck_pay)):
        assert h.pay_state(shop, open_pay.pay_order_id) == "PENDING"
        assert h.order_state(shop, open_order.order_id) == "CREATED"
        assert r.trade_status(shop, CHANNEL_NAME, open_pay.pay_order_id) == p.TRADE_CLOSED
    assert h.stock(shop, cid) == stock
    release_fault.unlink()
    run = r.run_job(shop, "timeout_close")
    assert run.ran and run.processed == 2

    for unpaid_order, unpaid_pay in ((unpaid, pay), (stuck, stuck_pay)):
        assert h.pay_state(shop, unpaid_pay.pay_order_id) == "CLOSED"
        assert h.order_state(shop, unpaid_order.order_id) == "CLOSED"
        assert r.trade_status(shop, CHANNEL_NAME, unpaid_pay.pay_order_id) == p.TRADE_CLOSED
    assert h.pay_state(shop, late_pay.pay_order_id) == "SUCCESS"
    h.wait_for(lambda: h.minted(shop, late.order_id), "the late payment fulfilled")
    assert h.pay_state(shop, closed_pay.pay_order_id) == "REFUNDED"
    assert r.channel_refunds(shop, CHANNEL_NAME) == [
        (f"refund-{closed_pay.pay_order_id}", closed_pay.pay_order_id, "10.00")
    ]
    assert h.order_state(shop, closed.order_id) == "CLOSED"
    # Stock: ann's, cy's and dee's reservations returned, bob's sold.
    assert h.stock(shop, cid) == 9


def test_one_runner_across_processes_and_periodic_jobs(
    shop_factory: ShopFactory, redis_url: str
) -> None:
    shop = shop_factory(
        redis_url=redis_url,
        payment_replicas=2,
        payment_args=[
            "--job-hold-s", "1", "--compensation-interval-s", "0.3",
            "--compensate-after-s", "0", "--timeout-close-interval-s", "0",
        ],
    )  # fmt: skip
    # RunJob on both processes at once: one runs, the other is told it did not.
    results: list[bool] = []
    lock = threading.Lock()

    def trigger(process: str) -> None:
        ran = r.run_job(shop, "timeout_close", process).ran
        with lock:
            results.append(ran)

    threads = [threading.Thread(target=trigger, args=(p_,)) for p_ in ("payment", "payment-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [False, True]
    with pytest.raises(AtxError) as unknown:
        r.run_job(shop, f"nope-{uuid.uuid4().hex[:4]}")
    assert unknown.value.code == "JOB_UNKNOWN"

    # The periodic compensation settles a payment whose notification was dropped.
    cid = h.collectible(shop, total=3)
    r.set_faults(shop, drop_notifications=True)
    order = h.order(shop, "ann", cid)
    pay = h.pay_order(shop, order.order_id)
    h.simulate_pay(shop, pay.pay_order_id)
    h.wait_for(lambda: h.pay_state(shop, pay.pay_order_id) == "SUCCESS", "the periodic job")

    # Both processes scheduled it; the recorded runs never overlap.
    def both() -> list[tuple[str, int, int]] | None:
        rows = _runs(shop)
        return rows if len({row[0] for row in rows}) == 2 and len(rows) >= 4 else None

    runs = h.wait_for(both, "runs by both processes") or []
    for (_, _, end), (_, start, _) in itertools.pairwise(runs):
        assert end <= start, runs


def _runs(shop: Shop) -> list[tuple[str, int, int]]:
    rows = h.db(shop, "payment").query(
        "SELECT owner, started_at, finished_at FROM pay_job_runs WHERE name = ?"
        " ORDER BY started_at",
        ("compensation",),
    )
    return [(str(a), int(b), int(c)) for a, b, c in rows]
