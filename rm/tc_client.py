"""A typed client of the TC: the TM calls and the RM's outbound calls.

Several TC addresses may be configured; a call that fails with UNAVAILABLE
moves on to the next address (failover). Every ``grpc.RpcError`` becomes an
``atx.errors.AtxError`` with :func:`atx.errors.from_rpc_error`, and the
bearer token, when configured, rides in the call metadata.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from atx import errors
from atx.grpc_channels import open_channel
from atx.metadata import bearer
from atx.rm.config import Config, get_config, on_reconfigure
from atx.status import BranchStatus, BranchType, GlobalStatus
from atx.v1 import resource_manager_pb2 as rm_pb2
from atx.v1 import resource_manager_pb2_grpc as rm_grpc
from atx.v1 import transaction_manager_pb2 as tm_pb2
from atx.v1 import transaction_manager_pb2_grpc as tm_grpc

__all__ = ["LockQueryResult", "TCClient", "get_tc_client"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class LockQueryResult:
    lockable: bool
    holder_xid: str


class _Endpoint:
    def __init__(self, address: str, tls_ca: str = "", tls_server_name: str = "") -> None:
        self.address = address
        self.channel = open_channel(address, tls_ca=tls_ca, tls_server_name=tls_server_name)
        self.tm = tm_grpc.TransactionManagerServiceStub(self.channel)
        self.rm = rm_grpc.ResourceManagerServiceStub(self.channel)


class TCClient:
    """Calls to one logical TC served at one or more addresses."""

    def __init__(
        self,
        addresses: Sequence[str],
        application_id: str = "atx-app",
        token: str | None = None,
        client_id: str = "",
        timeout: float = 10.0,
        tls_ca: str = "",
        tls_server_name: str = "",
    ) -> None:
        if not addresses:
            raise errors.InvalidArgumentError(
                "no TC address configured: call rm.configure(tc_addresses=[...]) "
                "or set ATX_TC_ADDRESSES"
            )
        self._endpoints = [_Endpoint(a, tls_ca, tls_server_name) for a in addresses]
        self.tls = bool(tls_ca)
        self._preferred = 0
        self._lock = threading.Lock()
        self.application_id = application_id
        self.client_id = client_id
        self.timeout = timeout
        self._metadata: tuple[tuple[str, str], ...] = (bearer(token),) if token else ()

    @classmethod
    def from_config(cls, config: Config) -> TCClient:
        return cls(
            config.tc_addresses,
            config.application_id,
            config.token,
            config.client_id,
            config.rpc_timeout,
            config.tls_ca,
            config.tls_server_name,
        )

    @property
    def addresses(self) -> list[str]:
        return [e.address for e in self._endpoints]

    def close(self) -> None:
        for endpoint in self._endpoints:
            endpoint.channel.close()

    def _call(self, rpc: Callable[[_Endpoint], Callable[..., T]], request: Any) -> T:
        """Send ``request`` to the preferred address, failing over on UNAVAILABLE."""
        count = len(self._endpoints)
        start = self._preferred
        last: grpc.RpcError | None = None
        for step in range(count):
            index = (start + step) % count
            endpoint = self._endpoints[index]
            try:
                reply = rpc(endpoint)(request, timeout=self.timeout, metadata=self._metadata)
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
                    logger.warning("TC %s unavailable, failing over", endpoint.address)
                    last = error
                    continue
                raise errors.from_rpc_error(error) from None
            if index != start:
                with self._lock:
                    self._preferred = index
            return reply
        assert last is not None
        failure = errors.from_rpc_error(last)
        if type(failure) is errors.UnavailableError:
            # Name the addresses (and TLS): a bad CA looks like a dead TC otherwise.
            mode = "TLS" if self.tls else "plaintext"
            failure = errors.UnavailableError(
                f"cannot reach the TC at {', '.join(self.addresses)} ({mode}): {failure.message}",
                addresses=",".join(self.addresses),
                tls=self.tls,
            )
        raise failure from None

    # --- TM --------------------------------------------------------------------

    def begin(self, name: str, timeout_ms: int) -> str:
        request = tm_pb2.BeginRequest(
            timeout_ms=timeout_ms, transaction_name=name, application_id=self.application_id
        )
        reply: tm_pb2.BeginResponse = self._call(lambda e: e.tm.Begin, request)
        return reply.xid

    def commit(self, xid: str) -> GlobalStatus:
        reply: tm_pb2.CommitResponse = self._call(
            lambda e: e.tm.Commit, tm_pb2.CommitRequest(xid=xid)
        )
        return GlobalStatus(reply.status)

    def rollback(self, xid: str) -> GlobalStatus:
        reply: tm_pb2.RollbackResponse = self._call(
            lambda e: e.tm.Rollback, tm_pb2.RollbackRequest(xid=xid)
        )
        return GlobalStatus(reply.status)

    def get_status(self, xid: str) -> GlobalStatus:
        reply: tm_pb2.GetStatusResponse = self._call(
            lambda e: e.tm.GetStatus, tm_pb2.GetStatusRequest(xid=xid)
        )
        return GlobalStatus(reply.status)

    def global_report(self, xid: str, status: GlobalStatus) -> GlobalStatus:
        reply: tm_pb2.GlobalReportResponse = self._call(
            lambda e: e.tm.GlobalReport,
            tm_pb2.GlobalReportRequest(xid=xid, status=int(status)),  # type: ignore[arg-type]
        )
        return GlobalStatus(reply.status)

    # --- RM outbound -------------------------------------------------------------

    def branch_register(
        self,
        xid: str,
        resource_id: str,
        lock_keys: str,
        branch_type: BranchType = BranchType.AT,
        application_data: str = "",
    ) -> int:
        request = rm_pb2.BranchRegisterRequest(
            xid=xid,
            resource_id=resource_id,
            branch_type=int(branch_type),  # type: ignore[arg-type]
            lock_keys=lock_keys,
            application_data=application_data,
            client_id=self.client_id,
        )
        reply: rm_pb2.BranchRegisterResponse = self._call(lambda e: e.rm.BranchRegister, request)
        return reply.branch_id

    def branch_report(
        self, xid: str, branch_id: int, status: BranchStatus, application_data: str = ""
    ) -> None:
        request = rm_pb2.BranchReportRequest(
            xid=xid,
            branch_id=branch_id,
            status=int(status),  # type: ignore[arg-type]
            application_data=application_data,
        )
        self._call(lambda e: e.rm.BranchReport, request)

    def lock_query(
        self,
        resource_id: str,
        lock_keys: str,
        xid: str = "",
        branch_type: BranchType = BranchType.AT,
    ) -> LockQueryResult:
        request = rm_pb2.LockQueryRequest(
            xid=xid,
            resource_id=resource_id,
            branch_type=int(branch_type),  # type: ignore[arg-type]
            lock_keys=lock_keys,
        )
        reply: rm_pb2.LockQueryResponse = self._call(lambda e: e.rm.LockQuery, request)
        return LockQueryResult(reply.lockable, reply.holder_xid)


_client_lock = threading.Lock()
_client: TCClient | None = None


def get_tc_client() -> TCClient:
    """The process's TC client, built from :func:`rm.config.get_config` on first use."""
    global _client
    client = _client
    if client is not None:  # the hot path: no lock once built
        return client
    with _client_lock:
        if _client is None:
            _client = TCClient.from_config(get_config())
        return _client


def _reset() -> None:
    global _client
    with _client_lock:
        old, _client = _client, None
    if old is not None:
        old.close()


on_reconfigure(_reset)
