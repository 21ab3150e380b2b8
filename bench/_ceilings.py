"""Two servers between the bare echo and the real TC, to show where a TC's time goes
(``bench_tc.py --ceilings``); benchmark instruments only, never used by atx itself.

- ``canned``: the TC's gRPC services answering every call at once (Begin, BranchRegister,
  Commit, the Attach handshake) with no state, no store and no phase two: the cost of
  the TC's protocol (protobuf messages, generated servicers) on this gRPC stack.
- ``memory``: the real TC (coordinator, locks, phase two over Attach) on
  :class:`MemoryStore`, a store that keeps everything in dicts and costs nearly
  nothing: the TC's own work without any durable store.
- ``logic``: as ``memory``, but a Commit finishes the session at once instead of
  sending BranchCommits: the TC's request handling alone, without phase two.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from typing import Any

import grpc
from _common import serve_aio

from atx.errors import GlobalTransactionNotFoundError, IllegalStatusError
from atx.status import BranchStatus, GlobalStatus
from atx.tc.store.base import BranchRecord, GlobalRecord, RowLock, lock_conflict
from atx.v1 import resource_manager_pb2 as rm_pb2
from atx.v1 import resource_manager_pb2_grpc as rm_grpc
from atx.v1 import transaction_manager_pb2 as tm_pb2
from atx.v1 import transaction_manager_pb2_grpc as tm_grpc


class MemoryStore:
    """The store operations the TC's hot path and jobs use, in dicts (no durability,
    one node). Admin listings are not offered."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._globals: dict[str, GlobalRecord] = {}
        self._branches: dict[str, list[BranchRecord]] = {}
        self._locks: dict[str, str] = {}  # row key -> xid
        self._locks_of: dict[str, list[str]] = {}
        self._job_locks: dict[str, str] = {}

    def run_batch(self, calls: Sequence[Callable[[], Any]]) -> list[tuple[bool, Any]]:
        # As SQLiteStore.run_batch, so that the TC takes the same (batched) path.
        results: list[tuple[bool, Any]] = []
        for call in calls:
            try:
                results.append((True, call()))
            except Exception as error:
                results.append((False, error))
        return results

    def next_id(self) -> int:
        return next(self._ids)

    def reserve_ids(self, count: int) -> tuple[int, int]:
        first = next(self._ids)
        for _ in range(count - 1):
            next(self._ids)
        return first, count

    def insert_global(self, record: GlobalRecord) -> None:
        self._globals[record.xid] = record
        self._branches[record.xid] = []

    def get_global(self, xid: str, with_branches: bool = True) -> GlobalRecord | None:
        record = self._globals.get(xid)
        if record is not None and with_branches:
            record.branches = list(self._branches[xid])
        return record

    def change_status(
        self,
        xid: str,
        expected: Collection[GlobalStatus],
        new: GlobalStatus,
        *,
        release_locks: bool = False,
        next_retry_ms: int | None = None,
        retry_count: int | None = None,
    ) -> GlobalRecord | None:
        record = self._globals.get(xid)
        if record is None or record.status not in expected:
            return None
        record.status = new
        if next_retry_ms is not None:
            record.next_retry_ms = next_retry_ms
        if retry_count is not None:
            record.retry_count = retry_count
        if release_locks:
            self.release_locks(xid)
        return record

    def update_global(self, xid: str, **changes: Any) -> GlobalRecord | None:
        record = self._globals.get(xid)
        if record is not None:
            for name, value in changes.items():
                if value is not None:
                    setattr(record, name, value)
        return record

    def find_globals(
        self,
        statuses: Collection[GlobalStatus],
        *,
        due_before_ms: int | None = None,
        limit: int = 100,
    ) -> list[GlobalRecord]:
        found = [
            r
            for r in self._globals.values()
            if r.status in statuses and (due_before_ms is None or r.next_retry_ms <= due_before_ms)
        ]
        for record in found[:limit]:
            record.branches = list(self._branches[record.xid])
        return found[:limit]

    def finish_global(self, xid: str, final_status: GlobalStatus) -> None:
        self.release_locks(xid)
        self._globals.pop(xid, None)
        self._branches.pop(xid, None)

    def finish_if_empty(self, xid: str, expected: GlobalStatus, final_status: GlobalStatus) -> bool:
        record = self._globals.get(xid)
        if record is None or record.status != expected or self._branches[xid]:
            return False
        self.finish_global(xid, final_status)
        return True

    def delete_global(self, xid: str) -> bool:
        found = xid in self._globals
        self.finish_global(xid, GlobalStatus.FINISHED)
        return found

    def register_branch(self, branch: BranchRecord, rows: Sequence[RowLock]) -> None:
        record = self._globals.get(branch.xid)
        if record is None:
            raise GlobalTransactionNotFoundError(branch.xid)
        if record.status != GlobalStatus.BEGIN:
            raise IllegalStatusError(branch.xid, record.status.name, "register a branch in")
        keys = [row.row_key for row in rows]
        for key in keys:
            holder = self._locks.get(key, branch.xid)
            if holder != branch.xid:
                held_by = self._globals.get(holder)
                raise lock_conflict(holder, key, held_by.status if held_by else None)
        for key in keys:
            self._locks[key] = branch.xid
        self._locks_of.setdefault(branch.xid, []).extend(keys)
        self._branches[branch.xid].append(branch)

    def update_branch_status(self, xid: str, branch_id: int, status: BranchStatus) -> bool:
        for branch in self._branches.get(xid, []):
            if branch.branch_id == branch_id:
                branch.status = status
                return True
        return False

    def release_locks(self, xid: str, branch_id: int | None = None) -> int:
        keys = self._locks_of.pop(xid, [])
        for key in keys:
            if self._locks.get(key) == xid:
                del self._locks[key]
        return len(keys)

    def query_locks(self, rows: Sequence[RowLock], xid: str = "") -> str | None:
        for row in rows:
            holder = self._locks.get(row.row_key)
            if holder is not None and holder != xid:
                return holder
        return None

    def try_job_lock(self, name: str, owner: str, ttl_ms: int) -> bool:
        return self._job_locks.setdefault(name, owner) == owner

    def release_job_lock(self, name: str, owner: str) -> None:
        if self._job_locks.get(name) == owner:
            del self._job_locks[name]

    def close(self) -> None:
        pass


