"""The embedded default store: one SQLite file in WAL mode.

Durability: WAL with ``synchronous=NORMAL`` writes every committed
transaction to the WAL file before ``COMMIT`` returns, so it survives a
``kill -9`` of the TC (the OS keeps the written pages); only a power loss
may lose the last transactions. ``ATX_SQLITE_SYNCHRONOUS=FULL`` (or the URL
query ``?synchronous=FULL``) fsyncs each commit for power-loss durability.

One connection guarded by a lock: the TC calls the store from its event
loop, and SQLite serialises writers anyway. The TC batches the calls of
concurrent requests into one transaction (``run_batch``: group commit).
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from atx.clock import now_ms
from atx.dialect import Dialect
from atx.dsn import sqlite_path
from atx.errors import GlobalTransactionNotFoundError, IllegalStatusError, InvalidArgumentError
from atx.status import BranchStatus, GlobalStatus
from atx.tc.store.base import (
    AuditRecord,
    BranchRecord,
    GlobalRecord,
    GlobalSessionFilter,
    LockFilter,
    LockRecord,
    Page,
    RowLock,
    lock_conflict,
    register_store,
)
from atx.tc.store.sql_common import (
    AUDIT_INSERT,
    BRANCH_COLS,
    GLOBAL_COLS,
    LOCK_COLS,
    PageQuery,
    StoreSql,
    audit_record,
    audit_values,
    branch_record,
    branch_values,
    branches_from_json,
    global_record,
    global_values,
    lock_record,
    lock_values,
)

__all__ = ["SQLiteStore", "sqlite_path_from_url"]

T = TypeVar("T")

_ID_BLOCK = 100
_SQL = StoreSql(Dialect.SQLITE, global_table="global_session", history_table="history")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS id_sequence (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS global_session (
    xid TEXT PRIMARY KEY, transaction_id INTEGER NOT NULL, status INTEGER NOT NULL,
    application_id TEXT NOT NULL, transaction_name TEXT NOT NULL, timeout_ms INTEGER NOT NULL,
    begin_time_ms INTEGER NOT NULL, modified_time_ms INTEGER NOT NULL,
    retry_stopped INTEGER NOT NULL DEFAULT 0, retry_count INTEGER NOT NULL DEFAULT 0,
    next_retry_ms INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS ix_global_status ON global_session (status, next_retry_ms);
CREATE TABLE IF NOT EXISTS branch_session (
    seq INTEGER PRIMARY KEY, branch_id INTEGER NOT NULL UNIQUE,
    xid TEXT NOT NULL, transaction_id INTEGER NOT NULL, resource_id TEXT NOT NULL,
    branch_type INTEGER NOT NULL, status INTEGER NOT NULL, lock_keys TEXT NOT NULL,
    application_data TEXT NOT NULL, client_id TEXT NOT NULL,
    begin_time_ms INTEGER NOT NULL, modified_time_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ix_branch_xid ON branch_session (xid, seq);
CREATE TABLE IF NOT EXISTS lock_table (
    row_key TEXT PRIMARY KEY, xid TEXT NOT NULL, transaction_id INTEGER NOT NULL,
    branch_id INTEGER NOT NULL, resource_id TEXT NOT NULL, table_name TEXT NOT NULL,
    pk TEXT NOT NULL, created_time_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ix_lock_xid ON lock_table (xid, branch_id);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY, {GLOBAL_COLS.replace("xid,", "xid UNIQUE,", 1)},
    branches TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS job_lock (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, operator TEXT NOT NULL,
    action TEXT NOT NULL, xid TEXT NOT NULL, result TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_audit_xid ON audit_log (xid, id);
"""


