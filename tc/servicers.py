"""gRPC servicers: the TM, RM and admin faces of the coordinator (grpc.aio)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc

from atx.errors import AtxError, InvalidArgumentError, abort_async, map_errors
from atx.status import BranchStatus, BranchType, GlobalStatus
from atx.v1 import admin_pb2, admin_pb2_grpc, types_pb2
from atx.v1 import resource_manager_pb2 as rm_pb2
from atx.v1 import resource_manager_pb2_grpc as rm_grpc
from atx.v1 import transaction_manager_pb2 as tm_pb2
from atx.v1 import transaction_manager_pb2_grpc as tm_grpc
from tc.coordinator import TransactionCoordinator
from tc.store.base import (
    BranchRecord,
    GlobalRecord,
    GlobalSessionFilter,
    LockFilter,
    LockRecord,
)
from tc.xid import parse_xid

__all__ = [
    "AdminServicer",
    "ResourceManagerServicer",
    "TransactionManagerServicer",
    "branch_to_proto",
    "global_to_proto",
    "lock_to_proto",
]

logger = logging.getLogger(__name__)

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
_DEFAULT_PAGE = 50
_MAX_PAGE = 1000


def _enum(cls: type[Any], value: int, name: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise InvalidArgumentError(f"unknown {name} {value}", field=name) from None


def branch_to_proto(b: BranchRecord) -> types_pb2.BranchSession:
    return types_pb2.BranchSession(
        branch_id=b.branch_id,
        xid=b.xid,
        resource_id=b.resource_id,
        branch_type=int(b.branch_type),  # type: ignore[arg-type]
        status=int(b.status),  # type: ignore[arg-type]
        lock_keys=b.lock_keys,
        application_data=b.application_data,
        client_id=b.client_id,
        begin_time_ms=b.begin_time_ms,
        modified_time_ms=b.modified_time_ms,
    )


def global_to_proto(g: GlobalRecord) -> types_pb2.GlobalSession:
    return types_pb2.GlobalSession(
        xid=g.xid,
        transaction_id=g.transaction_id,
        status=int(g.status),  # type: ignore[arg-type]
        application_id=g.application_id,
        transaction_name=g.transaction_name,
        timeout_ms=g.timeout_ms,
        begin_time_ms=g.begin_time_ms,
        modified_time_ms=g.modified_time_ms,
        branches=[branch_to_proto(b) for b in g.branches],
        retry_stopped=g.retry_stopped,
        retry_count=g.retry_count,
    )


def lock_to_proto(lock: LockRecord) -> types_pb2.GlobalLock:
    return types_pb2.GlobalLock(
        xid=lock.xid,
        transaction_id=lock.transaction_id,
        branch_id=lock.branch_id,
        resource_id=lock.resource_id,
        table_name=lock.table_name,
        pk=lock.pk,
        row_key=lock.row_key,
        created_time_ms=lock.created_time_ms,
    )


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def tracked(handler: F) -> F:
    """Count the call as in flight (graceful shutdown waits for it) and map errors
    (``map_errors`` folded in: one coroutine layer less on the hot path)."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: Any) -> Any:
        tc = self.tc
        tc.in_flight += 1
        try:
            return await handler(self, request, context)
        except AtxError as error:
            await abort_async(context, error)
        finally:
            tc.in_flight -= 1

    return wrapper  # type: ignore[return-value]


def _page_size(value: int) -> int:
    if value < 0:
        raise InvalidArgumentError(f"page_size {value} is negative", page_size=value)
    return min(value or _DEFAULT_PAGE, _MAX_PAGE)


class TransactionManagerServicer(tm_grpc.TransactionManagerServiceServicer):
    def __init__(self, tc: TransactionCoordinator) -> None:
        self.tc = tc

    @tracked
    async def Begin(self, request: tm_pb2.BeginRequest, context: Context) -> tm_pb2.BeginResponse:
        xid = await self.tc.begin(
            request.timeout_ms, request.transaction_name, request.application_id
        )
        return tm_pb2.BeginResponse(xid=xid)

    @tracked
    async def Commit(
        self, request: tm_pb2.CommitRequest, context: Context
    ) -> tm_pb2.CommitResponse:
        status = await self.tc.commit(request.xid)
        return tm_pb2.CommitResponse(status=int(status))  # type: ignore[arg-type]

    @tracked
    async def Rollback(
        self, request: tm_pb2.RollbackRequest, context: Context
    ) -> tm_pb2.RollbackResponse:
        status = await self.tc.rollback(request.xid)
        return tm_pb2.RollbackResponse(status=int(status))  # type: ignore[arg-type]

    @tracked
    async def GetStatus(
        self, request: tm_pb2.GetStatusRequest, context: Context
    ) -> tm_pb2.GetStatusResponse:
        status = await self.tc.get_status(request.xid)
        return tm_pb2.GetStatusResponse(status=int(status))  # type: ignore[arg-type]

    @tracked
    async def GlobalReport(
        self, request: tm_pb2.GlobalReportRequest, context: Context
    ) -> tm_pb2.GlobalReportResponse:
        reported = _enum(GlobalStatus, request.status, "status")
        status = await self.tc.global_report(request.xid, reported)
        return tm_pb2.GlobalReportResponse(status=int(status))  # type: ignore[arg-type]


