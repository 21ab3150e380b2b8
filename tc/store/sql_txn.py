"""One store step as one SQL transaction, rerun when that is safe: the
skeleton the MySQL and PostgreSQL stores share.

A step (``work(cursor)``) runs in a transaction on a pooled connection and
is committed. It is run again from the start when the connection was lost,
the database chose it as a deadlock victim, or the step itself raises
:class:`Rerun` (an insert raced by another node: decide again). A failure of
COMMIT itself is never rerun: whether it committed is unknown, so the caller
gets ``UnavailableError(committing=True)``. A value the database refuses is
InvalidArgumentError. A store says which driver errors are which
(:meth:`SqlTransactions._failure`) and how it pools connections.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, Protocol, TypeVar

from atx.backoff import Backoff
from atx.errors import InvalidArgumentError, UnavailableError

__all__ = ["Connection", "Cursor", "Failure", "Rerun", "SqlTransactions"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Runs of one step before a lost connection or a conflict is the caller's.
ATTEMPTS = 4
#: Between two runs of a step.
_RETRY = Backoff(0.05, 0.5)


class Cursor(Protocol):
    """What the stores use of a DB-API cursor (PyMySQL's and psycopg's alike)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...


class Connection(Protocol):
    def commit(self) -> None: ...

    def rollback(self) -> None: ...


ConnT = TypeVar("ConnT", bound=Connection)


class Failure(enum.Enum):
    """What a driver error means for the step that raised it."""

    #: Deadlock victim, lock wait timeout, serialization failure: the database
    #: rolled the step back; the connection is fine; run it again.
    CONFLICT = "conflict"
    #: The connection is gone or cannot be opened: discard it, run again.
    LOST = "lost"
    #: A value the schema refuses (too long, out of range): the caller's error.
    VALUE = "value"
    #: Anything else the database failed with: discard the connection, give up.
    FAILED = "failed"


class Rerun(Exception):
    """Raised inside a step to run it again from the start."""


class SqlTransactions(ABC, Generic[ConnT]):
    """``_run(work)``: the retry loop, over a store's own pool and driver."""

    #: For messages: "MySQL", "PostgreSQL".
    label = "SQL"

    @abstractmethod
    def _acquire(self) -> ConnT:
        """A pooled connection (UnavailableError once the store is closed)."""

    @abstractmethod
    def _release(self, conn: ConnT, *, reuse: bool) -> None:
        """Give ``conn`` back to the pool, or discard it when not ``reuse``."""

    @abstractmethod
    def _cursor(self, conn: ConnT) -> AbstractContextManager[Cursor]: ...

    @abstractmethod
    def _failure(self, error: Exception) -> Failure | None:
        """What a driver error means; None for anything not the driver's."""

    def _discard_idle(self) -> None:
        """After a lost connection: the idle ones probably went with it."""

    def _run(self, work: Callable[[Cursor], T]) -> T:
        """Run ``work`` in one transaction and commit, rerunning it as the
        module docstring says."""
        for attempt in range(ATTEMPTS):
            committing = False
            conn: ConnT | None = None
            try:
                conn = self._acquire()
                try:
                    with self._cursor(conn) as cur:
                        result = work(cur)
                    committing = True
                    conn.commit()
                except BaseException:
                    if not committing:
                        with contextlib.suppress(Exception):
                            conn.rollback()
                    raise
            except Rerun:
                if conn is not None:
                    self._release(conn, reuse=True)
                continue
            except Exception as error:
                failure = self._failure(error)
                if failure is None:
                    if conn is not None:
                        self._release(conn, reuse=True)  # rolled back above: clean for reuse
                    raise
                healthy = failure in (Failure.CONFLICT, Failure.VALUE) and not committing
                if conn is not None:
                    # A connection in an unknown state is not reused.
                    self._release(conn, reuse=healthy)
                if failure is Failure.VALUE and not committing:
                    raise InvalidArgumentError(
                        f"value refused by the {self.label} store: {error}"
                    ) from None
                rerun = failure in (Failure.CONFLICT, Failure.LOST) and not committing
                if not rerun or attempt == ATTEMPTS - 1:
                    raise UnavailableError(
                        f"{self.label} store failed: {error}", committing=committing
                    ) from error
                if failure is Failure.LOST:
                    self._discard_idle()
                logger.warning(
                    "%s store: %s; retrying (attempt %d)", self.label, error, attempt + 1
                )
                time.sleep(_RETRY.delay(attempt + 1))
                continue
            except BaseException:
                if conn is not None:
                    self._release(conn, reuse=False)  # interrupted: state unknown
                raise
            self._release(conn, reuse=True)
            return result
        raise UnavailableError(f"{self.label} store: too many conflicting attempts")