# One statement copies a session and its branches (as JSON) to history; the
# third parameter (1 when finishing COMMITTED) applies history_branch_status.
_HISTORY_BRANCH_COLS = BRANCH_COLS.replace(
    " status,",
    f" CASE WHEN ? AND status != {int(BranchStatus.PHASE_ONE_FAILED)} "
    f"THEN {int(BranchStatus.PHASE_TWO_COMMITTED)} ELSE status END,",
    1,
)
_FINISH_SQL = (
    f"INSERT OR REPLACE INTO history ({GLOBAL_COLS}, branches) "
    f"SELECT xid, transaction_id, ?, application_id, transaction_name, timeout_ms, "
    f"begin_time_ms, ?, retry_stopped, retry_count, next_retry_ms, "
    f"(SELECT json_group_array(json(b)) FROM (SELECT json_array({_HISTORY_BRANCH_COLS}) AS b "
    f"FROM branch_session WHERE xid=? ORDER BY seq)) "
    f"FROM global_session WHERE xid=?"
)

#: Moves a session with no branches to the history if it is in the expected
#: status: the whole "commit an empty transaction" in one statement (plus the
#: delete), instead of read, check, copy with branches, delete x 3.
_FINISH_EMPTY_SQL = (
    f"INSERT OR REPLACE INTO history ({GLOBAL_COLS}, branches) "
    f"SELECT xid, transaction_id, ?, application_id, transaction_name, timeout_ms, "
    f"begin_time_ms, ?, retry_stopped, retry_count, next_retry_ms, '[]' "
    f"FROM global_session WHERE xid=? AND status=? "
    f"AND NOT EXISTS (SELECT 1 FROM branch_session WHERE xid=?)"
)


_LOCK_INSERT = f"INSERT OR IGNORE INTO lock_table ({LOCK_COLS}) VALUES (?,?,?,?,?,?,?,?)"


