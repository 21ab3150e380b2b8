"""Attach streams of RMs: the server side of the ``Attach`` RPC.

An RM opens the stream, names itself and its resources, and then receives
BranchCommit/BranchRollback commands, answering each with a BranchResult
carrying the same request id. Commands queued for one RM while the stream
was busy go out together in one BranchCommandBatch (when the RM said it
understands them): under load a stream message then carries many commands,
which is what makes phase two cheap (Seata merges messages the same way).
A later RegisterResources on the same stream adds resources to the stream
(answered with Registered again), so an RM need not reconnect to serve a new
resource. The registry picks, for a branch, the stream of the client that
registered it when live, else any live stream serving the branch's
resource. Streams silent for three heartbeat intervals are dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from atx.status import BranchStatus
from atx.tc.errors import BranchDispatchError, NoRMAttachedError
from atx.v1 import resource_manager_pb2 as rm_pb2

__all__ = ["DispatchFailure", "RmStream", "StreamRegistry"]

logger = logging.getLogger(__name__)

_CLOSED = object()
#: What stands in for a command's answer when there is none.
DispatchFailure = NoRMAttachedError | BranchDispatchError
#: Commands per BranchCommandBatch at most: bounds one message's size and the RM's burst.
_MAX_BATCH = 256


class _Waiter:
    """The answers to one dispatch of several commands: one future for all of
    them, not one per command (phase two of a busy TC sends hundreds a second)."""

    __slots__ = ("future", "outcomes", "remaining")

    def __init__(self, count: int) -> None:
        self.outcomes: list[rm_pb2.BranchResult | DispatchFailure | None] = [None] * count
        self.remaining = count
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if count == 0:
            self.future.set_result(None)

    def deliver(self, index: int, outcome: rm_pb2.BranchResult | DispatchFailure) -> None:
        if self.outcomes[index] is not None:
            return
        self.outcomes[index] = outcome
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():
            self.future.set_result(None)


@dataclass(eq=False)
class RmStream:
    client_id: str
    application_id: str
    resource_ids: frozenset[str]
    peer: str
    last_seen: float = field(default_factory=time.monotonic)
    outbox: asyncio.Queue[rm_pb2.AttachResponse | object] = field(default_factory=asyncio.Queue)
    #: request id -> (the waiter, the command's index in its dispatch)
    pending: dict[str, tuple[_Waiter, int]] = field(default_factory=dict)
    closed: bool = False
    #: The RM understands BranchCommandBatch (RegisterResources.batch_commands).
    batches: bool = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.outbox.put_nowait(_CLOSED)
        error = BranchDispatchError(f"RM {self.client_id} detached")
        for waiter, index in self.pending.values():
            waiter.deliver(index, error)
        self.pending.clear()


class StreamRegistry:
    """Live RM streams by resource id."""

    def __init__(self, node_id: str, heartbeat_interval_ms: int) -> None:
        self.node_id = node_id
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self._by_resource: dict[str, list[RmStream]] = {}
        self._ids = itertools.count(1)
        self._listeners: list[Callable[[RmStream], None]] = []
        self._closing = False

    def on_attach(self, listener: Callable[[RmStream], None]) -> None:
        """Call ``listener`` whenever an RM attaches (phase two may resume)."""
        self._listeners.append(listener)

    @property
    def streams(self) -> list[RmStream]:
        return list({id(c): c for cs in self._by_resource.values() for c in cs}.values())

    def _add(self, stream: RmStream) -> None:
        for resource in stream.resource_ids:
            self._by_resource.setdefault(resource, []).append(stream)
        logger.info(
            "RM %s attached from %s for %s",
            stream.client_id,
            stream.peer,
            sorted(stream.resource_ids),
        )
        for listener in self._listeners:
            listener(stream)

    def _extend(self, stream: RmStream, register: rm_pb2.RegisterResources) -> None:
        """A later RegisterResources on an open stream: serve its new resources too."""
        if stream.closed:
            return
        stream.outbox.put_nowait(self._registered())
        added = set(register.resource_ids) - stream.resource_ids
        if not added:
            return
        stream.resource_ids = stream.resource_ids | added
        for resource in added:
            self._by_resource.setdefault(resource, []).append(stream)
        logger.info("RM %s now also serves %s", stream.client_id, sorted(added))
        for listener in self._listeners:
            listener(stream)  # sessions waiting for these resources may resume

    def _registered(self) -> rm_pb2.AttachResponse:
        return rm_pb2.AttachResponse(
            registered=rm_pb2.Registered(
                node_id=self.node_id,
                heartbeat_interval_ms=self.heartbeat_interval_ms,
                batch_results=True,
            )
        )

    def _remove(self, stream: RmStream) -> None:
        stream.close()
        for resource in stream.resource_ids:
            live = self._by_resource.get(resource, [])
            if stream in live:
                live.remove(stream)
            if not live:
                self._by_resource.pop(resource, None)
        logger.info("RM %s detached", stream.client_id)

    def choose(self, resource_id: str, client_id: str) -> RmStream:
        live = [c for c in self._by_resource.get(resource_id, []) if not c.closed]
        if not live:
            raise NoRMAttachedError(resource_id)
        for stream in live:
            if stream.client_id == client_id:
                return stream
        return random.choice(live)

    async def dispatch(
        self,
        command: rm_pb2.BranchCommand,
        *,
        rollback: bool,
        client_id: str,
        timeout_s: float,
    ) -> rm_pb2.BranchResult:
        """Send one phase-two command and await its result.

        Raises NoRMAttachedError without a live stream, BranchDispatchError when
        the stream closes or the RM does not answer in time.
        """
        (outcome,) = await self.dispatch_many(
            [(command, client_id)], rollback=rollback, timeout_s=timeout_s
        )
        if isinstance(outcome, DispatchFailure):
            raise outcome
        return outcome

    async def dispatch_many(
        self,
        commands: Sequence[tuple[rm_pb2.BranchCommand, str]],
        *,
        rollback: bool,
        timeout_s: float,
    ) -> list[rm_pb2.BranchResult | DispatchFailure]:
        """Send phase-two commands (each with the client id that registered its
        branch) and await every answer: per command its BranchResult, or the
        NoRMAttachedError / BranchDispatchError that stands in for it. Commands for
        one RM queued together go out as one BranchCommandBatch."""
        waiter = _Waiter(len(commands))
        sent: list[tuple[int, RmStream, str]] = []
        for index, (command, client_id) in enumerate(commands):
            try:
                stream = self.choose(command.resource_id, client_id)
            except NoRMAttachedError as error:
                waiter.deliver(index, error)
                continue
            request_id = f"{self.node_id}-{next(self._ids)}"
            command.request_id = request_id
            stream.pending[request_id] = (waiter, index)
            sent.append((index, stream, request_id))
            stream.outbox.put_nowait(
                rm_pb2.AttachResponse(branch_rollback=command)
                if rollback
                else rm_pb2.AttachResponse(branch_commit=command)
            )
        try:
            async with asyncio.timeout(timeout_s):
                await waiter.future
        except TimeoutError:
            for index, stream, _request_id in sent:
                command = commands[index][0]
                waiter.deliver(
                    index,
                    BranchDispatchError(
                        f"RM {stream.client_id} did not answer branch {command.branch_id} "
                        f"of {command.xid} within {timeout_s:.1f} s",
                        xid=command.xid,
                        branch_id=command.branch_id,
                    ),
                )
        finally:
            for _index, stream, request_id in sent:
                stream.pending.pop(request_id, None)
        lost = BranchDispatchError("phase-two dispatch ended without an answer")
        return [lost if outcome is None else outcome for outcome in waiter.outcomes]

    # --- the stream -----------------------------------------------------------
    async def serve(
        self, requests: AsyncIterator[rm_pb2.AttachRequest], peer: str
    ) -> AsyncIterator[rm_pb2.AttachResponse]:
        """Run one Attach stream: yields what the TC sends to the RM."""
        iterator = requests.__aiter__()
        try:
            first = await iterator.__anext__()
        except StopAsyncIteration:
            return
        if first.WhichOneof("kind") != "register":
            logger.warning("Attach from %s did not start with RegisterResources", peer)
            return
        register = first.register
        stream = RmStream(
            client_id=register.client_id or peer,
            application_id=register.application_id,
            resource_ids=frozenset(register.resource_ids),
            peer=peer,
            batches=register.batch_commands,
        )
        if self._closing:
            yield self._registered()
            return
        # Registered goes out first through the outbox, and the stream is live
        # before the RM reads it: an RM told it is attached can be sent commands.
        stream.outbox.put_nowait(self._registered())
        self._add(stream)
        reader = asyncio.create_task(self._read(stream, iterator))
        try:
            while True:
                message = await stream.outbox.get()
                if message is _CLOSED:
                    break
                assert isinstance(message, rm_pb2.AttachResponse)
                if stream.batches and not stream.outbox.empty():
                    for batched in _coalesce(message, stream.outbox):
                        if not isinstance(batched, rm_pb2.AttachResponse):
                            return  # the close marker
                        yield batched
                else:
                    yield message
        finally:
            reader.cancel()
            self._remove(stream)

    async def _read(self, stream: RmStream, iterator: AsyncIterator[rm_pb2.AttachRequest]) -> None:
        try:
            async for request in iterator:
                stream.last_seen = time.monotonic()
                kind = request.WhichOneof("kind")
                if kind == "branch_result":
                    _resolve(stream, request.branch_result)
                elif kind == "branch_results":
                    for result in request.branch_results.results:
                        _resolve(stream, result)
                elif kind == "register":
                    self._extend(stream, request.register)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.info("Attach stream of RM %s ended: %s", stream.client_id, error)
        stream.close()

    def reap(self) -> int:
        """Drop streams silent for more than three heartbeat intervals."""
        limit = 3 * self.heartbeat_interval_ms / 1000
        now = time.monotonic()
        dead = [c for c in self.streams if now - c.last_seen > limit]
        for stream in dead:
            logger.warning(
                "RM %s silent for %.1f s: dropped", stream.client_id, now - stream.last_seen
            )
            self._remove(stream)
        return len(dead)

    def close_all(self) -> None:
        self._closing = True
        for stream in self.streams:
            self._remove(stream)


def _resolve(stream: RmStream, result: rm_pb2.BranchResult) -> None:
    entry = stream.pending.pop(result.request_id, None)
    if entry is not None:
        waiter, index = entry
        waiter.deliver(index, result)


def _coalesce(
    first: rm_pb2.AttachResponse, outbox: asyncio.Queue[rm_pb2.AttachResponse | object]
) -> list[rm_pb2.AttachResponse | object]:
    """``first`` and what is queued behind it, phase-two commands merged into batches.

    Order is kept: any other message (Registered, the close marker) ends the batch
    before it and is sent after it.
    """
    out: list[rm_pb2.AttachResponse | object] = []
    batch = rm_pb2.BranchCommandBatch()
    size = 0

    def flush() -> None:
        nonlocal batch, size
        if size == 1:  # one command: the plain message, as to any RM
            if batch.commits:
                out.append(rm_pb2.AttachResponse(branch_commit=batch.commits[0]))
            else:
                out.append(rm_pb2.AttachResponse(branch_rollback=batch.rollbacks[0]))
        elif size > 1:
            out.append(rm_pb2.AttachResponse(branch_commands=batch))
        batch, size = rm_pb2.BranchCommandBatch(), 0

    message: rm_pb2.AttachResponse | object = first
    while True:
        kind = message.WhichOneof("kind") if isinstance(message, rm_pb2.AttachResponse) else None
        if kind == "branch_commit":
            assert isinstance(message, rm_pb2.AttachResponse)
            batch.commits.append(message.branch_commit)
            size += 1
        elif kind == "branch_rollback":
            assert isinstance(message, rm_pb2.AttachResponse)
            batch.rollbacks.append(message.branch_rollback)
            size += 1
        else:
            flush()
            out.append(message)
            if message is _CLOSED:
                return out
        if size >= _MAX_BATCH or outbox.empty():
            break
        message = outbox.get_nowait()
    flush()
    return out


def result_status(result: rm_pb2.BranchResult) -> BranchStatus:
    try:
        return BranchStatus(result.status)
    except ValueError:
        return BranchStatus.UNKNOWN
