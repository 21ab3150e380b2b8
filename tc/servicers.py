"""gRPC servicers: the TM and RM faces of the coordinator (grpc.aio).

The AdminService is :class:`tc.admin.AdminServicer`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc

from atx import tracing
from atx.errors import AtxError, InvalidArgumentError, abort_async
from atx.logs import log_xid
from atx.status import BranchStatus, BranchType, GlobalStatus
from atx.tc.coordinator import BeginSpec, TransactionCoordinator
from atx.v1 import resource_manager_pb2 as rm_pb2
from atx.v1 import resource_manager_pb2_grpc as rm_grpc
from atx.v1 import transaction_manager_pb2 as tm_pb2
from atx.v1 import transaction_manager_pb2_grpc as tm_grpc

__all__ = ["ResourceManagerServicer", "TransactionManagerServicer"]

logger = logging.getLogger(__name__)

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _enum(cls: type[Any], value: int, name: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise InvalidArgumentError(f"unknown {name} {value}", field=name) from None


def _begin_spec(request: tm_pb2.BeginRequest) -> BeginSpec:
    return BeginSpec(
        request.timeout_ms, request.transaction_name, request.application_id, request.elapsed_ms
    )


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def tracked(handler: F) -> F:
    """Count the call as in flight (graceful shutdown waits for it) and map errors
    (``map_errors`` folded in: one coroutine layer less on the hot path)."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: Any) -> Any:
        tc = self.tc
        tc.in_flight += 1
        # The TC's log records of this request carry its XID (atx.logs).
        token = log_xid.set(getattr(request, "xid", None) or None)
        tracing.tag(branch_id=getattr(request, "branch_id", None))
        try:
            response = await handler(self, request, context)
            tracing.tag(getattr(response, "xid", None), getattr(response, "branch_id", None))
            return response
        except AtxError as error:
            await abort_async(context, error)
        finally:
            log_xid.reset(token)
            tc.in_flight -= 1

    return wrapper  # type: ignore[return-value]


class TransactionManagerServicer(tm_grpc.TransactionManagerServiceServicer):
    def __init__(self, tc: TransactionCoordinator) -> None:
        self.tc = tc

    @tracked
    async def Begin(self, request: tm_pb2.BeginRequest, context: Context) -> tm_pb2.BeginResponse:
        xid = await self.tc.begin(
            request.timeout_ms,
            request.transaction_name,
            request.application_id,
            request.xid,
            request.elapsed_ms,
        )
        return tm_pb2.BeginResponse(xid=xid)

    @tracked
    async def ReserveXids(
        self, request: tm_pb2.ReserveXidsRequest, context: Context
    ) -> tm_pb2.ReserveXidsResponse:
        prefix, first, count = await self.tc.reserve_xids()
        return tm_pb2.ReserveXidsResponse(
            xid_prefix=prefix, first_transaction_id=first, count=count
        )

    @tracked
    async def Commit(
        self, request: tm_pb2.CommitRequest, context: Context
    ) -> tm_pb2.CommitResponse:
        outcome = await self.tc.commit(request.xid, request.caller_branch_ids)
        return tm_pb2.CommitResponse(
            status=int(outcome.status),  # type: ignore[arg-type]
            caller_phase_two=outcome.caller_phase_two,
        )

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
            request.lock_wait_ms,
            _begin_spec(request.begin) if request.HasField("begin") else None,
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
        async for message in self.tc.streams.serve(request_iterator, context.peer()):
            yield message
