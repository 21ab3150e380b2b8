"""A small synchronous client of AdminService (and DeferredCallService) for
the CLI and the console; every failure comes back as an AtxError."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Self, TypeVar

import grpc

from atx.errors import AtxError, UnavailableError, from_rpc_error
from atx.grpc_channels import open_channel
from atx.metadata import bearer
from atx.v1 import admin_pb2, admin_pb2_grpc, deferred_call_pb2, deferred_call_pb2_grpc

__all__ = [
    "DEFAULT_TC_ADDRESS",
    "AdminClient",
    "DeferredCallClient",
    "default_admin_token",
    "default_tc_address",
    "default_tls_ca",
]

DEFAULT_TC_ADDRESS = "127.0.0.1:8091"
R = TypeVar("R")


def default_tc_address() -> str:
    return os.environ.get("ATX_TC_ADDRESS") or DEFAULT_TC_ADDRESS


def default_tls_ca() -> str:
    """The PEM CA bundle for TLS to the TC ($ATX_TC_TLS_CA; empty = plaintext)."""
    return os.environ.get("ATX_TC_TLS_CA", "").strip()


def default_admin_token() -> str:
    return os.environ.get("ATX_ADMIN_TOKEN") or os.environ.get("ATX_TC_ADMIN_TOKEN") or ""


class _Client:
    def __init__(
        self,
        address: str,
        token: str = "",
        timeout_s: float = 30.0,
        tls_ca: str = "",
        tls_server_name: str = "",
    ) -> None:
        self.address = address
        self.token = token
        self.timeout_s = timeout_s
        self.tls = bool(tls_ca)
        self.channel = open_channel(address, tls_ca=tls_ca, tls_server_name=tls_server_name)

    def _call(
        self, method: Callable[..., Any], request: Any, kind: type[R], token: str | None = None
    ) -> R:
        token = self.token if token is None else token
        metadata = [bearer(token)] if token else []
        try:
            response: R = method(request, timeout=self.timeout_s, metadata=metadata)
            return response
        except grpc.RpcError as rpc_error:
            error: AtxError = from_rpc_error(rpc_error)
            if type(error) is UnavailableError:
                mode = "TLS" if self.tls else "plaintext"
                error = UnavailableError(
                    f"cannot reach {self.address} ({mode}): {error.message}",
                    address=self.address,
                    tls=self.tls,
                )
            raise error from None

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AdminClient(_Client):
    """AdminService of one TC. ``token`` per call overrides the default one;
    ``tls_ca`` (a PEM CA bundle path) switches the channel to TLS."""

    def __init__(
        self,
        address: str,
        token: str = "",
        timeout_s: float = 30.0,
        tls_ca: str = "",
        tls_server_name: str = "",
    ) -> None:
        super().__init__(address, token, timeout_s, tls_ca, tls_server_name)
        self.stub = admin_pb2_grpc.AdminServiceStub(self.channel)

    def list_globals(
        self, request: admin_pb2.ListGlobalSessionsRequest, token: str | None = None
    ) -> admin_pb2.ListGlobalSessionsResponse:
        return self._call(
            self.stub.ListGlobalSessions, request, admin_pb2.ListGlobalSessionsResponse, token
        )

    def get_global(self, xid: str, token: str | None = None) -> admin_pb2.GetGlobalSessionResponse:
        return self._call(
            self.stub.GetGlobalSession,
            admin_pb2.GetGlobalSessionRequest(xid=xid),
            admin_pb2.GetGlobalSessionResponse,
            token,
        )

    def list_locks(
        self, request: admin_pb2.ListGlobalLocksRequest, token: str | None = None
    ) -> admin_pb2.ListGlobalLocksResponse:
        return self._call(
            self.stub.ListGlobalLocks, request, admin_pb2.ListGlobalLocksResponse, token
        )

    def list_audit(
        self, request: admin_pb2.ListAuditLogRequest, token: str | None = None
    ) -> admin_pb2.ListAuditLogResponse:
        return self._call(self.stub.ListAuditLog, request, admin_pb2.ListAuditLogResponse, token)

    def retry(
        self, xid: str, operator: str = "", token: str | None = None
    ) -> admin_pb2.RetryPhaseTwoResponse:
        request = admin_pb2.RetryPhaseTwoRequest(xid=xid, operator=operator)
        return self._call(self.stub.RetryPhaseTwo, request, admin_pb2.RetryPhaseTwoResponse, token)

    def rollback(
        self, xid: str, confirm: bool, operator: str = "", token: str | None = None
    ) -> admin_pb2.RollbackGlobalSessionResponse:
        request = admin_pb2.RollbackGlobalSessionRequest(
            xid=xid, operator=operator, confirm=confirm
        )
        return self._call(
            self.stub.RollbackGlobalSession, request, admin_pb2.RollbackGlobalSessionResponse, token
        )

    def stop_retry(
        self, xid: str, operator: str = "", token: str | None = None
    ) -> admin_pb2.StopRetryResponse:
        request = admin_pb2.StopRetryRequest(xid=xid, operator=operator)
        return self._call(self.stub.StopRetry, request, admin_pb2.StopRetryResponse, token)

    def resume_retry(
        self, xid: str, operator: str = "", token: str | None = None
    ) -> admin_pb2.ResumeRetryResponse:
        request = admin_pb2.ResumeRetryRequest(xid=xid, operator=operator)
        return self._call(self.stub.ResumeRetry, request, admin_pb2.ResumeRetryResponse, token)

    def delete(
        self, xid: str, confirm: bool, operator: str = "", token: str | None = None
    ) -> admin_pb2.DeleteGlobalSessionResponse:
        request = admin_pb2.DeleteGlobalSessionRequest(xid=xid, operator=operator, confirm=confirm)
        return self._call(
            self.stub.DeleteGlobalSession, request, admin_pb2.DeleteGlobalSessionResponse, token
        )


class DeferredCallClient(_Client):
    """DeferredCallService of one service process."""

    def __init__(self, address: str, token: str = "", timeout_s: float = 30.0) -> None:
        super().__init__(address, token, timeout_s)
        self.stub = deferred_call_pb2_grpc.DeferredCallServiceStub(self.channel)

    def list(
        self, state: int = 0, page_size: int = 0
    ) -> deferred_call_pb2.ListDeferredCallsResponse:
        request = deferred_call_pb2.ListDeferredCallsRequest(
            state=deferred_call_pb2.DeferredCallState.ValueType(state), page_size=page_size
        )
        return self._call(
            self.stub.ListDeferredCalls, request, deferred_call_pb2.ListDeferredCallsResponse
        )

    def retry(self, call_id: str) -> deferred_call_pb2.RetryDeferredCallResponse:
        request = deferred_call_pb2.RetryDeferredCallRequest(id=call_id)
        return self._call(
            self.stub.RetryDeferredCall, request, deferred_call_pb2.RetryDeferredCallResponse
        )
