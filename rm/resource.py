"""Resources (Seata's data sources): what the RM serves, keyed by resource id.

A resource has an id, a dialect, a factory of raw DB-API connections (used
for phase-two rollback and undo-log deletion), its statement executor and its
undo log manager. Registering one makes the runtime announce it to every TC.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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

#: Makes a fresh raw DB-API connection (pymysql or sqlite3) to the resource's database.
ConnectionFactory = Callable[[], Any]


@dataclass
class Resource:
    """One database the RM serves."""

    resource_id: str
    dialect: Dialect
    factory: ConnectionFactory
    undo_table: str = "undo_log"
    executor: StatementExecutor = field(init=False)
    undo: UndoLogManager = field(init=False)

    def __post_init__(self) -> None:
        if not self.resource_id:
            raise InvalidConfigurationError("resource_id must not be empty")
        self.executor = StatementExecutor(self.dialect, self.resource_id)
        self.undo = UndoLogManager(self.dialect, self.undo_table)

    def raw_connection(self) -> Any:
        """A fresh raw connection from the factory (the caller closes it)."""
        return self.factory()

    def ensure_undo_table(self) -> None:
        """Create the undo_log table in the resource's database if it is missing."""
        connection = self.raw_connection()
        try:
            self.undo.ensure_table(connection)
        finally:
            connection.close()


_lock = threading.Lock()
_resources: dict[str, Resource] = {}
_listeners: list[Callable[[Resource], None]] = []


def register_resource(
    resource_id: str,
    dialect: Dialect,
    factory: ConnectionFactory,
    undo_table: str = "undo_log",
) -> Resource:
    """Register (or return the already registered) resource ``resource_id``.

    A second registration keeps the first resource (its metadata cache) but
    takes the newer connection factory.
    """
    with _lock:
        existing = _resources.get(resource_id)
        if existing is not None:
            if existing.dialect is not dialect:
                raise InvalidConfigurationError(
                    f"resource {resource_id!r} is already registered as {existing.dialect.value}"
                )
            existing.factory = factory
            return existing
        resource = Resource(resource_id, dialect, factory, undo_table)
        _resources[resource_id] = resource
        listeners = list(_listeners)
    logger.info("registered resource %s (%s)", resource_id, dialect.value)
    for listener in listeners:
        listener(resource)
    return resource


def unregister_resource(resource_id: str) -> None:
    with _lock:
        _resources.pop(resource_id, None)


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