# --- the canned TC ----------------------------------------------------------------------
class _CannedTM(tm_grpc.TransactionManagerServiceServicer):
    def __init__(self) -> None:
        self._ids = itertools.count(1)

    async def Begin(self, request: Any, context: Any) -> tm_pb2.BeginResponse:
        return tm_pb2.BeginResponse(xid=f"127.0.0.1:8091:{next(self._ids)}")

    async def Commit(self, request: Any, context: Any) -> tm_pb2.CommitResponse:
        return tm_pb2.CommitResponse(status=int(GlobalStatus.COMMITTED))  # type: ignore[arg-type]


class _CannedRM(rm_grpc.ResourceManagerServiceServicer):
    def __init__(self) -> None:
        self._ids = itertools.count(1)

    async def BranchRegister(self, request: Any, context: Any) -> rm_pb2.BranchRegisterResponse:
        return rm_pb2.BranchRegisterResponse(branch_id=next(self._ids))

    async def Attach(
        self, request_iterator: AsyncIterator[rm_pb2.AttachRequest], context: Any
    ) -> AsyncIterator[rm_pb2.AttachResponse]:
        async for request in request_iterator:
            if request.WhichOneof("kind") == "register":
                yield rm_pb2.AttachResponse(registered=rm_pb2.Registered(node_id="canned"))


def serve_canned(port: int) -> None:
    def add(server: grpc.aio.Server) -> None:
        tm_grpc.add_TransactionManagerServiceServicer_to_server(_CannedTM(), server)
        rm_grpc.add_ResourceManagerServiceServicer_to_server(_CannedRM(), server)

    asyncio.run(serve_aio(port, add))


def serve_tc_memory(port: int, phase_two: bool = True) -> None:
    import logging

    from atx.tc.config import TCConfig
    from atx.tc.server import TCServer

    logging.basicConfig(level=logging.WARNING)
    store = MemoryStore()

    async def main() -> None:
        node = TCServer(TCConfig(host="127.0.0.1", port=port), store=store)  # type: ignore[arg-type]
        await node.start()
        if not phase_two:
            assert node.tc is not None
            ended = node.tc.phase_two.ended

            def finish_at_once(record: GlobalRecord) -> None:
                store.finish_global(record.xid, GlobalStatus.COMMITTED)
                ended(record.xid, GlobalStatus.COMMITTED)

            node.tc.phase_two.commit_later = finish_at_once  # type: ignore[method-assign]
        await node.wait_closed()

    asyncio.run(main())
