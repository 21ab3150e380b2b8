"""The channel simulator over real gRPC, driven through the merchant client."""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import grpc
import pytest

from atx.clock import now_ms
from atx.errors import IllegalStatusError, from_rpc_error
from atx.shop.payment.channel import (
    AppIdRejectedError,
    ChannelClient,
    ChannelKeys,
    ChannelRejectedError,
    ChannelUnavailableError,
    SignatureError,
    SimulatorServer,
    TradeNotFoundError,
    TradeStatusError,
    load_or_create_keys,
    signed,
)
from atx.shop.v1 import payment_channel_pb2 as ch_pb2
from atx.shop.v1 import payment_channel_pb2_grpc as ch_grpc
from tests.conftest import ProcessStarter
from tests.services.payment.channel.conftest import FAST_SCHEDULE_MS, SimulatorFactory, Sink


def _create(
    client: ChannelClient, sink: Sink, out_trade_no: str, expire_in_ms: int = 60_000
) -> None:
    client.precreate(out_trade_no, 8888, now_ms() + expire_in_ms, sink.address, subject="card")


def test_precreate_pay_notify_query(
    client: ChannelClient, simulator: SimulatorServer, sink: Sink
) -> None:
    created = client.precreate("po-1", 8888, now_ms() + 60_000, sink.address)
    assert created.qr_code.endswith("/po-1")
    assert client.query("po-1").trade_status == "WAIT_BUYER_PAY"
    trade_no = simulator.simulator.pay("po-1")
    [notification] = sink.servicer.wait_for(1)
    verified = client.verify_notification(notification, 8888)
    assert verified.paid and verified.trade_no == trade_no
    assert verified.buyer_logon_id == "buyer***@example.com"  # AES-GCM in transit
    assert "@" not in notification["buyer_logon_id"]
    trade = client.query("po-1")
    assert trade.trade_status == "TRADE_SUCCESS" and trade.paid and trade.total_amount == 8888
    with pytest.raises(TradeNotFoundError):
        client.query("po-unknown")


def test_unacknowledged_notification_is_retried_on_the_schedule(
    client: ChannelClient, simulator: SimulatorServer, sink: Sink
) -> None:
    sink.servicer.refuse = 3
    _create(client, sink, "po-retry")
    simulator.simulator.pay("po-retry")
    received = sink.servicer.wait_for(4)
    assert len({n["notify_id"] for n in received}) == 1  # one notification, retried
    assert len({n["notify_time"] for n in received}) == 4  # each attempt signed afresh
    deadline = time.monotonic() + 10
    while simulator.simulator.notifications("po-retry")[0]["state"] != "ACKED":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    [record] = simulator.simulator.notifications("po-retry")
    attempts = record["attempt_log"]
    assert [a["answer"] for a in attempts] == ["fail", "fail", "fail", "success"]
    gaps = [b["at_ms"] - a["at_ms"] for a, b in itertools.pairwise(attempts)]
    # Never earlier than the schedule says (later is fine on a busy machine).
    assert all(gap >= want for gap, want in zip(gaps, FAST_SCHEDULE_MS, strict=False))
    time.sleep(0.5)
    assert len(sink.servicer.received) == 4  # acknowledged: no more retries


def test_notifications_stop_after_the_last_retry(
    simulator_factory: SimulatorFactory, sink: Sink, keys_dir: Path
) -> None:
    server = simulator_factory("short", notify_schedule_ms=(50, 50))
    short = ChannelClient("short", server.address, load_or_create_keys(keys_dir, "short"))
    sink.servicer.refuse = 100
    short.precreate("po-x", 100, now_ms() + 60_000, sink.address)
    server.simulator.pay("po-x")
    sink.servicer.wait_for(3)
    time.sleep(0.4)
    assert len(sink.servicer.received) == 3
    assert server.simulator.notifications("po-x")[0]["state"] == "GAVE_UP"
    short.close()


def test_close_only_while_waiting_and_expiry_closes_itself(
    client: ChannelClient, simulator: SimulatorServer, sink: Sink
) -> None:
    _create(client, sink, "po-close")
    client.close_trade("po-close")
    client.close_trade("po-close")  # closing a closed trade is fine
    assert client.query("po-close").trade_status == "TRADE_CLOSED"
    with pytest.raises(IllegalStatusError):
        simulator.simulator.pay("po-close")

    _create(client, sink, "po-paid")
    simulator.simulator.pay("po-paid")
    with pytest.raises(TradeStatusError):
        client.close_trade("po-paid")
    with pytest.raises(TradeNotFoundError):
        client.close_trade("po-none")

    _create(client, sink, "po-expire", expire_in_ms=200)
    time.sleep(0.3)
    assert client.query("po-expire").trade_status == "TRADE_CLOSED"
    # The channel tells us about its own close.
    closed = [n for n in sink.servicer.wait_for(2) if n["out_trade_no"] == "po-expire"]
    assert closed and closed[0]["trade_status"] == "TRADE_CLOSED"


