"""A scripted RM (a real gRPC peer) and a minimal TM, shared by the TC tests.

``ScriptedRM`` attaches to one or more TC nodes over the ``Attach`` stream
(with ``reconnect=True`` it re-attaches when a node dies or restarts),
records every phase-two command it receives in ``received``, and answers
each as its ``answer`` function says: a BranchStatus, a (BranchStatus,
message) pair, or None to hold the command unanswered (to freeze phase two,
for example before killing the TC). Without ``answer`` it succeeds. With
``batch=True`` it declares that it takes BranchCommandBatch messages and
answers each batch with one BranchResultBatch; ``batch_sizes`` records how
many commands each phase-two message carried.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import grpc

from atx.clock import now_ms
from atx.errors import from_rpc_error
from atx.status import BranchStatus, BranchType, GlobalStatus
from atx.v1 import resource_manager_pb2 as rm_pb2
from atx.v1 import resource_manager_pb2_grpc as rm_grpc
from atx.v1 import transaction_manager_pb2 as tm_pb2
from atx.v1 import transaction_manager_pb2_grpc as tm_grpc

__all__ = ["Received", "ScriptedRM", "Tm", "succeed"]


@dataclass(frozen=True)
class Received:
    """One BranchCommit or BranchRollback the RM received."""

    action: str  # "commit" or "rollback"
    xid: str
    branch_id: int
    resource_id: str
    application_data: str = ""
    address: str = ""  # the TC node that sent it
    node_id: str = ""
    time: float = field(default_factory=time.time)

    @property
    def rollback(self) -> bool:
        return self.action == "rollback"


Reply = tuple[BranchStatus, str] | BranchStatus | None
Answer = Callable[[Received], Reply]


def succeed(command: Received) -> Reply:
    """The default answer: the branch is done."""
    if command.rollback:
        return BranchStatus.PHASE_TWO_ROLLBACKED
    return BranchStatus.PHASE_TWO_COMMITTED


class _Attachment:
    """One Attach stream to one TC address, re-opened until stopped."""

    def __init__(self, peer: ScriptedRM, address: str) -> None:
        self.peer = peer
        self.address = address
        self.node_id = ""
        self.attached = threading.Event()
        self.detached = threading.Event()
        #: Registered answers received, over every stream.
        self.registrations = 0
        #: Attach streams opened (a reconnect opens another).
        self.streams = 0
        self._beat_s = 1.0
        self._last_beat = time.monotonic()
        self._outbox: queue.Queue[rm_pb2.AttachRequest | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=f"rm-{address}", daemon=True)
        self._call: grpc.Future | None = None
        self._channel: grpc.Channel | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._outbox.put(None)
        if self._call is not None:
            self._call.cancel()
        self._thread.join(10)

    def send(self, message: rm_pb2.AttachRequest) -> None:
        self._outbox.put(message)

    def _requests(
        self, outbox: queue.Queue[rm_pb2.AttachRequest | None]
    ) -> Iterator[rm_pb2.AttachRequest]:
        yield rm_pb2.AttachRequest(
            register=rm_pb2.RegisterResources(
                client_id=self.peer.client_id,
                application_id="rm-peer",
                resource_ids=list(self.peer.resource_ids),
                batch_commands=self.peer.batch,
            )
        )
        while not self.peer.stopped.is_set():
            try:
                message = outbox.get(timeout=0.05)
            except queue.Empty:
                beat = self.peer.heartbeat_s if self.peer.heartbeat_s is not None else self._beat_s
                if time.monotonic() >= self._last_beat + beat:
                    self._last_beat = time.monotonic()
                    yield rm_pb2.AttachRequest(heartbeat=rm_pb2.Heartbeat(sent_time_ms=now_ms()))
                continue
            if message is None:
                return
            yield message

    def _loop(self) -> None:
        while not self.peer.stopped.is_set():
            self._beat_s = 1.0
            self._last_beat = time.monotonic()
            # A fresh outbox per stream: answers meant for a dead stream are dropped.
            self._outbox = queue.Queue()
            try:
                with grpc.insecure_channel(self.address) as channel:
                    stub = rm_grpc.ResourceManagerServiceStub(channel)
                    call = stub.Attach(self._requests(self._outbox))
                    self._call = call
                    self.streams += 1
                    for response in call:
                        self._handle(response)
            except grpc.RpcError:
                pass
            finally:
                self.attached.clear()
                self.detached.set()
            if not self.peer.reconnect:
                return
            self.peer.stopped.wait(0.2)

    def _handle(self, response: rm_pb2.AttachResponse) -> None:
        kind = response.WhichOneof("kind")
        if kind == "registered":
            self.registrations += 1
            self.node_id = response.registered.node_id
            if response.registered.heartbeat_interval_ms > 0:
                self._beat_s = response.registered.heartbeat_interval_ms / 2000
            self.attached.set()
            return
        if kind == "branch_commands":
            batch = response.branch_commands
            commands = [(c, False) for c in batch.commits] + [(c, True) for c in batch.rollbacks]
        elif kind in ("branch_commit", "branch_rollback"):
            rollback = kind == "branch_rollback"
            body = response.branch_rollback if rollback else response.branch_commit
            commands = [(body, rollback)]
        else:
            return
        with self.peer.lock:
            self.peer.batch_sizes.append(len(commands))
        results = [r for body, rollback in commands if (r := self._answer(body, rollback))]
        if kind == "branch_commands" and results:
            batch_results = rm_pb2.BranchResultBatch(results=results)
            self.send(rm_pb2.AttachRequest(branch_results=batch_results))
        else:
            for result in results:
                self.send(rm_pb2.AttachRequest(branch_result=result))

    def _answer(self, body: rm_pb2.BranchCommand, rollback: bool) -> rm_pb2.BranchResult | None:
        command = Received(
            action="rollback" if rollback else "commit",
            xid=body.xid,
            branch_id=body.branch_id,
            resource_id=body.resource_id,
            application_data=body.application_data,
            address=self.address,
            node_id=self.node_id,
        )
        with self.peer.lock:
            self.peer.received.append(command)
        reply = self.peer.answer(command)
        if reply is None:
            return None  # held: never answered
        status, message = reply if isinstance(reply, tuple) else (reply, "")
        return rm_pb2.BranchResult(
            request_id=body.request_id,
            xid=body.xid,
            branch_id=body.branch_id,
            status=int(status),  # type: ignore[arg-type]
            message=message,
        )


class ScriptedRM:
    """A scripted RM attached to ``addresses`` (one address or several)."""

    def __init__(
        self,
        addresses: str | Sequence[str],
        resource_ids: Sequence[str] = ("db1",),
        client_id: str = "test-rm",
        answer: Answer | None = None,
        *,
        reconnect: bool = False,
        batch: bool = False,
    ) -> None:
        if isinstance(addresses, str):
            addresses = [addresses]
        self.resource_ids = list(resource_ids)
        self.client_id = client_id
        self.answer: Answer = answer or succeed
        self.reconnect = reconnect
        self.batch = batch
        #: Commands per phase-two message received (1 for a plain BranchCommit/Rollback).
        self.batch_sizes: list[int] = []
        #: Overrides the heartbeat interval the TC asked for (seconds).
        self.heartbeat_s: float | None = None
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.attachments = {a: _Attachment(self, a) for a in addresses}

    def start(self, timeout: float = 20.0) -> ScriptedRM:
        """Attach everywhere and wait until every TC has answered Registered."""
        for attachment in self.attachments.values():
            attachment.start()
        self.wait_attached(timeout)
        return self

    def close(self) -> None:
        self.stopped.set()
        for attachment in self.attachments.values():
            attachment.stop()

    def __enter__(self) -> ScriptedRM:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def wait_attached(self, timeout: float = 20.0) -> None:
        for address, attachment in self.attachments.items():
            if not attachment.attached.wait(timeout):
                raise AssertionError(f"the scripted RM could not attach to {address}")

    def add_resources(self, resource_ids: Sequence[str]) -> None:
        """Register more resources on the open streams (no reconnect)."""
        self.resource_ids += [r for r in resource_ids if r not in self.resource_ids]
        message = rm_pb2.AttachRequest(
            register=rm_pb2.RegisterResources(
                client_id=self.client_id,
                application_id="rm-peer",
                resource_ids=self.resource_ids,
                batch_commands=self.batch,
            )
        )
        for attachment in self.attachments.values():
            attachment.send(message)

    def commands(self, predicate: Callable[[Received], bool] = lambda _c: True) -> list[Received]:
        """A snapshot of the commands received so far that match ``predicate``."""
        with self.lock:
            return [c for c in self.received if predicate(c)]

    # --- the RM's unary calls ---------------------------------------------------
    def register(self, address: str, xid: str, lock_keys: str, resource_id: str = "") -> int:
        with grpc.insecure_channel(address) as channel:
            stub = rm_grpc.ResourceManagerServiceStub(channel)
            try:
                reply = stub.BranchRegister(
                    rm_pb2.BranchRegisterRequest(
                        xid=xid,
                        resource_id=resource_id or self.resource_ids[0],
                        branch_type=int(BranchType.AT),  # type: ignore[arg-type]
                        lock_keys=lock_keys,
                        client_id=self.client_id,
                    ),
                    timeout=10,
                )
            except grpc.RpcError as error:
                raise from_rpc_error(error) from None
        return int(reply.branch_id)

    def lockable(self, address: str, lock_keys: str, resource_id: str = "") -> bool:
        with grpc.insecure_channel(address) as channel:
            stub = rm_grpc.ResourceManagerServiceStub(channel)
            reply = stub.LockQuery(
                rm_pb2.LockQueryRequest(
                    resource_id=resource_id or self.resource_ids[0],
                    branch_type=int(BranchType.AT),  # type: ignore[arg-type]
                    lock_keys=lock_keys,
                ),
                timeout=10,
            )
        return bool(reply.lockable)


class Tm:
    """A minimal TM: the TransactionManagerService calls, one TC address each."""

    def __init__(self, timeout: float = 15.0) -> None:
        self.timeout = timeout

    def _call(self, address: str, method: str, request: object) -> object:
        with grpc.insecure_channel(address) as channel:
            stub = tm_grpc.TransactionManagerServiceStub(channel)
            try:
                return getattr(stub, method)(request, timeout=self.timeout)
            except grpc.RpcError as error:
                raise from_rpc_error(error) from None

    def begin(self, address: str, timeout_ms: int = 60_000, name: str = "test") -> str:
        reply = self._call(
            address,
            "Begin",
            tm_pb2.BeginRequest(timeout_ms=timeout_ms, transaction_name=name, application_id="t"),
        )
        assert isinstance(reply, tm_pb2.BeginResponse)
        return reply.xid

    def commit(self, address: str, xid: str) -> GlobalStatus:
        reply = self._call(address, "Commit", tm_pb2.CommitRequest(xid=xid))
        assert isinstance(reply, tm_pb2.CommitResponse)
        return GlobalStatus(reply.status)

    def rollback(self, address: str, xid: str) -> GlobalStatus:
        reply = self._call(address, "Rollback", tm_pb2.RollbackRequest(xid=xid))
        assert isinstance(reply, tm_pb2.RollbackResponse)
        return GlobalStatus(reply.status)

    def status(self, address: str, xid: str) -> GlobalStatus:
        reply = self._call(address, "GetStatus", tm_pb2.GetStatusRequest(xid=xid))
        assert isinstance(reply, tm_pb2.GetStatusResponse)
        return GlobalStatus(reply.status)
