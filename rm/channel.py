"""The RM side of the TC's ``Attach`` stream: phase two arrives here.

One background thread per configured TC address keeps a stream open: it
sends ``RegisterResources`` first, then heartbeats, and reconnects with
backoff. Phase-two commands:

* ``branch_commit`` is answered PHASE_TWO_COMMITTED at once; the undo rows
  are queued and deleted in batches, grouped by resource, by a worker.
* ``branch_rollback`` replays the undo log on a fresh raw connection in a
  small thread pool: PHASE_TWO_ROLLBACKED, or ROLLBACK_FAILED_UNRETRYABLE on
  a dirty write, or ROLLBACK_FAILED_RETRYABLE on any other error.

Both are idempotent: a deleted undo row deletes nothing, and a rolled-back
branch has no undo row left (undo then leaves the anti-suspension placeholder).

A retention thread purges old undo rows of every registered resource every
``undo_log_delete_period`` seconds (:mod:`rm.undo.retention`), unless
``undo_log_save_days`` is 0.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc

from atx.channels import open_channel
from atx.metadata import bearer
from atx.rm.config import Config, get_config, on_reconfigure
from atx.rm.errors import DirtyWriteError
from atx.rm.resource import Resource, get_resource, on_resource_registered, registered_resources
from atx.rm.tc_client import get_tc_client
from atx.rm.undo.retention import TCFinishedCheck, purge_registered_resources
from atx.status import BranchStatus
from atx.v1 import resource_manager_pb2 as rm_pb2
from atx.v1 import resource_manager_pb2_grpc as rm_grpc

__all__ = ["RMChannel", "ensure_channel", "get_channel", "shutdown"]

logger = logging.getLogger(__name__)

_DEFAULT_HEARTBEAT = 5.0
_MAX_BACKOFF = 5.0
_DELETE_INTERVAL = 0.2
_DELETE_BATCH = 1000
#: Branch results per BranchResultBatch at most.
_MAX_RESULT_BATCH = 256
#: The first purge runs this soon (or after one period, if shorter): a process
#: restarted more often than the period would otherwise never purge.
_FIRST_PURGE_DELAY = 300.0
_STOP = object()
#: Wakes the request generator so that it announces new resources at once.
_WAKE = object()


class _Stream:
    """One TC address: a thread that keeps the Attach stream alive."""

    def __init__(self, owner: RMChannel, address: str) -> None:
        self.owner = owner
        self.address = address
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
                    item = rm_pb2.AttachRequest(
                        heartbeat=rm_pb2.Heartbeat(sent_time_ms=int(time.time() * 1000))
                    )
            if item is _STOP:
                return
            # A resource registered after this stream opened is announced on the
            # same stream; checked on every message, so none is ever missed.
            current = self.owner.resource_ids()
            if current != self.announced:
                self.announced = current
                yield self.owner.register_message(current)
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

    def _run(self) -> None:
        backoff = 0.05
        while not self.owner.stopping.is_set():
            config = self.owner.config
            channel: grpc.Channel | None = None
            try:
                channel = open_channel(
                    self.address, tls_ca=config.tls_ca, tls_server_name=config.tls_server_name
                )
                stub = rm_grpc.ResourceManagerServiceStub(channel)
                self.outbox = queue.Queue()
                self.batch_results = False
                metadata = (bearer(config.token),) if config.token else ()
                self.announced = self.owner.resource_ids()
                register = self.owner.register_message(self.announced)
                responses = stub.Attach(self._requests(register), metadata=metadata)
                self.call = responses
                for response in responses:
                    kind = response.WhichOneof("kind")
                    if kind == "registered":
                        interval = response.registered.heartbeat_interval_ms
                        self.heartbeat = interval / 1000 if interval > 0 else _DEFAULT_HEARTBEAT
                        self.batch_results = response.registered.batch_results
                        self.connected.set()
                        backoff = 0.05
                        logger.info("attached to TC %s", self.address)
                    elif kind == "branch_commit":
                        self.owner.on_commit(self, response.branch_commit)
                    elif kind == "branch_rollback":
                        self.owner.on_rollback(self, response.branch_rollback)
                    elif kind == "branch_commands":
                        for command in response.branch_commands.commits:
                            self.owner.on_commit(self, command)
                        for command in response.branch_commands.rollbacks:
                            self.owner.on_rollback(self, command)
            except grpc.RpcError as error:
                if not self.owner.stopping.is_set():
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
                self.outbox.put(_STOP)
                if channel is not None:
                    channel.close()
            if self.owner.stopping.wait(backoff):
                return
            backoff = min(backoff * 2, _MAX_BACKOFF)

    def wake(self) -> None:
        self.outbox.put(_WAKE)

    def stop(self) -> None:
        self.outbox.put(_STOP)
        call = self.call
        if call is not None:
            call.cancel()


class RMChannel:
    """The RM's phase-two endpoint for every configured TC address."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stopping = threading.Event()
        self._streams = [_Stream(self, a) for a in config.tc_addresses]
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="atx-rm-rollback")
        self._deletes: queue.Queue[tuple[str, str, int] | None] = queue.Queue()
        self._deleter = threading.Thread(
            target=self._delete_loop, name="atx-rm-undo-delete", daemon=True
        )
        self._idle = threading.Condition()
        self._pending = 0
        self._retention: threading.Thread | None = None
        if config.undo_log_save_days > 0:
            self._retention = threading.Thread(
                target=self._retention_loop, name="atx-rm-undo-retention", daemon=True
            )

    def start(self) -> RMChannel:
        self._deleter.start()
        if self._retention is not None:
            self._retention.start()
        for stream in self._streams:
            stream.thread.start()
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Block until every stream is registered with its TC."""
        deadline = time.monotonic() + timeout
        return all(s.connected.wait(max(0.0, deadline - time.monotonic())) for s in self._streams)

    @staticmethod
    def resource_ids() -> frozenset[str]:
        return frozenset(r.resource_id for r in registered_resources())

    def register_message(self, resource_ids: frozenset[str]) -> rm_pb2.AttachRequest:
        return rm_pb2.AttachRequest(
            register=rm_pb2.RegisterResources(
                client_id=self.config.client_id,
                application_id=self.config.application_id,
                resource_ids=sorted(resource_ids),
                batch_commands=True,
            )
        )

    def announce(self, resource: Resource) -> None:
        """Make every TC learn a newly registered resource, on the open streams."""
        for stream in self._streams:
            stream.wake()

    # --- phase two ------------------------------------------------------------------

    def _answer(
        self,
        stream: _Stream,
        command: rm_pb2.BranchCommand,
        status: BranchStatus,
        message: str = "",
    ) -> None:
        stream.send(
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

    def on_commit(self, stream: _Stream, command: rm_pb2.BranchCommand) -> None:
        with self._idle:
            self._pending += 1
        self._deletes.put((command.resource_id, command.xid, command.branch_id))
        self._answer(stream, command, BranchStatus.PHASE_TWO_COMMITTED)

    def on_rollback(self, stream: _Stream, command: rm_pb2.BranchCommand) -> None:
        self._pool.submit(self._rollback, stream, command)

    def _rollback(self, stream: _Stream, command: rm_pb2.BranchCommand) -> None:
        xid, branch_id = command.xid, command.branch_id
        try:
            resource = get_resource(command.resource_id)
            connection = resource.raw_connection()
            try:
                resource.undo.undo(connection, xid, branch_id)
            finally:
                connection.close()
        except DirtyWriteError as error:
            logger.error(
                "branch %s of %s cannot be rolled back: %s",
                branch_id,
                xid,
                error,
                extra={"xid": xid},
            )
            self._answer(
                stream, command, BranchStatus.PHASE_TWO_ROLLBACK_FAILED_UNRETRYABLE, str(error)
            )
            return
        except Exception as error:
            logger.warning(
                "rollback of branch %s of %s failed, the TC will retry: %s",
                branch_id,
                xid,
                error,
                extra={"xid": xid},
            )
            self._answer(
                stream, command, BranchStatus.PHASE_TWO_ROLLBACK_FAILED_RETRYABLE, str(error)
            )
            return
        logger.info("branch %s of %s rolled back", branch_id, xid, extra={"xid": xid})
        self._answer(stream, command, BranchStatus.PHASE_TWO_ROLLBACKED)

    # --- background undo-log deletion ---------------------------------------------------

    def _delete_loop(self) -> None:
        while True:
            first = self._deletes.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + _DELETE_INTERVAL
            stop = False
            while len(batch) < _DELETE_BATCH:
                try:
                    item = self._deletes.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._delete_batch(batch)
            if stop:
                return

    def _delete_batch(self, batch: list[tuple[str, str, int]]) -> None:
        grouped: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for resource_id, xid, branch_id in batch:
            grouped[resource_id].append((xid, branch_id))
        failed: list[tuple[str, str, int]] = []
        for resource_id, keys in grouped.items():
            try:
                resource = get_resource(resource_id)
                connection = resource.raw_connection()
                try:
                    resource.undo.delete(connection, keys)
                finally:
                    connection.close()
            except Exception:
                logger.exception("deleting %d undo logs of %s failed", len(keys), resource_id)
                failed.extend((resource_id, x, b) for x, b in keys)
        with self._idle:
            self._pending -= len(batch) - len(failed)
            self._idle.notify_all()
        if failed and not self.stopping.is_set():
            time.sleep(_DELETE_INTERVAL)
            for item in failed:
                self._deletes.put(item)

    # --- undo-log retention -------------------------------------------------------------

    def _retention_loop(self) -> None:
        older_than = dt.timedelta(days=self.config.undo_log_save_days)
        period = self.config.undo_log_delete_period
        delay = min(period, _FIRST_PURGE_DELAY)
        # An Event wait, not sleep: close() ends the wait at once.
        while not self.stopping.wait(delay):
            delay = period
            try:
                check = TCFinishedCheck(get_tc_client())
                purge_registered_resources(older_than, check, self.stopping)
            except Exception:
                logger.exception("undo log purge failed, next try in %g s", period)

    def drain(self, timeout: float = 10.0) -> bool:
        """Block until queued undo-log deletions are done (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        for stream in self._streams:
            stream.stop()
        self._deletes.put(None)
        self._deleter.join(timeout)
        self._pool.shutdown(wait=True)
        for stream in self._streams:
            stream.thread.join(timeout)
        if self._retention is not None and self._retention.is_alive():
            self._retention.join(timeout)


_lock = threading.Lock()
_channel: RMChannel | None = None


def get_channel() -> RMChannel | None:
    """The running channel, if any."""
    return _channel


def ensure_channel() -> RMChannel | None:
    """Start the channel if TC addresses are configured and it is not running yet."""
    global _channel
    with _lock:
        if _channel is None:
            config = get_config()
            if not config.tc_addresses:
                return None
            _channel = RMChannel(config).start()
        return _channel


def shutdown(timeout: float = 5.0) -> None:
    """Stop the channel (pending undo-log deletions are finished first)."""
    global _channel
    with _lock:
        channel, _channel = _channel, None
    if channel is not None:
        channel.drain(timeout)
        channel.close(timeout)


def _on_resource(resource: Resource) -> None:
    channel = ensure_channel()
    if channel is not None:
        channel.announce(resource)


def _on_reconfigure() -> None:
    had = _channel is not None
    shutdown()
    if had or registered_resources():
        ensure_channel()


on_resource_registered(_on_resource)
on_reconfigure(_on_reconfigure)