def sqlite_path_from_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///relative.db``, ``sqlite:////absolute/path.db`` (or ``sqlite:///:memory:``)
    → path and query options (see :func:`atx.dsn.sqlite_path`)."""
    path = sqlite_path(url)
    options = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
    return path, options


class SQLiteStore:
    """The SessionStore protocol on one SQLite file."""

    def __init__(self, path: str, history_size: int = 1000, synchronous: str = "NORMAL") -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.history_size = history_size
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        # Small pages for a new file (ignored for an existing one): a commit
        # writes every page it dirtied to the WAL, and the TC's rows are small,
        # so 1 KiB pages halve the cost of a commit against the 4 KiB default.
        self._conn.execute("PRAGMA page_size=1024")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.executescript(_SCHEMA)
        self._next = 0
        self._limit = 0
        #: change_status SQL by (len(expected), sets next_retry_ms, sets retry_count).
        self._status_sql: dict[tuple[int, bool, bool], str] = {}

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database write lock from the start;
        inside a batch (``run_batch``) a savepoint of the batch's transaction."""
        with self._lock:
            if self._conn.in_transaction:
                self._conn.execute("SAVEPOINT op")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK TO op")
                    self._conn.execute("RELEASE op")
                    raise
                self._conn.execute("RELEASE op")
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def run_batch(self, calls: Sequence[Callable[[], Any]]) -> list[tuple[bool, Any]]:
        """Group commit: run ``calls`` (store operations) in one write transaction.

        Each call stays atomic on its own (multi-statement operations use a
        savepoint; a failed one is rolled back alone and its exception is
        returned), and none is durable before the shared ``COMMIT``: callers
        must be answered only after this returns. Returns ``(True, result)``
        or ``(False, exception)`` per call; if the commit fails, every call
        gets the commit's error.
        """
        results: list[tuple[bool, Any]] = []
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for call in calls:
                    try:
                        results.append((True, call()))
                    except Exception as error:  # the caller gets it
                        results.append((False, error))
                if not self._conn.in_transaction:
                    # A statement error (e.g. disk full) rolled the whole batch back.
                    raise sqlite3.OperationalError("the batch transaction was rolled back")
                self._conn.execute("COMMIT")
            except BaseException as error:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                self._next = self._limit = 0  # an id block reserved in the batch is lost
                if not isinstance(error, Exception):
                    raise
                return [(False, error)] * len(calls)
        return results

    # --- identity -------------------------------------------------------------
    def next_id(self) -> int:
        with self._lock:
            if self._next >= self._limit:
                # Reserve a block durably; ids left unused after a crash are skipped.
                with self._tx() as db:
                    db.execute(
                        "INSERT INTO id_sequence (name, value) VALUES ('id', ?) "
                        "ON CONFLICT(name) DO UPDATE SET value = value + ?",
                        (_ID_BLOCK, _ID_BLOCK),
                    )
                    (value,) = db.execute(
                        "SELECT value FROM id_sequence WHERE name='id'"
                    ).fetchone()
                self._next, self._limit = value - _ID_BLOCK + 1, value + 1
            self._next += 1
            return self._next - 1

    def reserve_ids(self, count: int) -> tuple[int, int]:
        with self._lock, self._tx() as db:
            db.execute(
                "INSERT INTO id_sequence (name, value) VALUES ('id', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + ?",
                (count, count),
            )
            (value,) = db.execute("SELECT value FROM id_sequence WHERE name='id'").fetchone()
        return value - count + 1, count

    # --- global sessions ------------------------------------------------------
    def insert_global(self, record: GlobalRecord) -> None:
        with self._lock:
            self._conn.execute(
                f"INSERT INTO global_session ({GLOBAL_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                global_values(record),
            )

    def _branches(self, xid: str) -> list[BranchRecord]:
        rows = self._conn.execute(
            f"SELECT {BRANCH_COLS} FROM branch_session WHERE xid=? ORDER BY seq", (xid,)
        ).fetchall()
        return [branch_record(r) for r in rows]

    def get_global(self, xid: str, with_branches: bool = True) -> GlobalRecord | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {GLOBAL_COLS} FROM global_session WHERE xid=?", (xid,)
            ).fetchone()
            if row is not None:
                record = global_record(row)
                if with_branches:
                    record.branches = self._branches(xid)
                return record
            row = self._conn.execute(
                f"SELECT {GLOBAL_COLS}, branches FROM history WHERE xid=?", (xid,)
            ).fetchone()
        if row is None:
            return None
        record = global_record(row)
        if with_branches:
            record.branches = branches_from_json(row[11])
        return record

    def change_status(
        self,
        xid: str,
        expected: Collection[GlobalStatus],
        new: GlobalStatus,
        *,
        release_locks: bool = False,
        next_retry_ms: int | None = None,
        retry_count: int | None = None,
    ) -> GlobalRecord | None:
        args: list[Any] = [int(new), now_ms()]
        if next_retry_ms is not None:
            args.append(next_retry_ms)
        if retry_count is not None:
            args.append(retry_count)
        shape = (len(expected), next_retry_ms is not None, retry_count is not None)
        sql = self._status_sql.get(shape)
        if sql is None:
            sets = ["status=?", "modified_time_ms=?"]
            if next_retry_ms is not None:
                sets.append("next_retry_ms=?")
            if retry_count is not None:
                sets.append("retry_count=?")
            marks = ",".join("?" * len(expected))
            sql = self._status_sql[shape] = (
                f"UPDATE global_session SET {', '.join(sets)} WHERE xid=? "
                f"AND status IN ({marks}) RETURNING {GLOBAL_COLS}"
            )
        with self._tx() as db:
            row = db.execute(sql, (*args, xid, *(int(s) for s in expected))).fetchone()
            if row is None:
                return None
            if release_locks:
                db.execute("DELETE FROM lock_table WHERE xid=?", (xid,))
        return global_record(row)

    def update_global(
        self,
        xid: str,
        *,
        retry_stopped: bool | None = None,
        next_retry_ms: int | None = None,
        retry_count: int | None = None,
    ) -> GlobalRecord | None:
        sql, args = _SQL.update_global(now_ms(), retry_stopped, next_retry_ms, retry_count)
        with self._lock:
            row = self._conn.execute(f"{sql} RETURNING {GLOBAL_COLS}", (*args, xid)).fetchone()
        return None if row is None else global_record(row)

    def find_globals(
        self,
        statuses: Collection[GlobalStatus],
        *,
        due_before_ms: int | None = None,
        limit: int = 100,
    ) -> list[GlobalRecord]:
        if not statuses:
            return []
        sql, args = _SQL.find_globals(statuses, due_before_ms, limit)
        with self._lock:
            records = [global_record(r) for r in self._conn.execute(sql, args).fetchall()]
            for record in records:
                record.branches = self._branches(record.xid)
        return records

    def finish_global(self, xid: str, final_status: GlobalStatus) -> None:
        with self._tx() as db:
            committed = int(final_status == GlobalStatus.COMMITTED)
            copied = db.execute(_FINISH_SQL, (int(final_status), now_ms(), committed, xid, xid))
            if copied.rowcount == 0:
                return
            db.execute("DELETE FROM global_session WHERE xid=?", (xid,))
            if db.execute("DELETE FROM branch_session WHERE xid=?", (xid,)).rowcount:
                db.execute("DELETE FROM lock_table WHERE xid=?", (xid,))
            last = copied.lastrowid or 0
            if last > self.history_size:
                db.execute("DELETE FROM history WHERE seq <= ?", (last - self.history_size,))

    def finish_if_empty(self, xid: str, expected: GlobalStatus, final_status: GlobalStatus) -> bool:
        """``finish_global(xid, final_status)`` if the session is in ``expected``
        and has no branches (hence no locks); False, changing nothing, otherwise.
        The fast path of an empty transaction's Commit (SQLite only)."""
        with self._tx() as db:
            copied = db.execute(
                _FINISH_EMPTY_SQL, (int(final_status), now_ms(), xid, int(expected), xid)
            )
            if copied.rowcount == 0:
                return False
            db.execute("DELETE FROM global_session WHERE xid=?", (xid,))
            last = copied.lastrowid or 0
            if last > self.history_size:
                db.execute("DELETE FROM history WHERE seq <= ?", (last - self.history_size,))
        return True

    def delete_global(self, xid: str) -> bool:
        with self._tx() as db:
            found = db.execute("DELETE FROM global_session WHERE xid=?", (xid,)).rowcount
            found += db.execute("DELETE FROM history WHERE xid=?", (xid,)).rowcount
            db.execute("DELETE FROM branch_session WHERE xid=?", (xid,))
            db.execute("DELETE FROM lock_table WHERE xid=?", (xid,))
        return found > 0

    def list_globals(
        self, flt: GlobalSessionFilter, page_size: int, page_token: str
    ) -> Page[GlobalRecord]:
        return self._page(_SQL.list_globals(flt, page_size, page_token), global_record)

    def _page(self, query: PageQuery, convert: Callable[..., T]) -> Page[T]:
        with self._lock:
            (total,) = self._conn.execute(query.count_sql, query.count_args).fetchone()
            rows = self._conn.execute(query.rows_sql, query.rows_args).fetchall()
        return query.page(rows, total, convert)

    # --- branches and locks -------------------------------------------------
    def register_branch(self, branch: BranchRecord, rows: Sequence[RowLock]) -> None:
        now = now_ms()
        with self._tx() as db:
            found = db.execute(
                "SELECT status FROM global_session WHERE xid=?", (branch.xid,)
            ).fetchone()
            if found is None:
                old = db.execute("SELECT status FROM history WHERE xid=?", (branch.xid,)).fetchone()
                if old is None:
                    raise GlobalTransactionNotFoundError(branch.xid)
                found = old
            status = GlobalStatus(found[0])
            if status != GlobalStatus.BEGIN:
                raise IllegalStatusError(branch.xid, status.name, "register a branch in")
            unique = {row.row_key: row for row in rows}
            values = [lock_values(branch, row, now) for row in unique.values()]
            if len(values) == 1:
                inserted = db.execute(_LOCK_INSERT, values[0]).rowcount
            else:
                inserted = db.executemany(_LOCK_INSERT, values).rowcount
            if inserted != len(values):
                # Some rows were held already: by this transaction (fine) or by
                # another (a conflict: the savepoint undoes this registration).
                self._raise_on_conflict(db, branch.xid, list(unique))
            db.execute(
                f"INSERT INTO branch_session ({BRANCH_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                branch_values(branch),
            )

    @staticmethod
    def _raise_on_conflict(db: sqlite3.Connection, xid: str, keys: list[str]) -> None:
        """LockConflictError naming a holder of one of ``keys`` other than ``xid``."""
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            holders = db.execute(
                f"SELECT row_key, xid FROM lock_table WHERE row_key IN "
                f"({','.join('?' * len(chunk))}) AND xid != ?",
                (*chunk, xid),
            ).fetchall()
            if holders:
                row_key, holder = holders[0]
                found = db.execute(
                    "SELECT status FROM global_session WHERE xid=?", (holder,)
                ).fetchone()
                raise lock_conflict(holder, row_key, GlobalStatus(found[0]) if found else None)

    def update_branch_status(self, xid: str, branch_id: int, status: BranchStatus) -> bool:
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE branch_session SET status=?, modified_time_ms=? "
                "WHERE xid=? AND branch_id=?",
                (int(status), now_ms(), xid, branch_id),
            )
        return cursor.rowcount > 0

    def release_locks(self, xid: str, branch_id: int | None = None) -> int:
        with self._lock:
            if branch_id is None:
                cursor = self._conn.execute("DELETE FROM lock_table WHERE xid=?", (xid,))
            else:
                cursor = self._conn.execute(
                    "DELETE FROM lock_table WHERE xid=? AND branch_id=?", (xid, branch_id)
                )
        return cursor.rowcount

    def query_locks(self, rows: Sequence[RowLock], xid: str = "") -> str | None:
        keys = list({row.row_key for row in rows})
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                found = self._conn.execute(
                    f"SELECT xid FROM lock_table WHERE row_key IN ({','.join('?' * len(chunk))}) "
                    "AND xid != ? LIMIT 1",
                    (*chunk, xid),
                ).fetchone()
                if found is not None:
                    holder: str = found[0]
                    return holder
        return None

    def list_locks(self, flt: LockFilter, page_size: int, page_token: str) -> Page[LockRecord]:
        return self._page(_SQL.list_locks(flt, page_size, page_token), lock_record)

    # --- cluster --------------------------------------------------------------
    def try_job_lock(self, name: str, owner: str, ttl_ms: int) -> bool:
        now = now_ms()
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO job_lock (name, owner, expires_ms) VALUES (?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET owner=excluded.owner, "
                "expires_ms=excluded.expires_ms "
                "WHERE job_lock.owner=excluded.owner OR job_lock.expires_ms < ?",
                (name, owner, now + ttl_ms, now),
            )
        return cursor.rowcount > 0

    def release_job_lock(self, name: str, owner: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM job_lock WHERE name=? AND owner=?", (name, owner))

    # --- audit ----------------------------------------------------------------
    def append_audit(self, record: AuditRecord) -> AuditRecord:
        with self._lock:
            (new_id,) = self._conn.execute(
                f"{AUDIT_INSERT} (?,?,?,?,?,?) RETURNING id", audit_values(record)
            ).fetchone()
        return dataclasses.replace(record, id=new_id)

    def list_audit(self, xid: str, page_size: int, page_token: str) -> Page[AuditRecord]:
        return self._page(_SQL.list_audit(xid, page_size, page_token), audit_record)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _factory(url: str, history_size: int) -> SQLiteStore:
    path, options = sqlite_path_from_url(url)
    synchronous = options.get("synchronous") or os.environ.get("ATX_SQLITE_SYNCHRONOUS", "NORMAL")
    if synchronous.upper() not in {"NORMAL", "FULL", "EXTRA"}:
        raise InvalidArgumentError(
            f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}", url=url
        )
    return SQLiteStore(path, history_size, synchronous.upper())


register_store("sqlite", _factory)
