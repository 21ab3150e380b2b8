"""Resources (Seata's data sources): what the RM serves, keyed by resource id.

A resource has an id, a dialect, a factory of raw DB-API connections (used
for phase-two rollback and undo-log deletion), its statement executor and its
undo log manager. Registering one makes the runtime announce it to every TC.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from atx.dialect import Dialect
from atx.rm.errors import InvalidConfigurationError, ResourceNotFoundError
from atx.rm.exec.executor import StatementExecutor
from atx.rm.undo.log import UndoLogManager

__all__ = [
    "ConnectionFactory",
    "Resource",
    "get_resource",
    "on_resource_registered",
    "register_resource",
    "registered_resources",
    "unregister_resource",
]

logger = logging.getLogger(__name__)

#: Raw connections a resource keeps for phase two between uses (the rollback pool's size).
IDLE_CONNECTIONS = 4

#: Makes a fresh raw DB-API connection (pymysql, psycopg or sqlite3) to the resource's database.
ConnectionFactory = Callable[[], Any]
T = TypeVar("T")


@dataclass
class Resource:
    """One database the RM serves."""

    resource_id: str
    dialect: Dialect
    factory: ConnectionFactory
    undo_table: str = "undo_log"
    #: Where work on the factory's connections runs: here (None), or e.g. the asyncio
    #: RM's portal loop, whose ``call(fn, *args)`` runs ``fn`` beside its connections.
    runner: Callable[..., Any] | None = None
    executor: StatementExecutor = field(init=False)
    undo: UndoLogManager = field(init=False)
    _idle: list[Any] = field(init=False, default_factory=list, repr=False)
    _idle_lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not self.resource_id:
            raise InvalidConfigurationError("resource_id must not be empty")
        self.executor = StatementExecutor(self.dialect, self.resource_id)
        self.undo = UndoLogManager(self.dialect, self.undo_table)

    def raw_connection(self) -> Any:
        """A fresh raw connection from the factory (the caller closes it)."""
        return self.factory()

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Any]:
        """A raw connection for the RM's own work (phase two, purges), kept for the next use.

        Connecting is the expensive part of a phase-two step on MySQL (PyMySQL builds
        a TLS context on every connect) and PostgreSQL (a backend process per
        connection): the undo deleter and the rollback workers
        reuse up to ``IDLE_CONNECTIONS`` connections. One that failed is closed, not kept.
        """
        with self._idle_lock:
            connection = self._idle.pop() if self._idle else None
        if connection is not None and not _usable(self.dialect, connection):
            with contextlib.suppress(Exception):
                connection.close()
            connection = None
        if connection is None:
            connection = self.factory()
        try:
            yield connection
        except BaseException:
            with contextlib.suppress(Exception):
                connection.close()
            raise
        # SQLite connects in microseconds, and its connections may be bound to a thread.
        if self.dialect is not Dialect.SQLITE:
            with self._idle_lock:
                if len(self._idle) < IDLE_CONNECTIONS:
                    self._idle.append(connection)
                    return
        connection.close()

    def apply(self, work: Callable[[Any], T]) -> T:
        """``work(connection)`` on a borrowed connection, run where the connections live."""
        if self.runner is None:
            return self._apply(work)
        result: T = self.runner(self._apply, work)
        return result

    def _apply(self, work: Callable[[Any], T]) -> T:
        with self.borrow() as connection:
            return work(connection)

    def close_idle(self) -> None:
        """Close the kept connections (unregistering, shutdown)."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(Exception):
                connection.close()

    def ensure_undo_table(self) -> None:
        """Create the undo_log table in the resource's database if it is missing."""
        connection = self.raw_connection()
        try:
            self.undo.ensure_table(connection)
        finally:
            connection.close()


def _usable(dialect: Dialect, connection: Any) -> bool:
    """An idle connection is still open (the server may have dropped it)."""
    if dialect is Dialect.MYSQL:
        try:
            connection.ping(False)
        except Exception:
            return False
        return True
    # psycopg: no ping without opening a transaction. A connection the client closed,
    # that failed, or that is not idle goes; one the server dropped fails at its next
    # use, which closes it (the phase-two step is retried).
    from psycopg.pq import TransactionStatus  # only PostgreSQL comes here

    if connection.closed or connection.broken:
        return False
    return bool(connection.info.transaction_status == TransactionStatus.IDLE)


_lock = threading.Lock()
_resources: dict[str, Resource] = {}
_listeners: list[Callable[[Resource], None]] = []


def register_resource(
    resource_id: str,
    dialect: Dialect,
    factory: ConnectionFactory,
    undo_table: str = "undo_log",
    runner: Callable[..., Any] | None = None,
) -> Resource:
    """Register (or return the already registered) resource ``resource_id``.

    A second registration keeps the first resource (its metadata cache) but
    takes the newer connection factory (and runner).
    """
    with _lock:
        existing = _resources.get(resource_id)
        if existing is not None:
            if existing.dialect is not dialect:
                raise InvalidConfigurationError(
                    f"resource {resource_id!r} is already registered as {existing.dialect.value}"
                )
            existing.factory = factory
            existing.runner = runner
            return existing
        resource = Resource(resource_id, dialect, factory, undo_table, runner)
        _resources[resource_id] = resource
        listeners = list(_listeners)
    logger.info("registered resource %s (%s)", resource_id, dialect.value)
    for listener in listeners:
        listener(resource)
    return resource


def unregister_resource(resource_id: str) -> None:
    with _lock:
        resource = _resources.pop(resource_id, None)
    if resource is not None:
        resource.close_idle()


def get_resource(resource_id: str) -> Resource:
    """The registered resource; raises ResourceNotFoundError."""
    resource = _resources.get(resource_id)
    if resource is None:
        raise ResourceNotFoundError(resource_id)
    return resource


def registered_resources() -> list[Resource]:
    with _lock:
        return list(_resources.values())


def on_resource_registered(listener: Callable[[Resource], None]) -> None:
    """Call ``listener`` for each newly registered resource (the runtime announces it)."""
    with _lock:
        _listeners.append(listener)
