"""Compensation, timeout close and paid-twice against the simulator, with a
SQLite payment state and the job runner on real Redis."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from atx.clock import now_ms
from atx.shop.payment.channel import (
    ChannelClient,
    ChannelUnavailableError,
    JobRunner,
    Payment,
    RedisJobLock,
    SimulatorServer,
    close_expired,
    compensate,
    load_or_create_keys,
    refund_number,
    resolve_double_payment,
)
from tests.services.payment.channel.conftest import SimulatorFactory, Sink
from tests.services.payment.channel.payments_store import SqlitePayments

AMOUNT = 8888


@pytest.fixture
def store(tmp_path: Path) -> SqlitePayments:
    return SqlitePayments(tmp_path / "payment.db")


def _open(
    store: SqlitePayments,
    client: ChannelClient,
    sink: Sink,
    pay_order_id: str,
    *,
    ours_in_ms: int = 60_000,
    channel_in_ms: int = 50_000,
    order_id: str = "",
) -> None:
    """An order with a pay order and its trade; the channel's deadline is earlier."""
    order_id = order_id or f"o-{pay_order_id}"
    if order_id not in {r[0] for r in store.db.execute("SELECT order_id FROM orders")}:
        store.create_order(order_id)
    now = now_ms()
    store.add_pay_order(pay_order_id, order_id, client.name, AMOUNT, now, now + ours_in_ms)
    client.precreate(pay_order_id, AMOUNT, now + channel_in_ms, sink.address)


def test_compensation_settles_a_payment_whose_notification_was_dropped(
    client: ChannelClient,
    simulator: SimulatorServer,
    sink: Sink,
    store: SqlitePayments,
    redis_url: str,
) -> None:
    simulator.simulator.set_faults(drop_notifications=True)
    _open(store, client, sink, "po-paid")
    _open(store, client, sink, "po-waiting")
    simulator.simulator.pay("po-paid")
    channels = {client.name: client}
    runner = JobRunner(RedisJobLock(redis_url))
    runner.register(
        "compensation",
        lambda: compensate(store, store, channels, older_than_ms=0),
        interval_s=60,
    )
    run = runner.run_now("compensation")
    assert run.ran and run.processed == 1
    assert store.pay_state("po-paid") == "SUCCESS" and store.order_state("o-po-paid") == "PAID"
    assert store.pay_state("po-waiting") == "PENDING"
    assert runner.run_now("compensation").processed == 0
    assert sink.servicer.received == []
    # Too young for the threshold: left alone.
    simulator.simulator.pay("po-waiting")
    assert compensate(store, store, channels, older_than_ms=600_000) == 0


def test_compensation_skips_an_unavailable_channel(
    client: ChannelClient, simulator: SimulatorServer, sink: Sink, store: SqlitePayments
) -> None:
    _open(store, client, sink, "po-1")
    simulator.simulator.set_faults(failure_rate=1.0, drop_notifications=True)
    assert compensate(store, store, {client.name: client}, older_than_ms=0) == 0
    assert store.pay_state("po-1") == "PENDING"


def test_timeout_closes_an_unpaid_order_at_both_ends_and_returns_stock(
    client: ChannelClient, simulator: SimulatorServer, sink: Sink, store: SqlitePayments
) -> None:
    _open(store, client, sink, "po-unpaid", ours_in_ms=100, channel_in_ms=50_000)
    assert store.stock() == 9
    time.sleep(0.15)
    assert close_expired(store, store, {client.name: client}) == 1
    assert store.pay_state("po-unpaid") == "CLOSED" and store.order_state("o-po-unpaid") == "CLOSED"
    assert client.query("po-unpaid").trade_status == "TRADE_CLOSED"
    assert store.stock() == 10
    assert close_expired(store, store, {client.name: client}) == 0


def test_the_channel_expires_first_and_compensation_closes_here(
    client: ChannelClient, simulator: SimulatorServer, sink: Sink, store: SqlitePayments
) -> None:
    simulator.simulator.set_faults(drop_notifications=True)
    _open(store, client, sink, "po-1", ours_in_ms=60_000, channel_in_ms=50)
    time.sleep(0.1)
    assert compensate(store, store, {client.name: client}, older_than_ms=0) == 1
    assert store.pay_state("po-1") == "CLOSED" and store.stock() == 10


def test_a_payment_racing_the_close_is_fulfilled(
    client: ChannelClient, simulator: SimulatorServer, sink: Sink, store: SqlitePayments
) -> None:
    simulator.simulator.set_faults(drop_notifications=True)
    _open(store, client, sink, "po-late", ours_in_ms=0)
    simulator.simulator.pay("po-late")  # at the last moment; its notification is lost
    assert close_expired(store, store, {client.name: client}) == 1
    assert store.pay_state("po-late") == "SUCCESS" and store.order_state("o-po-late") == "PAID"
    assert simulator.simulator.refunds() == []


def test_a_late_payment_that_cannot_be_fulfilled_is_refunded_exactly_once(
    client: ChannelClient, simulator: SimulatorServer, sink: Sink, store: SqlitePayments
) -> None:
    simulator.simulator.set_faults(drop_notifications=True)
    _open(store, client, sink, "po-late", ours_in_ms=0)
    simulator.simulator.pay("po-late")
    store.db.execute("UPDATE orders SET state = 'CLOSED'")  # e.g. closed by an admin
    channels = {client.name: client}
    store.fail_next_refunded = True  # crash after the refund, before recording it
    assert close_expired(store, store, channels) == 0
    assert store.pay_state("po-late") == "PENDING"
    for _ in range(3):  # the next runs retry: the refund number is stable
        close_expired(store, store, channels)
        compensate(store, store, channels, older_than_ms=0)
    assert store.pay_state("po-late") == "REFUNDED"
    [refund] = simulator.simulator.refunds()
    assert refund["out_request_no"] == refund_number("po-late") == "refund-po-late"


def test_paid_twice_keeps_the_first_and_refunds_the_other_once(
    simulator_factory: SimulatorFactory, keys_dir: Path, sink: Sink
) -> None:
    servers = {name: simulator_factory(name) for name in ("alipay_sim", "wechat_sim")}
    clients = {
        name: ChannelClient(name, server.address, load_or_create_keys(keys_dir, name))
        for name, server in servers.items()
    }
    payments = []
    for name, pay_order_id in (("alipay_sim", "po-a"), ("wechat_sim", "po-b")):
        clients[name].precreate(pay_order_id, AMOUNT, now_ms() + 60_000, sink.address)
        servers[name].simulator.pay(pay_order_id)
        paid_ms = clients[name].query(pay_order_id).paid_time_ms
        assert paid_ms is not None
        payments.append(Payment(pay_order_id, name, pay_order_id, AMOUNT, paid_ms))
    # The first refund attempt fails at the channel; the caller retries.
    servers["wechat_sim"].simulator.set_faults(failure_rate=1.0)
    with pytest.raises(ChannelUnavailableError):
        resolve_double_payment(payments, clients)
    servers["wechat_sim"].simulator.set_faults()
    for _ in range(3):
        resolution = resolve_double_payment(payments, clients)
        assert resolution.kept.pay_order_id == "po-a"
        assert [p.pay_order_id for p, _ in resolution.refunded] == ["po-b"]
    assert servers["alipay_sim"].simulator.refunds() == []
    [refund] = servers["wechat_sim"].simulator.refunds()
    assert refund["out_request_no"] == "refund-po-b"
    assert clients["wechat_sim"].query("po-b").refund_count == 1
    for channel_client in clients.values():
        channel_client.close()