def test_refund_is_idempotent_by_request_number(
    client: ChannelClient, simulator: SimulatorServer, sink: Sink
) -> None:
    _create(client, sink, "po-r")
    with pytest.raises(TradeStatusError):
        client.refund("po-r", 8888, "refund-po-r")  # not paid yet
    simulator.simulator.pay("po-r")
    first = client.refund("po-r", 8888, "refund-po-r")
    again = client.refund("po-r", 8888, "refund-po-r")
    assert first.fund_change and not again.fund_change and again.refund_fee == 8888
    assert len(simulator.simulator.refunds("po-r")) == 1
    trade = client.query("po-r")
    assert trade.trade_status == "TRADE_CLOSED" and trade.refund_count == 1
    assert trade.was_paid and not trade.paid
    with pytest.raises(ChannelRejectedError):
        client.refund("po-r", 1, "refund-more")  # nothing left to refund


def test_requests_must_carry_our_signature(
    simulator: SimulatorServer, keys: ChannelKeys, keys_dir: Path
) -> None:
    with grpc.insecure_channel(simulator.address) as channel:
        stub = ch_grpc.PaymentChannelServiceStub(channel)
        params = {"app_id": "2021000000000001", "method": "alipay.trade.query", "out_trade_no": "x"}
        forged = signed(params, keys.platform_private)  # not the merchant key
        answer = dict(stub.QueryTrade(ch_pb2.QueryTradeRequest(params=forged)).params)
        assert answer["sub_code"] == "isv.invalid-signature"
    # And the client refuses answers it cannot verify (signed with another key).
    wrong = load_or_create_keys(keys_dir, "someone_else")
    mixed = ChannelKeys("alipay_sim", keys.merchant_private, wrong.platform_private, keys.aes_key)
    with pytest.raises(SignatureError):
        ChannelClient("alipay_sim", simulator.address, mixed).query("x")


def test_every_request_needs_our_app_id(
    simulator: SimulatorServer, keys: ChannelKeys, client: ChannelClient
) -> None:
    with grpc.insecure_channel(simulator.address) as channel:
        stub = ch_grpc.PaymentChannelServiceStub(channel)
        query = {"method": "alipay.trade.query", "out_trade_no": "x"}
        for params, sub_code in (
            (query, "isv.missing-app-id"),
            ({**query, "app_id": "2021999"}, "isv.invalid-app-id"),
        ):
            request = ch_pb2.QueryTradeRequest(params=signed(params, keys.merchant_private))
            answer = dict(stub.QueryTrade(request).params)
            assert answer["sub_code"] == sub_code
            assert "app_id" in answer["sub_msg"]
    stranger = ChannelClient("alipay_sim", simulator.address, keys, app_id="2021999")
    with pytest.raises(AppIdRejectedError) as refused:
        stranger.query("x")
    assert "refused our app_id '2021999'" in refused.value.message
    assert "same app id" in refused.value.message
    stranger.close()
    with pytest.raises(TradeNotFoundError):  # ours is fine
        client.query("x")


def test_fault_knobs(client: ChannelClient, simulator: SimulatorServer, sink: Sink) -> None:
    simulator.simulator.set_faults(failure_rate=0.5)
    outcomes = []
    for _ in range(10):
        try:
            client.query("po-none")
        except ChannelUnavailableError as error:
            assert error.retryable
            outcomes.append("down")
        except TradeNotFoundError:
            outcomes.append("up")
    assert outcomes.count("down") == 5
    simulator.simulator.set_faults(drop_notifications=True)
    _create(client, sink, "po-drop")
    simulator.simulator.pay("po-drop")
    time.sleep(0.3)
    assert sink.servicer.received == []
    assert client.query("po-drop").trade_status == "TRADE_SUCCESS"


def test_simulator_as_a_process(
    start_server: ProcessStarter,
    port: int,
    keys_dir: Path,
    keys: ChannelKeys,
    sink: Sink,
    tmp_path: Path,
) -> None:
    argv = [sys.executable, "-m", "atx.shop.payment.channel.cli", "--port", str(port)]
    argv += ["--keys-dir", str(keys_dir), "--db", str(tmp_path / "proc.db")]
    argv += ["--notify-schedule-ms", "50,50,50"]
    start_server(argv, port=port)
    client = ChannelClient("alipay_sim", f"127.0.0.1:{port}", keys)
    sink.servicer.refuse = 1
    client.precreate("po-p", 500, now_ms() + 60_000, sink.address)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ch_grpc.PaymentChannelServiceStub(channel)
        stub.SimulatePay(ch_pb2.SimulatePayRequest(out_trade_no="po-p"))
        with pytest.raises(grpc.RpcError) as raised:
            stub.SimulatePay(ch_pb2.SimulatePayRequest(out_trade_no="po-p"))
        assert isinstance(from_rpc_error(raised.value), IllegalStatusError)
        stub.SetFaults(ch_pb2.SetFaultsRequest(failure_rate=1.0))
        with pytest.raises(ChannelUnavailableError):
            client.query("po-p")
        stub.SetFaults(ch_pb2.SetFaultsRequest())
    assert len(sink.servicer.wait_for(2)) == 2  # refused once, then acknowledged
    client.refund("po-p", 500, "refund-po-p")
    client.refund("po-p", 500, "refund-po-p")
    assert client.query("po-p").refund_count == 1
    client.close()
