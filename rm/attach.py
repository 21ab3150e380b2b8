"""The RM's end of the TC's ``Attach`` stream: one per configured TC address.

A thread keeps the stream open: it sends ``RegisterResources`` first (and again
whenever a new resource is registered), then heartbeats, and reconnects with
backoff. Phase-two commands that arrive go to the :class:`Inbound` handler,
which answers through :meth:`AttachStream.send`; queued results go out as one
``BranchResultBatch`` when the TC said it understands them.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

import grpc

from atx.backoff import Backoff
from atx.clock import now_ms
from atx.grpc_channels import open_channel
from atx.metadata import bearer
from atx.rm.config import Config
from atx.v1 import resource_manager_pb2 as rm_pb2
from atx.v1 import resource_manager_pb2_grpc as rm_grpc

__all__ = ["STOP", "AttachStream", "Inbound", "Reply", "register_message"]

logger = logging.getLogger(__name__)

_DEFAULT_HEARTBEAT = 5.0
#: Reconnecting after a lost stream: 50 ms doubling to 5 s, jittered so that the RMs
#: of a restarted TC do not all come back in the same instant.
_RECONNECT = Backoff(0.05, 5.0)
#: Branch results per BranchResultBatch at most.
_MAX_RESULT_BATCH = 256
#: Ends the request generator (the stream closes).
STOP = object()
#: Wakes the request generator so that it announces new resources at once.
_WAKE = object()

#: Sends one message to the TC on the stream the command came from.
Reply = Callable[[rm_pb2.AttachRequest], None]


class Inbound(Protocol):
    """What the TC asks of the RM (Seata's ResourceManagerInbound)."""

    def on_commit(self, reply: Reply, command: rm_pb2.BranchCommand) -> None: ...
    def on_rollback(self, reply: Reply, command: rm_pb2.BranchCommand) -> None: ...


def register_message(config: Config, resource_ids: frozenset[str]) -> rm_pb2.AttachRequest:
    return rm_pb2.AttachRequest(
        register=rm_pb2.RegisterResources(
            client_id=config.client_id,
            application_id=config.application_id,
            resource_ids=sorted(resource_ids),
            batch_commands=True,
        )
    )


class AttachStream:
    """One TC address: a thread that keeps the Attach stream alive."""

    def __init__(
        self,
        address: str,
        config: Config,
        stopping: threading.Event,
        resource_ids: Callable[[], frozenset[str]],
        inbound: Inbound,
    ) -> None:
        self.address = address
        self.config = config
        self.stopping = stopping
        self.resource_ids = resource_ids
        self.inbound = inbound
        self.outbox: queue.Queue[object] = queue.Queue()
        self.heartbeat = _DEFAULT_HEARTBEAT
        self.connected = threading.Event()
        self.call: grpc.Future | None = None
        self.announced: frozenset[str] = frozenset()
        #: The TC understands BranchResultBatch (its Registered said so).
        self.batch_results = False
        self.thread = threading.Thread(
            target=self._run, name=f"atx-rm-attach-{address}", daemon=True
        )

    def send(self, message: rm_pb2.AttachRequest) -> None:
        self.outbox.put(message)

    def _requests(self, register: rm_pb2.AttachRequest) -> Iterator[rm_pb2.AttachRequest]:
        yield register
        carried: object | None = None  # taken from the outbox while merging, not yet sent
        while True:
            if carried is not None:
                item, carried = carried, None
            else:
                try:
                    item = self.outbox.get(timeout=self.heartbeat)
                except queue.Empty:
                    item = rm_pb2.AttachRequest(heartbeat=rm_pb2.Heartbeat(sent_time_ms=now_ms()))
            if item is STOP:
                return
            # A resource registered after this stream opened is announced on the
            # same stream; checked on every message, so none is ever missed.
            current = self.resource_ids()
            if current != self.announced:
                self.announced = current
                yield register_message(self.config, current)
            if item is _WAKE:
                continue
            assert isinstance(item, rm_pb2.AttachRequest)
            if self.batch_results and item.WhichOneof("kind") == "branch_result":
                item, carried = self._merge_results(item)
            yield item

    def _merge_results(self, first: rm_pb2.AttachRequest) -> tuple[rm_pb2.AttachRequest, object]:
        """``first`` and the results queued right behind it, as one message.

        Returns the message and the first queued item that is not a result (or None).
        """
        results = [first.branch_result]
        following: object = None
        while len(results) < _MAX_RESULT_BATCH:
            try:
                item = self.outbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, rm_pb2.AttachRequest) and item.WhichOneof("kind") == (
                "branch_result"
            ):
                results.append(item.branch_result)
            else:
                following = item
                break
        if len(results) == 1:
            return first, following
        batch = rm_pb2.BranchResultBatch(results=results)
        return rm_pb2.AttachRequest(branch_results=batch), following

    def _dispatch(self, response: rm_pb2.AttachResponse) -> None:
        kind = response.WhichOneof("kind")
        if kind == "registered":
            interval = response.registered.heartbeat_interval_ms
            self.heartbeat = interval / 1000 if interval > 0 else _DEFAULT_HEARTBEAT
            self.batch_results = response.registered.batch_results
            self.connected.set()
            logger.info("attached to TC %s", self.address)
        elif kind == "branch_commit":
            self.inbound.on_commit(self.send, response.branch_commit)
        elif kind == "branch_rollback":
            self.inbound.on_rollback(self.send, response.branch_rollback)
        elif kind == "branch_commands":
            for command in response.branch_commands.commits:
                self.inbound.on_commit(self.send, command)
            for command in response.branch_commands.rollbacks:
                self.inbound.on_rollback(self.send, command)

    def _run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            config = self.config
            channel: grpc.Channel | None = None
            try:
                channel = open_channel(
                    self.address, tls_ca=config.tls_ca, tls_server_name=config.tls_server_name
                )
                stub = rm_grpc.ResourceManagerServiceStub(channel)
                self.outbox = queue.Queue()
                self.batch_results = False
                metadata = (bearer(config.token),) if config.token else ()
                self.announced = self.resource_ids()
                register = register_message(config, self.announced)
                responses = stub.Attach(self._requests(register), metadata=metadata)
                self.call = responses
                if self.stopping.is_set():  # stop() ran before there was a call to cancel
                    responses.cancel()
                for response in responses:
                    self._dispatch(response)
                    if self.connected.is_set():
                        failures = 0
            except grpc.RpcError as error:
                if not self.stopping.is_set():
                    # The details carry the cause, e.g. a TLS handshake refused.
                    logger.info(
                        "Attach stream to %s ended: %s %s",
                        self.address,
                        error.code(),  # type: ignore[attr-defined]
                        error.details(),  # type: ignore[attr-defined]
                    )
            except Exception:
                logger.exception("Attach stream to %s failed", self.address)
            finally:
                self.call = None
                self.connected.clear()
                self.outbox.put(STOP)
                if channel is not None:
                    channel.close()
            failures += 1
            if self.stopping.wait(_RECONNECT.delay(failures)):
                return

    def wake(self) -> None:
        self.outbox.put(_WAKE)

    def stop(self) -> None:
        self.outbox.put(STOP)
        call = self.call
        if call is not None:
            call.cancel()
