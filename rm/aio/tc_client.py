"""The TC client for async code: grpc.aio channels, one client per event loop.

The twin of :class:`atx.rm.tc_client.TCClient`: the same requests, replies and
failover rules (:class:`~atx.rm.tc_client.Calls`, :class:`~atx.rm.tc_client.Failover`),
only the round trip is awaited. A grpc.aio channel belongs to the loop it was
made on, hence one client per loop. :data:`bridged_tc` is the sync face the AT
code (the branch, the launcher) uses inside the greenlet bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Sequence
from typing import Any, TypeVar

import grpc

from atx.errors import AtxError
from atx.grpc_channels import open_aio_channel
from atx.rm.aio.bridge import await_only
from atx.rm.config import get_config, on_reconfigure
from atx.rm.launched import BeginSpec
from atx.rm.tc_client import Call, ClientBase, CommitResult, LockQueryResult, unimplemented
from atx.status import BranchStatus, GlobalStatus

__all__ = ["AioTCClient", "BridgedTCClient", "bridged_tc", "get_aio_tc_client"]

T = TypeVar("T")


class AioTCClient(ClientBase):
    """Calls to one logical TC from coroutines of one event loop."""

    @staticmethod
    def _open(address: str, *, tls_ca: str, tls_server_name: str) -> Any:
        return open_aio_channel(address, tls_ca=tls_ca, tls_server_name=tls_server_name)

    async def close(self) -> None:
        for endpoint in self._failover.endpoints:
            await endpoint.channel.close()

    async def _run(self, call: Call[T]) -> T:
        failover = self._failover
        last: grpc.RpcError | None = None
        for index in failover.order():
            endpoint = failover.endpoints[index]
            try:
                reply = await call.rpc(endpoint)(
                    call.request, timeout=failover.timeout + call.waits, metadata=failover.metadata
                )
            except grpc.RpcError as error:
                failover.fail_over(endpoint, error)
                last = error
                continue
            failover.succeeded(index)
            return call.read(reply)
        assert last is not None
        raise failover.exhausted(last) from None

    async def begin(self, name: str, timeout_ms: int) -> str:
        return await self._run(self._calls.begin(name, timeout_ms))

    async def make_xid(self) -> str | None:
        """As :meth:`TCClient.make_xid`."""
        xid = self.xids.take()
        while xid is None and self.xids.supported:
            try:
                self.xids.fill(*await self._run(self._calls.reserve_xids()))
            except AtxError as error:
                if not unimplemented(error):
                    raise
                self.xids.supported = False
            xid = self.xids.take()
        return xid

    async def begin_xid(self, xid: str, spec: BeginSpec) -> None:
        await self._run(self._calls.begin_xid(xid, spec))

    async def commit(self, xid: str) -> GlobalStatus:
        return await self._run(self._calls.commit(xid))

    async def commit_launched(self, xid: str, caller_branch_ids: Sequence[int]) -> CommitResult:
        return await self._run(self._calls.commit_launched(xid, caller_branch_ids))

    async def rollback(self, xid: str) -> GlobalStatus:
        return await self._run(self._calls.rollback(xid))

    async def get_status(self, xid: str) -> GlobalStatus:
        return await self._run(self._calls.get_status(xid))

    async def branch_register(
        self,
        xid: str,
        resource_id: str,
        lock_keys: str,
        *,
        lock_wait_ms: int = 0,
        begin: BeginSpec | None = None,
    ) -> int:
        call = self._calls.branch_register(
            xid, resource_id, lock_keys, lock_wait_ms=lock_wait_ms, begin=begin
        )
        return await self._run(call)

    async def branch_report(self, xid: str, branch_id: int, status: BranchStatus) -> None:
        await self._run(self._calls.branch_report(xid, branch_id, status))

    async def lock_query(self, resource_id: str, lock_keys: str, xid: str = "") -> LockQueryResult:
        return await self._run(self._calls.lock_query(resource_id, lock_keys, xid))


_lock = threading.Lock()
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AioTCClient] = (
    weakref.WeakKeyDictionary()
)


def get_aio_tc_client() -> AioTCClient:
    """The running loop's TC client, built from the configuration on first use."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        with _lock:
            client = _clients.get(loop)
            if client is None:
                client = _clients[loop] = AioTCClient.from_config(get_config())
    return client


class BridgedTCClient:
    """The running loop's client as sync calls, for AT code inside the greenlet bridge."""

    def begin(self, name: str, timeout_ms: int) -> str:
        return await_only(get_aio_tc_client().begin(name, timeout_ms))

    def make_xid(self) -> str | None:
        return await_only(get_aio_tc_client().make_xid())

    def begin_xid(self, xid: str, spec: BeginSpec) -> None:
        await_only(get_aio_tc_client().begin_xid(xid, spec))

    def commit(self, xid: str) -> GlobalStatus:
        return await_only(get_aio_tc_client().commit(xid))

    def commit_launched(self, xid: str, caller_branch_ids: Sequence[int]) -> CommitResult:
        return await_only(get_aio_tc_client().commit_launched(xid, caller_branch_ids))

    def rollback(self, xid: str) -> GlobalStatus:
        return await_only(get_aio_tc_client().rollback(xid))

    def get_status(self, xid: str) -> GlobalStatus:
        return await_only(get_aio_tc_client().get_status(xid))

    def branch_register(
        self,
        xid: str,
        resource_id: str,
        lock_keys: str,
        *,
        lock_wait_ms: int = 0,
        begin: BeginSpec | None = None,
    ) -> int:
        client = get_aio_tc_client()
        return await_only(
            client.branch_register(
                xid, resource_id, lock_keys, lock_wait_ms=lock_wait_ms, begin=begin
            )
        )

    def branch_report(self, xid: str, branch_id: int, status: BranchStatus) -> None:
        await_only(get_aio_tc_client().branch_report(xid, branch_id, status))

    def lock_query(self, resource_id: str, lock_keys: str, xid: str = "") -> LockQueryResult:
        return await_only(get_aio_tc_client().lock_query(resource_id, lock_keys, xid))


bridged_tc = BridgedTCClient()


def _reset() -> None:
    with _lock:
        old = list(_clients.items())
        _clients.clear()
    for loop, client in old:
        # Each channel closes on its own loop; a loop already closed took them along.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_close_on, loop, client)


def _close_on(loop: asyncio.AbstractEventLoop, client: AioTCClient) -> None:
    _closing.add(task := loop.create_task(client.close()))
    task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()


on_reconfigure(_reset)
