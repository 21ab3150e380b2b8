"""XID propagation across two gRPC hops, through sync and grpc.aio servers.

caller --(hop 1)--> first server --(hop 2)--> second server; each writes its own
database through the proxy. The callee branches join the caller's transaction,
and an exception in the last callee rolls back all three branches.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

import atx.rm as rm
from atx.rm.tc_client import TCClient
from atx.testing import free_port
from tests.rm.conftest import Database, DatabaseFactory, wait_final

METHOD = "/atx.test.Hop/Call"


def _identity(data: bytes) -> bytes:
    return data


class Hop:
    """One service: writes its database, checks the XID, forwards or fails."""

    def __init__(self, db: Database, next_address: str | None) -> None:
        self.db = db
        self.conn = db.connect()
        self.next_address = next_address
        self.seen: list[str | None] = []

    def work(self, payload: bytes) -> None:
        self.seen.append(rm.current_xid())
        self.conn.cursor().execute(
            self.db.q("UPDATE account SET balance = balance + %s WHERE id = %s"), (1, 1)
        )
        self.conn.commit()
        if self.next_address is None and payload == b"fail":
            raise RuntimeError("the last callee fails on purpose")

    def sync_handler(self, payload: bytes, context: Any) -> bytes:
        self.work(payload)
        if self.next_address is not None:
            with grpc.insecure_channel(self.next_address) as channel:
                intercepted = grpc.intercept_channel(channel, rm.XidClientInterceptor())
                call = intercepted.unary_unary(
                    METHOD, request_serializer=_identity, response_deserializer=_identity
                )
                call(payload, timeout=20)
        return (rm.current_xid() or "").encode()

    async def aio_handler(self, payload: bytes, context: Any) -> bytes:
        self.work(payload)
        if self.next_address is not None:
            async with grpc.aio.insecure_channel(
                self.next_address, interceptors=[rm.AioXidClientInterceptor()]
            ) as channel:
                call = channel.unary_unary(
                    METHOD, request_serializer=_identity, response_deserializer=_identity
                )
                await call(payload, timeout=20)
        return (rm.current_xid() or "").encode()


def _generic(handler: Any) -> Any:
    return grpc.method_handlers_generic_handler(
        "atx.test.Hop",
        {
            "Call": grpc.unary_unary_rpc_method_handler(
                handler, request_deserializer=_identity, response_serializer=_identity
            )
        },
    )


def start_sync(hop: Hop) -> tuple[str, Any]:
    port = free_port()
    server = grpc.server(ThreadPoolExecutor(4), interceptors=[rm.XidServerInterceptor()])
    server.add_generic_rpc_handlers((_generic(hop.sync_handler),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return f"127.0.0.1:{port}", lambda: server.stop(0)


def start_aio(hop: Hop) -> tuple[str, Any]:
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        server = grpc.aio.server(interceptors=[rm.AioXidServerInterceptor()])
        server.add_generic_rpc_handlers((_generic(hop.aio_handler),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        stop_event = asyncio.Event()
        holder["stop"] = stop_event
        started.set()
        await stop_event.wait()
        await server.stop(0)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(10)

    def stop() -> None:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
        loop.close()

    return f"127.0.0.1:{port}", stop


@pytest.fixture(params=[("sync", "aio"), ("aio", "sync")], ids=["sync-then-aio", "aio-then-sync"])
def chain(
    request: pytest.FixtureRequest, make_db: DatabaseFactory, tc: TCClient
) -> Iterator[tuple[str, list[Hop], list[Database]]]:
    dbs = [make_db() for _ in range(3)]
    for db in dbs:
        db.setup_accounts(1)
    first_kind, second_kind = request.param
    starters = {"sync": start_sync, "aio": start_aio}
    last = Hop(dbs[2], None)
    last_address, stop_last = starters[second_kind](last)
    first = Hop(dbs[1], last_address)
    first_address, stop_first = starters[first_kind](first)
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(10)
    yield first_address, [first, last], dbs
    stop_first()
    stop_last()


def _call(address: str, payload: bytes) -> bytes:
    with grpc.insecure_channel(address) as channel:
        stub = grpc.intercept_channel(channel, rm.XidClientInterceptor()).unary_unary(
            METHOD, request_serializer=_identity, response_deserializer=_identity
        )
        result: bytes = stub(payload, timeout=30)
        return result


def test_callees_join_and_commit(
    chain: tuple[str, list[Hop], list[Database]], tc: TCClient
) -> None:
    address, hops, dbs = chain
    caller = dbs[0].connect()

    @rm.global_transactional(name="two-hops")
    def run() -> tuple[str, bytes]:
        caller.cursor().execute(
            dbs[0].q("UPDATE account SET balance = balance + 1 WHERE id = %s"), (1,)
        )
        caller.commit()
        return rm.require_xid(), _call(address, b"ok")

    xid, echoed = run()
    assert echoed.decode() == xid
    assert [h.seen for h in hops] == [[xid], [xid]]
    wait_final(tc, xid)
    assert [db.accounts()[0][1] for db in dbs] == [101, 101, 101]


def test_exception_in_callee_rolls_back_every_branch(
    chain: tuple[str, list[Hop], list[Database]], tc: TCClient
) -> None:
    address, hops, dbs = chain
    caller = dbs[0].connect()
    xids: list[str] = []

    @rm.global_transactional(name="two-hops-fail")
    def run() -> None:
        xids.append(rm.require_xid())
        caller.cursor().execute(
            dbs[0].q("UPDATE account SET balance = balance + 1 WHERE id = %s"), (1,)
        )
        caller.commit()
        _call(address, b"fail")

    with pytest.raises(grpc.RpcError):
        run()
    assert [h.seen for h in hops] == [xids, xids]
    wait_final(tc, xids[0])
    assert [db.accounts()[0][1] for db in dbs] == [100, 100, 100]


def test_async_caller_with_aio_client_interceptor(
    chain: tuple[str, list[Hop], list[Database]], tc: TCClient
) -> None:
    address, _hops, dbs = chain

    @rm.global_transactional(name="async-caller")
    async def run() -> tuple[str, bytes]:
        async with grpc.aio.insecure_channel(
            address, interceptors=[rm.AioXidClientInterceptor()]
        ) as channel:
            call = channel.unary_unary(
                METHOD, request_serializer=_identity, response_deserializer=_identity
            )
            echoed: bytes = await call(b"ok", timeout=30)
        return rm.require_xid(), echoed

    xid, echoed = asyncio.run(run())
    assert echoed.decode() == xid
    wait_final(tc, xid)
    assert [db.accounts()[0][1] for db in dbs] == [100, 101, 101]


def test_a_callee_reached_before_any_local_branch_finds_the_transaction_begun(
    chain: tuple[str, list[Hop], list[Database]], tc: TCClient
) -> None:
    """The caller made its XID itself; its first act is the call, so the outgoing
    interceptor begins it at the TC before the callees register their branches."""
    address, hops, dbs = chain

    @rm.global_transactional(name="call-first")
    def run() -> bytes:
        return _call(address, b"ok")

    xid = run().decode()
    assert [h.seen for h in hops] == [[xid], [xid]]
    wait_final(tc, xid)
    assert [db.accounts()[0][1] for db in dbs] == [100, 101, 101]


def test_an_async_launcher_calls_out_and_writes_at_once(
    chain: tuple[str, list[Hop], list[Database]], tc: TCClient
) -> None:
    """Two tasks of one async transaction: one calls a callee (its interceptor begins
    the launcher's XID at the TC), the other registers a local branch meanwhile; the
    callees and the local branch all commit under the one XID."""
    address, hops, dbs = chain

    @rm.global_transactional(name="async-both")
    async def run() -> str:
        conn = await dbs[0].connect_async()

        async def call_out() -> bytes:
            async with grpc.aio.insecure_channel(
                address, interceptors=[rm.AioXidClientInterceptor()]
            ) as channel:
                call = channel.unary_unary(
                    METHOD, request_serializer=_identity, response_deserializer=_identity
                )
                echoed: bytes = await call(b"ok", timeout=30)
                return echoed

        async def write_here() -> None:
            async with conn.cursor() as cur:
                await cur.execute(
                    dbs[0].q("UPDATE account SET balance = balance + 1 WHERE id = %s"), (1,)
                )
            await conn.commit()

        echoed, _ = await asyncio.wait_for(asyncio.gather(call_out(), write_here()), 30)
        await conn.close()
        return echoed.decode()

    xid = asyncio.run(run())
    assert [h.seen for h in hops] == [[xid], [xid]]
    wait_final(tc, xid)
    assert [db.accounts()[0][1] for db in dbs] == [101, 101, 101]
