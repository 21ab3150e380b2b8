"""The complete AdminService: inspection with filters and pagination, the
actions (through :class:`~tc.admin.actions.AdminActions`) and the audit log.

Handlers are ``async`` for the TC's grpc.aio server; the store is called
directly, as the rest of the TC does.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, TypeAlias

import grpc

from atx.errors import (
    GlobalTransactionNotFoundError,
    UnauthenticatedError,
    map_errors,
)
from atx.metadata import AUTHORIZATION_KEY
from atx.status import GlobalStatus
from atx.tc.admin.actions import AdminActions, PhaseTwoDriver
from atx.tc.admin.convert import audit_message, lock_message, session_message
from atx.tc.admin.errors import InvalidFilterError, InvalidPageSizeError
from atx.tc.runner import StoreRunner
from atx.tc.store.base import GlobalSessionFilter, LockFilter, SessionStore
from atx.tc.xid import parse_xid
from atx.v1 import admin_pb2, admin_pb2_grpc

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "AdminServicer", "token_identity"]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _bearer_token(context: Context) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == AUTHORIZATION_KEY and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


def token_identity(token: str) -> str:
    """Who a token is in the audit log, without writing the token itself."""
    if not token:
        return "anonymous"
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _page_size(size: int) -> int:
    if size == 0:
        return DEFAULT_PAGE_SIZE
    if size < 0 or size > MAX_PAGE_SIZE:
        raise InvalidPageSizeError(size, MAX_PAGE_SIZE)
    return size


def _xid(xid: str) -> str:
    parse_xid(xid)  # empty or garbage: INVALID_XID (INVALID_ARGUMENT)
    return xid


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    """AdminService over a store and the coordinator's phase two.

    ``admin_token``: when set, every call must carry it (``authorization:
    Bearer <token>``); the TC's auth interceptor may check it as well.
    """

    def __init__(
        self,
        store: SessionStore,
        coordinator: PhaseTwoDriver,
        *,
        admin_token: str = "",
        runner: StoreRunner | None = None,
    ) -> None:
        self.store = store
        # Share the coordinator's store runner (worker threads for network stores).
        shared = getattr(coordinator, "run", None)
        self.run = runner or (shared if isinstance(shared, StoreRunner) else StoreRunner(store))
        self.actions = AdminActions(store, coordinator, self.run)
        self.admin_token = admin_token

    def _check(self, context: Context) -> str:
        """Authenticate the call; return its token identity for the audit log."""
        token = _bearer_token(context)
        if self.admin_token and not hmac.compare_digest(token.encode(), self.admin_token.encode()):
            raise UnauthenticatedError(
                "the admin service needs the admin token (authorization: Bearer <token>)"
            )
        return token_identity(token)

    def _operator(self, operator: str, context: Context) -> str:
        identity = self._check(context)
        return f"{operator.strip()} ({identity})" if operator.strip() else identity

    # --- inspection -------------------------------------------------------------

    @map_errors
    async def ListGlobalSessions(
        self, request: admin_pb2.ListGlobalSessionsRequest, context: Context
    ) -> admin_pb2.ListGlobalSessionsResponse:
        self._check(context)
        statuses: set[GlobalStatus] = set()
        for value in request.statuses:
            try:
                statuses.add(GlobalStatus(value))
            except ValueError:
                raise InvalidFilterError("status", value, "not a GlobalStatus") from None
        if min(request.begin_time_from_ms, request.begin_time_to_ms) < 0:
            raise InvalidFilterError("begin time", request.begin_time_from_ms, "negative")
        if request.begin_time_to_ms and request.begin_time_from_ms > request.begin_time_to_ms:
            raise InvalidFilterError(
                "begin time range",
                f"{request.begin_time_from_ms}..{request.begin_time_to_ms}",
                "it ends before it starts",
            )
        flt = GlobalSessionFilter(
            statuses=frozenset(statuses),
            application_id=request.application_id,
            transaction_name=request.transaction_name,
            xid=request.xid,
            begin_time_from_ms=request.begin_time_from_ms,
            begin_time_to_ms=request.begin_time_to_ms,
            include_history=request.include_history,
        )
        page = await self.run(
            self.store.list_globals, flt, _page_size(request.page_size), request.page_token
        )
        return admin_pb2.ListGlobalSessionsResponse(
            sessions=[session_message(r) for r in page.items],
            next_page_token=page.next_token,
            total_size=page.total,
        )

    @map_errors
    async def GetGlobalSession(
        self, request: admin_pb2.GetGlobalSessionRequest, context: Context
    ) -> admin_pb2.GetGlobalSessionResponse:
        self._check(context)
        xid = _xid(request.xid)
        record = await self.run(self.store.get_global, xid, True)
        if record is None:
            raise GlobalTransactionNotFoundError(xid)
        locks = await self.run(self.store.list_locks, LockFilter(xid=xid), MAX_PAGE_SIZE, "")
        return admin_pb2.GetGlobalSessionResponse(
            session=session_message(record), locks=[lock_message(r) for r in locks.items]
        )

    @map_errors
    async def ListGlobalLocks(
        self, request: admin_pb2.ListGlobalLocksRequest, context: Context
    ) -> admin_pb2.ListGlobalLocksResponse:
        self._check(context)
        flt = LockFilter(
            xid=request.xid,
            resource_id=request.resource_id,
            table_name=request.table_name,
            pk=request.pk,
        )
        page = await self.run(
            self.store.list_locks, flt, _page_size(request.page_size), request.page_token
        )
        return admin_pb2.ListGlobalLocksResponse(
            locks=[lock_message(r) for r in page.items],
            next_page_token=page.next_token,
            total_size=page.total,
        )

    @map_errors
    async def ListAuditLog(
        self, request: admin_pb2.ListAuditLogRequest, context: Context
    ) -> admin_pb2.ListAuditLogResponse:
        self._check(context)
        page = await self.run(
            self.store.list_audit, request.xid, _page_size(request.page_size), request.page_token
        )
        return admin_pb2.ListAuditLogResponse(
            entries=[audit_message(r) for r in page.items], next_page_token=page.next_token
        )

    # --- actions ------------------------------------------------------------------

    @map_errors
    async def RetryPhaseTwo(
        self, request: admin_pb2.RetryPhaseTwoRequest, context: Context
    ) -> admin_pb2.RetryPhaseTwoResponse:
        operator = self._operator(request.operator, context)
        record = await self.actions.retry(request.xid, operator)
        return admin_pb2.RetryPhaseTwoResponse(session=session_message(record))

    @map_errors
    async def RollbackGlobalSession(
        self, request: admin_pb2.RollbackGlobalSessionRequest, context: Context
    ) -> admin_pb2.RollbackGlobalSessionResponse:
        operator = self._operator(request.operator, context)
        record = await self.actions.rollback(request.xid, operator, request.confirm)
        return admin_pb2.RollbackGlobalSessionResponse(session=session_message(record))

    @map_errors
    async def StopRetry(
        self, request: admin_pb2.StopRetryRequest, context: Context
    ) -> admin_pb2.StopRetryResponse:
        operator = self._operator(request.operator, context)
        record = await self.actions.stop_retry(request.xid, operator)
        return admin_pb2.StopRetryResponse(session=session_message(record))

    @map_errors
    async def ResumeRetry(
        self, request: admin_pb2.ResumeRetryRequest, context: Context
    ) -> admin_pb2.ResumeRetryResponse:
        operator = self._operator(request.operator, context)
        record = await self.actions.resume_retry(request.xid, operator)
        return admin_pb2.ResumeRetryResponse(session=session_message(record))

    @map_errors
    async def DeleteGlobalSession(
        self, request: admin_pb2.DeleteGlobalSessionRequest, context: Context
    ) -> admin_pb2.DeleteGlobalSessionResponse:
        operator = self._operator(request.operator, context)
        await self.actions.delete(request.xid, operator, request.confirm)
        return admin_pb2.DeleteGlobalSessionResponse()
