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
from typing import Any, Generic, Protocol, TypeVar

import grpc

from atx import errors
from atx.grpc_channels import open_channel
from atx.metadata import bearer
from atx.rm.config import Config, get_config, on_reconfigure
from atx.rm.launched import BeginSpec, XidBlock
from atx.status import BranchStatus, BranchType, GlobalStatus
from atx.v1 import resource_manager_pb2 as rm_pb2
from atx.v1 import resource_manager_pb2_grpc as rm_grpc
from atx.v1 import transaction_manager_pb2 as tm_pb2
from atx.v1 import transaction_manager_pb2_grpc as tm_grpc

__all__ = [
    "BranchCalls",
    "Call",
    "Calls",
    "CommitResult",
    "Endpoint",
    "Failover",
    "LockQueryResult",
    "TCClient",
    "TMCalls",
    "get_tc_client",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class LockQueryResult:
    lockable: bool
    holder_xid: str


@dataclass(frozen=True)
class CommitResult:
    status: GlobalStatus
    #: The caller's branches whose phase two the TC left to the caller.
    caller_phase_two: tuple[int, ...] = ()


class TMCalls(Protocol):
    """What a launcher asks of the TC (:class:`TCClient`, or the async one bridged)."""

    def begin(self, name: str, timeout_ms: int) -> str: ...
    def make_xid(self) -> str | None: ...
    def begin_xid(self, xid: str, spec: BeginSpec) -> None: ...
    def commit(self, xid: str) -> GlobalStatus: ...
    def commit_launched(self, xid: str, caller_branch_ids: Sequence[int]) -> CommitResult: ...
    def rollback(self, xid: str) -> GlobalStatus: ...
    def get_status(self, xid: str) -> GlobalStatus: ...


class BranchCalls(Protocol):
    """What a branch asks of the TC (:class:`TCClient`, or the async one bridged)."""

    def branch_register(
        self,
        xid: str,
        resource_id: str,
        lock_keys: str,
        *,
        lock_wait_ms: int = 0,
        begin: BeginSpec | None = None,
    ) -> int: ...
    def branch_report(self, xid: str, branch_id: int, status: BranchStatus) -> None: ...
    def lock_query(self, resource_id: str, lock_keys: str, xid: str = "") -> LockQueryResult: ...


class Endpoint:
    """One TC address: its channel (sync or grpc.aio) and the stubs over it."""

    def __init__(self, address: str, channel: Any) -> None:
        self.address = address
        self.channel = channel
        self.tm = tm_grpc.TransactionManagerServiceStub(channel)
        self.rm = rm_grpc.ResourceManagerServiceStub(channel)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One RPC ready to send: the stub method it goes to, the request, the reply's reading."""

    rpc: Callable[[Endpoint], Callable[..., Any]]
    request: Any
    read: Callable[[Any], T]
    #: Seconds the TC may hold the call on purpose (a registration waiting for a
    #: lock), added to the client's timeout.
    waits: float = 0.0


def _status(reply: Any) -> GlobalStatus:
    return GlobalStatus(reply.status)


def _commit_result(reply: Any) -> CommitResult:
    return CommitResult(GlobalStatus(reply.status), tuple(reply.caller_phase_two))


def _xid_block(reply: Any) -> tuple[str, int, int]:
    return str(reply.xid_prefix), int(reply.first_transaction_id), int(reply.count)


def unimplemented(error: errors.AtxError) -> bool:
    """A TC older than the call answered it (UNIMPLEMENTED)."""
    return bool(error.details.get("grpc_code") == grpc.StatusCode.UNIMPLEMENTED.name)


class Calls:
    """Request building and reply reading, shared by the sync and the async client."""

    def __init__(self, application_id: str, client_id: str) -> None:
        self.application_id = application_id
        self.client_id = client_id

    def begin(self, name: str, timeout_ms: int) -> Call[str]:
        request = self.begin_request(BeginSpec(name, timeout_ms, 0))
        return Call(lambda e: e.tm.Begin, request, lambda r: str(r.xid))

    def begin_request(self, spec: BeginSpec, xid: str = "") -> tm_pb2.BeginRequest:
        return tm_pb2.BeginRequest(
            timeout_ms=spec.timeout_ms,
            transaction_name=spec.name,
            application_id=self.application_id,
            xid=xid,
            elapsed_ms=spec.elapsed_ms,
        )

    def begin_xid(self, xid: str, spec: BeginSpec) -> Call[None]:
        return Call(lambda e: e.tm.Begin, self.begin_request(spec, xid), lambda r: None)

    def reserve_xids(self) -> Call[tuple[str, int, int]]:
        return Call(lambda e: e.tm.ReserveXids, tm_pb2.ReserveXidsRequest(), _xid_block)

    def commit(self, xid: str) -> Call[GlobalStatus]:
        return Call(lambda e: e.tm.Commit, tm_pb2.CommitRequest(xid=xid), _status)

    def commit_launched(self, xid: str, caller_branch_ids: Sequence[int]) -> Call[CommitResult]:
        request = tm_pb2.CommitRequest(xid=xid, caller_branch_ids=caller_branch_ids)
        return Call(lambda e: e.tm.Commit, request, _commit_result)

    def rollback(self, xid: str) -> Call[GlobalStatus]:
        return Call(lambda e: e.tm.Rollback, tm_pb2.RollbackRequest(xid=xid), _status)

    def get_status(self, xid: str) -> Call[GlobalStatus]:
        return Call(lambda e: e.tm.GetStatus, tm_pb2.GetStatusRequest(xid=xid), _status)

    def global_report(self, xid: str, status: GlobalStatus) -> Call[GlobalStatus]:
        request = tm_pb2.GlobalReportRequest(xid=xid, status=int(status))  # type: ignore[arg-type]
        return Call(lambda e: e.tm.GlobalReport, request, _status)

    def branch_register(
        self,
        xid: str,
        resource_id: str,
        lock_keys: str,
        branch_type: BranchType = BranchType.AT,
        application_data: str = "",
        lock_wait_ms: int = 0,
        begin: BeginSpec | None = None,
    ) -> Call[int]:
        request = rm_pb2.BranchRegisterRequest(
            xid=xid,
            resource_id=resource_id,
            branch_type=int(branch_type),  # type: ignore[arg-type]
            lock_keys=lock_keys,
            application_data=application_data,
            client_id=self.client_id,
            lock_wait_ms=lock_wait_ms,
            begin=None if begin is None else self.begin_request(begin),
        )
        return Call(
            lambda e: e.rm.BranchRegister,
            request,
            lambda r: int(r.branch_id),
            waits=lock_wait_ms / 1000,
        )

    def branch_report(
        self, xid: str, branch_id: int, status: BranchStatus, application_data: str = ""
    ) -> Call[None]:
        request = rm_pb2.BranchReportRequest(
            xid=xid,
            branch_id=branch_id,
            status=int(status),  # type: ignore[arg-type]
            application_data=application_data,
        )
        return Call(lambda e: e.rm.BranchReport, request, lambda r: None)

    def lock_query(
        self,
        resource_id: str,
        lock_keys: str,
        xid: str = "",
        branch_type: BranchType = BranchType.AT,
    ) -> Call[LockQueryResult]:
        request = rm_pb2.LockQueryRequest(
            xid=xid,
            resource_id=resource_id,
            branch_type=int(branch_type),  # type: ignore[arg-type]
            lock_keys=lock_keys,
        )
        return Call(
            lambda e: e.rm.LockQuery, request, lambda r: LockQueryResult(r.lockable, r.holder_xid)
        )


class Failover:
    """The addresses of one logical TC and the failover rules, shared by both clients.

    A call goes to the preferred address first; UNAVAILABLE moves it to the next
    one, any other error is mapped by :func:`atx.errors.from_rpc_error`.
    """

    def __init__(self, endpoints: list[Endpoint], tls: bool, timeout: float, token: str | None):
        self.endpoints = endpoints
        self.tls = tls
        self.timeout = timeout
        self.metadata: tuple[tuple[str, str], ...] = (bearer(token),) if token else ()
        self._preferred = 0
        self._lock = threading.Lock()

    @property
    def addresses(self) -> list[str]:
        return [e.address for e in self.endpoints]

    def order(self) -> list[int]:
        """The endpoint indices to try, the preferred one first."""
        count, start = len(self.endpoints), self._preferred
        return [(start + step) % count for step in range(count)]

    def succeeded(self, index: int) -> None:
        if index != self._preferred:
            with self._lock:
                self._preferred = index

    def fail_over(self, endpoint: Endpoint, error: grpc.RpcError) -> None:
        """Returns to try the next address (UNAVAILABLE); raises the mapped error otherwise."""
        if error.code() != grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
            raise errors.from_rpc_error(error) from None
        logger.warning("TC %s unavailable, failing over", endpoint.address)

    def exhausted(self, last: grpc.RpcError) -> errors.AtxError:
        failure = errors.from_rpc_error(last)
        if type(failure) is errors.UnavailableError:
            # Name the addresses (and TLS): a bad CA looks like a dead TC otherwise.
            mode = "TLS" if self.tls else "plaintext"
            failure = errors.UnavailableError(
                f"cannot reach the TC at {', '.join(self.addresses)} ({mode}): {failure.message}",
                addresses=",".join(self.addresses),
                tls=self.tls,
            )
        return failure


def no_address_error() -> errors.InvalidArgumentError:
    return errors.InvalidArgumentError(
        "no TC address configured: call rm.configure(tc_addresses=[...]) or set ATX_TC_ADDRESSES"
    )


C = TypeVar("C", bound="ClientBase")


class ClientBase:
    """What the sync and the async client share: endpoints, failover, request building."""

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
            raise no_address_error()
        endpoints = [
            Endpoint(a, self._open(a, tls_ca=tls_ca, tls_server_name=tls_server_name))
            for a in addresses
        ]
        self._failover = Failover(endpoints, bool(tls_ca), timeout, token)
        self._calls = Calls(application_id, client_id)
        #: XIDs this client makes itself (TransactionManagerService.ReserveXids).
        self.xids = XidBlock()
        self.tls = bool(tls_ca)
        self.application_id = application_id
        self.client_id = client_id
        self.timeout = timeout

    @staticmethod
    def _open(address: str, *, tls_ca: str, tls_server_name: str) -> Any:
        """A channel to ``address``: sync here, grpc.aio in the async client."""
        return open_channel(address, tls_ca=tls_ca, tls_server_name=tls_server_name)

    @classmethod
    def from_config(cls: type[C], config: Config) -> C:
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
        return self._failover.addresses


class TCClient(ClientBase):
    """Calls to one logical TC served at one or more addresses."""

    def close(self) -> None:
        for endpoint in self._failover.endpoints:
            endpoint.channel.close()

    def _run(self, call: Call[T]) -> T:
        """Send ``call`` to the preferred address, failing over on UNAVAILABLE."""
        failover = self._failover
        last: grpc.RpcError | None = None
        for index in failover.order():
            endpoint = failover.endpoints[index]
            try:
                reply = call.rpc(endpoint)(
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

    # --- TM --------------------------------------------------------------------

    def begin(self, name: str, timeout_ms: int) -> str:
        return self._run(self._calls.begin(name, timeout_ms))

    def make_xid(self) -> str | None:
        """An XID for a new global transaction, made here: no round trip but one
        ReserveXids per block. None from a TC too old to reserve XIDs: the
        launcher then calls :meth:`begin`."""
        xid = self.xids.take()
        while xid is None and self.xids.supported:
            try:
                self.xids.fill(*self._run(self._calls.reserve_xids()))
            except errors.AtxError as error:
                if not unimplemented(error):
                    raise
                self.xids.supported = False
            xid = self.xids.take()
        return xid

    def begin_xid(self, xid: str, spec: BeginSpec) -> None:
        """Begin the TC's session of an XID made by :meth:`make_xid`."""
        self._run(self._calls.begin_xid(xid, spec))

    def commit(self, xid: str) -> GlobalStatus:
        return self._run(self._calls.commit(xid))

    def commit_launched(self, xid: str, caller_branch_ids: Sequence[int]) -> CommitResult:
        """Commit, naming the branches this process registered: the TC leaves their
        phase two to the caller and says which (:attr:`CommitResult.caller_phase_two`)."""
        return self._run(self._calls.commit_launched(xid, caller_branch_ids))

    def rollback(self, xid: str) -> GlobalStatus:
        return self._run(self._calls.rollback(xid))

    def get_status(self, xid: str) -> GlobalStatus:
        return self._run(self._calls.get_status(xid))

    def global_report(self, xid: str, status: GlobalStatus) -> GlobalStatus:
        return self._run(self._calls.global_report(xid, status))

    # --- RM outbound -------------------------------------------------------------

    def branch_register(
        self,
        xid: str,
        resource_id: str,
        lock_keys: str,
        branch_type: BranchType = BranchType.AT,
        application_data: str = "",
        *,
        lock_wait_ms: int = 0,
        begin: BeginSpec | None = None,
    ) -> int:
        """Register a branch; on a lock conflict the TC may wait up to ``lock_wait_ms``
        for the holder before it answers LockConflictError. ``begin``: the first
        registration of an XID this process made, which begins it at the TC."""
        call = self._calls.branch_register(
            xid, resource_id, lock_keys, branch_type, application_data, lock_wait_ms, begin
        )
        return self._run(call)

    def branch_report(
        self, xid: str, branch_id: int, status: BranchStatus, application_data: str = ""
    ) -> None:
        self._run(self._calls.branch_report(xid, branch_id, status, application_data))

    def lock_query(
        self,
        resource_id: str,
        lock_keys: str,
        xid: str = "",
        branch_type: BranchType = BranchType.AT,
    ) -> LockQueryResult:
        return self._run(self._calls.lock_query(resource_id, lock_keys, xid, branch_type))


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
