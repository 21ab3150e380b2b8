"""A scripted RM for TC-CORE's tests: a real gRPC peer on the real Attach stream.

It registers resource ids, answers BranchCommit/BranchRollback as its
``answer`` function says (or not at all when it returns None), sends
heartbeats, and records every command it received.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc

from atx.clock import now_ms
from atx.status import BranchStatus
from atx.v1 import resource_manager_pb2 as rm_pb2
from atx.v1 import resource_manager_pb2_grpc as rm_grpc


@dataclass(frozen=True)
class Received:
    action: str  # "commit" or "rollback"
    xid: str
    branch_id: int
    resource_id: str


Answer = Callable[[Received], "tuple[BranchStatus, str] | None"]


def always_ok(command: Received) -> tuple[BranchStatus, str]:
    if command.action == "commit":
        return BranchStatus.PHASE_TWO_COMMITTED, ""
    return BranchStatus.PHASE_TWO_ROLLBACKED, ""


class ScriptedRM:
    def __init__(
        self,
        address: str,
        resource_ids: list[str],
        client_id: str = "test-rm",
        answer: Answer = always_ok,
        metadata: tuple[tuple[str, str], ...] = (),
        delay_s: float = 0.0,
    ) -> None:
        self.address = address
        self.resource_ids = resource_ids
        self.client_id = client_id
        self.answer = answer
        self.delay_s = delay_s
        self.received: list[Received] = []
        self.registered = threading.Event()
        self.heartbeat_s = 1.0
        self._outbox: queue.Queue[rm_pb2.AttachRequest | None] = queue.Queue()
        self._channel = grpc.insecure_channel(address)
        self._stub = rm_grpc.ResourceManagerServiceStub(self._channel)
        self._metadata = metadata
        self._closed = threading.Event()
        self.error: grpc.RpcError | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, timeout: float = 10.0) -> ScriptedRM:
        self._outbox.put(
            rm_pb2.AttachRequest(
                register=rm_pb2.RegisterResources(
                    client_id=self.client_id, resource_ids=self.resource_ids
                )
            )
        )
        self._thread.start()
        if not self.registered.wait(timeout):
            raise TimeoutError(f"RM {self.client_id} not registered: {self.error}")
        threading.Thread(target=self._beat, daemon=True).start()
        return self

    def _requests(self) -> Iterator[rm_pb2.AttachRequest]:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            yield item

    def _beat(self) -> None:
        while not self._closed.wait(self.heartbeat_s):
            self._outbox.put(
                rm_pb2.AttachRequest(heartbeat=rm_pb2.Heartbeat(sent_time_ms=now_ms()))
            )

    def _run(self) -> None:
        try:
            for response in self._stub.Attach(self._requests(), metadata=self._metadata):
                kind = response.WhichOneof("kind")
                if kind == "registered":
                    self.heartbeat_s = response.registered.heartbeat_interval_ms / 1000 / 2
                    self.registered.set()
                elif kind in ("branch_commit", "branch_rollback"):
                    command = getattr(response, kind)
                    threading.Thread(target=self._handle, args=(kind, command), daemon=True).start()
        except grpc.RpcError as error:
            self.error = error
        finally:
            self._closed.set()

    def _handle(self, kind: str, command: rm_pb2.BranchCommand) -> None:
        received = Received(
            "commit" if kind == "branch_commit" else "rollback",
            command.xid,
            command.branch_id,
            command.resource_id,
        )
        self.received.append(received)
        if self.delay_s:
            time.sleep(self.delay_s)
        answer = self.answer(received)
        if answer is None or self._closed.is_set():
            return
        status, message = answer
        self._outbox.put(
            rm_pb2.AttachRequest(
                branch_result=rm_pb2.BranchResult(
                    request_id=command.request_id,
                    xid=command.xid,
                    branch_id=command.branch_id,
                    status=int(status),  # type: ignore[arg-type]
                    message=message,
                )
            )
        )

    def close(self) -> None:
        self._closed.set()
        self._outbox.put(None)
        self._channel.close()
        self._thread.join(5)

    def __enter__(self) -> ScriptedRM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