class ResourceManagerServicer(rm_grpc.ResourceManagerServiceServicer):
    def __init__(self, tc: TransactionCoordinator) -> None:
        self.tc = tc

    @tracked
    async def BranchRegister(
        self, request: rm_pb2.BranchRegisterRequest, context: Context
    ) -> rm_pb2.BranchRegisterResponse:
        branch_id = await self.tc.branch_register(
            request.xid,
            request.resource_id,
            _enum(BranchType, request.branch_type, "branch_type"),
            request.lock_keys,
            request.application_data,
            request.client_id,
        )
        return rm_pb2.BranchRegisterResponse(branch_id=branch_id)

    @tracked
    async def BranchReport(
        self, request: rm_pb2.BranchReportRequest, context: Context
    ) -> rm_pb2.BranchReportResponse:
        status = _enum(BranchStatus, request.status, "status")
        await self.tc.branch_report(request.xid, request.branch_id, status)
        return rm_pb2.BranchReportResponse()

    @tracked
    async def LockQuery(
        self, request: rm_pb2.LockQueryRequest, context: Context
    ) -> rm_pb2.LockQueryResponse:
        holder = await self.tc.lock_query(request.xid, request.resource_id, request.lock_keys)
        return rm_pb2.LockQueryResponse(lockable=holder is None, holder_xid=holder or "")

    async def Attach(self, request_iterator: Any, context: Context) -> Any:
        async for message in self.tc.channels.serve(request_iterator, context.peer()):
            yield message


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    """Inspection now; the actions map to coordinator methods."""

    def __init__(self, tc: TransactionCoordinator) -> None:
        self.tc = tc

    @map_errors
    async def ListGlobalSessions(
        self, request: admin_pb2.ListGlobalSessionsRequest, context: Context
    ) -> admin_pb2.ListGlobalSessionsResponse:
        flt = GlobalSessionFilter(
            statuses=frozenset(_enum(GlobalStatus, s, "status") for s in request.statuses),
            application_id=request.application_id,
            transaction_name=request.transaction_name,
            xid=request.xid,
            begin_time_from_ms=request.begin_time_from_ms,
            begin_time_to_ms=request.begin_time_to_ms,
            include_history=request.include_history,
        )
        page = await self.tc.run(
            self.tc.store.list_globals, flt, _page_size(request.page_size), request.page_token
        )
        return admin_pb2.ListGlobalSessionsResponse(
            sessions=[global_to_proto(g) for g in page.items],
            next_page_token=page.next_token,
            total_size=page.total,
        )

    @map_errors
    async def GetGlobalSession(
        self, request: admin_pb2.GetGlobalSessionRequest, context: Context
    ) -> admin_pb2.GetGlobalSessionResponse:
        record = await self.tc._get(request.xid)
        locks = await self.tc.run(
            self.tc.store.list_locks, LockFilter(xid=request.xid), _MAX_PAGE, ""
        )
        return admin_pb2.GetGlobalSessionResponse(
            session=global_to_proto(record), locks=[lock_to_proto(x) for x in locks.items]
        )

    @map_errors
    async def ListGlobalLocks(
        self, request: admin_pb2.ListGlobalLocksRequest, context: Context
    ) -> admin_pb2.ListGlobalLocksResponse:
        if request.xid:
            parse_xid(request.xid)
        flt = LockFilter(
            xid=request.xid,
            resource_id=request.resource_id,
            table_name=request.table_name,
            pk=request.pk,
        )
        page = await self.tc.run(
            self.tc.store.list_locks, flt, _page_size(request.page_size), request.page_token
        )
        return admin_pb2.ListGlobalLocksResponse(
            locks=[lock_to_proto(x) for x in page.items],
            next_page_token=page.next_token,
            total_size=page.total,
        )
