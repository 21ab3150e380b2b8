"""Retries with exponential backoff, dead letters, admin retry, restart resume."""

from __future__ import annotations

import json
from concurrent import futures
from typing import Any

import grpc
import pytest

from atx.errors import InvalidArgumentError, NotFoundError, from_rpc_error
from atx.hooks import (
    Dispatcher,
    DispatcherConfig,
    OutboxStore,
    TargetRegistry,
    add_deferred_call_service,
    defer,
)
from atx.testing import free_port
from atx.v1 import deferred_call_pb2 as dc_pb2
from atx.v1 import deferred_call_pb2_grpc as dc_grpc
from tests.hooks.conftest import OutboxDB


def local_row(db: OutboxDB, target: str, payload: dict[str, Any], rid: str) -> None:
    connection = db.raw()
    defer(connection, target, payload, request_id=rid)
    connection.commit()
    connection.close()


def force_due(store: OutboxStore) -> None:
    """Make every pending row due now (instead of sleeping through the backoff)."""
    connection = store._connect()
    connection.execute("UPDATE atx_outbox SET next_attempt_at = 0 WHERE state = 'PENDING'")
    connection.commit()
    connection.close()


def test_retries_back_off_exponentially_then_dead_letter(sqlite_db: OutboxDB) -> None:
    attempts: list[str] = []

    def flaky(payload: dict[str, Any], rid: str) -> None:
        attempts.append(rid)
        raise RuntimeError("platform down")

    registry = TargetRegistry()
    registry.register("flaky", flaky)
    store = sqlite_db.store()
    config = DispatcherConfig(base_delay=1.0, max_delay=3.0, max_attempts=4)
    dispatcher = Dispatcher(store, registry=registry, config=config)
    local_row(sqlite_db, "flaky", {"a": 1}, "req-1")
    delays = []
    for _ in range(4):
        force_due(store)
        dispatcher.run_once()
        row = store.list()[0]
        delays.append(row.next_attempt_at - row.updated_at)
    assert attempts == ["req-1"] * 4
    # 1 s, 2 s, then capped at 3 s (computed, not measured), each less up to 20 % jitter.
    for delay, ceiling in zip(delays[:3], (1000, 2000, 3000), strict=True):
        assert 0.8 * ceiling - 1 <= delay <= ceiling
    row = store.list()[0]
    assert row.state == "DEAD" and row.attempts == 4
    assert "platform down" in row.last_error
    force_due(store)
    assert dispatcher.run_once() == 0  # dead letters are not retried automatically
    assert len(attempts) == 4


def test_unknown_target_dead_letters(sqlite_db: OutboxDB) -> None:
    store = sqlite_db.store()
    dispatcher = Dispatcher(
        store, registry=TargetRegistry(), config=DispatcherConfig(max_attempts=1)
    )
    local_row(sqlite_db, "nobody.home", {}, "r")
    dispatcher.run_once()
    row = store.list()[0]
    assert row.state == "DEAD" and "nobody.home" in row.last_error


def test_admin_lists_and_retries_dead_letters(sqlite_db: OutboxDB) -> None:
    healthy = {"value": False}
    done: list[str] = []

    def handler(payload: dict[str, Any], rid: str) -> None:
        if not healthy["value"]:
            raise RuntimeError("still down")
        done.append(rid)

    registry = TargetRegistry()
    registry.register("chain.mint", handler)
    store = sqlite_db.store()
    dispatcher = Dispatcher(store, registry=registry, config=DispatcherConfig(max_attempts=1))
    local_row(sqlite_db, "chain.mint", {"holding": "h1"}, "mint:h1")
    dispatcher.run_once()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_deferred_call_service(server, store, dispatcher)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = dc_grpc.DeferredCallServiceStub(channel)
            dead = stub.ListDeferredCalls(
                dc_pb2.ListDeferredCallsRequest(state=dc_pb2.DEFERRED_CALL_STATE_DEAD)
            ).calls
            assert len(dead) == 1 and dead[0].target == "chain.mint"
            assert json.loads(dead[0].payload) == {"holding": "h1"}
            assert dead[0].attempts == 1 and "still down" in dead[0].last_error

            healthy["value"] = True
            retried = stub.RetryDeferredCall(dc_pb2.RetryDeferredCallRequest(id=dead[0].id)).call
            assert retried.state == dc_pb2.DEFERRED_CALL_STATE_PENDING
            assert dispatcher.run_once() == 1
            assert done == ["mint:h1"]
            final = stub.ListDeferredCalls(dc_pb2.ListDeferredCallsRequest()).calls
            assert [c.state for c in final] == [dc_pb2.DEFERRED_CALL_STATE_DONE]

            with pytest.raises(grpc.RpcError) as missing:
                stub.RetryDeferredCall(dc_pb2.RetryDeferredCallRequest(id="nope"))
            assert isinstance(from_rpc_error(missing.value), NotFoundError)
            with pytest.raises(grpc.RpcError) as bad:
                stub.RetryDeferredCall(dc_pb2.RetryDeferredCallRequest(id=""))
            assert isinstance(from_rpc_error(bad.value), InvalidArgumentError)
    finally:
        server.stop(0)


def test_pending_rows_survive_a_restart(sqlite_db: OutboxDB) -> None:
    """State lives in the table: a new dispatcher (a restarted process) resumes."""
    failing = TargetRegistry()
    failing.register("t", lambda p, r: (_ for _ in ()).throw(RuntimeError("down")))
    first = Dispatcher(sqlite_db.store(), registry=failing)
    local_row(sqlite_db, "t", {"n": 1}, "r-1")
    first.run_once()
    first.stop()
    assert sqlite_db.store().list()[0].state == "PENDING"

    ran: list[str] = []
    working = TargetRegistry()
    working.register("t", lambda p, r: ran.append(r))
    second = Dispatcher(sqlite_db.store(), registry=working)
    force_due(sqlite_db.store())
    assert second.run_once() == 1
    assert ran == ["r-1"]
    assert sqlite_db.store().list()[0].attempts == 2


def test_claim_keeps_two_dispatchers_from_running_one_row(sqlite_db: OutboxDB) -> None:
    ran: list[str] = []
    registry = TargetRegistry()
    registry.register("t", lambda p, r: ran.append(r))
    local_row(sqlite_db, "t", {}, "only-once")
    store = sqlite_db.store()
    row = store.due(10)[0]
    assert store.claim(row, 30_000)
    assert not store.claim(row, 30_000)  # the second dispatcher loses the race
    assert Dispatcher(store, registry=registry).run_once() == 0  # leased, not due


def test_bad_payload_and_target_are_refused(sqlite_db: OutboxDB) -> None:
    connection = sqlite_db.raw()
    with pytest.raises(InvalidArgumentError):
        defer(connection, "", {})
    with pytest.raises(InvalidArgumentError):
        defer(connection, "t", {"x": object()})
    connection.close()
