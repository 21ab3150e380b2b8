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

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from atx.errors import (
    GlobalTransactionNotFoundError,
    IllegalStatusError,
    InvalidArgumentError,
    LockConflictError,
)
from atx.status import BranchStatus, BranchType, GlobalStatus
from tc.store.base import (
    AuditRecord,
    BranchRecord,
    GlobalRecord,
    GlobalSessionFilter,
    LockFilter,
    LockRecord,
    Page,
    RowLock,
    register_store,
)

__all__ = ["SQLiteStore", "sqlite_path_from_url"]

_ID_BLOCK = 100
_GLOBAL_COLS = (
    "xid, transaction_id, status, application_id, transaction_name, timeout_ms, "
    "begin_time_ms, modified_time_ms, retry_stopped, retry_count, next_retry_ms"
)
_BRANCH_COLS = (
    "branch_id, xid, transaction_id, resource_id, branch_type, status, lock_keys, "
    "application_data, client_id, begin_time_ms, modified_time_ms"
)
_LOCK_COLS = "row_key, xid, transaction_id, branch_id, resource_id, table_name, pk, created_time_ms"

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
    seq INTEGER PRIMARY KEY, {_GLOBAL_COLS.replace("xid,", "xid UNIQUE,", 1)},
    branches TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS job_lock (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, operator TEXT NOT NULL,
    action TEXT NOT NULL, xid TEXT NOT NULL, result TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_audit_xid ON audit_log (xid, id);
"""


# One statement copies a session and its branches (as JSON) to history.
_FINISH_SQL = (
    f"INSERT OR REPLACE INTO history ({_GLOBAL_COLS}, branches) "
    f"SELECT xid, transaction_id, ?, application_id, transaction_name, timeout_ms, "
    f"begin_time_ms, ?, retry_stopped, retry_count, next_retry_ms, "
    f"(SELECT json_group_array(json(b)) FROM (SELECT json_array({_BRANCH_COLS}) AS b "
    f"FROM branch_session WHERE xid=? ORDER BY seq)) "
    f"FROM global_session WHERE xid=?"
)


def _now_ms() -> int:
    return int(time.time() * 1000)


def sqlite_path_from_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///abs/path.db`` (or ``sqlite:///:memory:``) → path and query options."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise InvalidArgumentError(f"not a sqlite URL: {url!r}", url=url)
    path = unquote(parts.netloc + parts.path)
    if parts.netloc and not parts.path:
        path = parts.netloc  # sqlite://relative.db
    if path == "/:memory:":
        path = ":memory:"
    if not path:
        raise InvalidArgumentError(f"sqlite URL {url!r} names no file", url=url)
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return path, options


def _global(row: Sequence[Any]) -> GlobalRecord:
    return GlobalRecord(
        xid=row[0],
        transaction_id=row[1],
        status=GlobalStatus(row[2]),
        application_id=row[3],
        transaction_name=row[4],
        timeout_ms=row[5],
        begin_time_ms=row[6],
        modified_time_ms=row[7],
        retry_stopped=bool(row[8]),
        retry_count=row[9],
        next_retry_ms=row[10],
    )


def _branch(row: Sequence[Any]) -> BranchRecord:
    return BranchRecord(
        branch_id=row[0],
        xid=row[1],
        transaction_id=row[2],
        resource_id=row[3],
        branch_type=BranchType(row[4]),
        status=BranchStatus(row[5]),
        lock_keys=row[6],
        application_data=row[7],
        client_id=row[8],
        begin_time_ms=row[9],
        modified_time_ms=row[10],
    )


def _lock(row: Sequence[Any]) -> LockRecord:
    return LockRecord(*row)


def _offset(token: str) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise InvalidArgumentError(f"invalid page token {token!r}", page_token=token)
    return int(token)


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

    # --- global sessions ------------------------------------------------------
    def insert_global(self, record: GlobalRecord) -> None:
        with self._lock:
            self._conn.execute(
                f"INSERT INTO global_session ({_GLOBAL_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.xid,
                    record.transaction_id,
                    int(record.status),
                    record.application_id,
                    record.transaction_name,
                    record.timeout_ms,
                    record.begin_time_ms,
                    record.modified_time_ms,
                    int(record.retry_stopped),
                    record.retry_count,
                    record.next_retry_ms,
                ),
            )

    def _branches(self, xid: str) -> list[BranchRecord]:
        rows = self._conn.execute(
            f"SELECT {_BRANCH_COLS} FROM branch_session WHERE xid=? ORDER BY seq", (xid,)
        ).fetchall()
        return [_branch(r) for r in rows]

    def get_global(self, xid: str, with_branches: bool = True) -> GlobalRecord | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_GLOBAL_COLS} FROM global_session WHERE xid=?", (xid,)
            ).fetchone()
            if row is not None:
                record = _global(row)
                if with_branches:
                    record.branches = self._branches(xid)
                return record
            row = self._conn.execute(
                f"SELECT {_GLOBAL_COLS}, branches FROM history WHERE xid=?", (xid,)
            ).fetchone()
        if row is None:
            return None
        record = _global(row)
        if with_branches:
            record.branches = [_branch(b) for b in json.loads(row[11] or "[]")]
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
        args: list[Any] = [int(new), _now_ms()]
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
                f"AND status IN ({marks}) RETURNING {_GLOBAL_COLS}"
            )
        with self._tx() as db:
            row = db.execute(sql, (*args, xid, *(int(s) for s in expected))).fetchone()
            if row is None:
                return None
            if release_locks:
                db.execute("DELETE FROM lock_table WHERE xid=?", (xid,))
        return _global(row)

    def update_global(
        self,
        xid: str,
        *,
        retry_stopped: bool | None = None,
        next_retry_ms: int | None = None,
        retry_count: int | None = None,
    ) -> GlobalRecord | None:
        sets = ["modified_time_ms=?"]
        args: list[Any] = [_now_ms()]
        for column, value in (
            ("retry_stopped", retry_stopped),
            ("next_retry_ms", next_retry_ms),
            ("retry_count", retry_count),
        ):
            if value is not None:
                sets.append(f"{column}=?")
                args.append(int(value))
        with self._lock:
            row = self._conn.execute(
                f"UPDATE global_session SET {', '.join(sets)} WHERE xid=? RETURNING {_GLOBAL_COLS}",
                (*args, xid),
            ).fetchone()
        return None if row is None else _global(row)

    def find_globals(
        self,
        statuses: Collection[GlobalStatus],
        *,
        due_before_ms: int | None = None,
        limit: int = 100,
    ) -> list[GlobalRecord]:
        if not statuses:
            return []
        marks = ",".join("?" * len(statuses))
        sql = f"SELECT {_GLOBAL_COLS} FROM global_session WHERE status IN ({marks})"
        args: list[Any] = [int(s) for s in statuses]
        if due_before_ms is not None:
            sql += " AND next_retry_ms <= ?"
            args.append(due_before_ms)
        sql += " ORDER BY begin_time_ms, xid LIMIT ?"
        args.append(limit)
        with self._lock:
            records = [_global(r) for r in self._conn.execute(sql, args).fetchall()]
            for record in records:
                record.branches = self._branches(record.xid)
        return records

    def finish_global(self, xid: str, final_status: GlobalStatus) -> None:
        with self._tx() as db:
            copied = db.execute(_FINISH_SQL, (int(final_status), _now_ms(), xid, xid))
            if copied.rowcount == 0:
                return
            db.execute("DELETE FROM global_session WHERE xid=?", (xid,))
            if db.execute("DELETE FROM branch_session WHERE xid=?", (xid,)).rowcount:
                db.execute("DELETE FROM lock_table WHERE xid=?", (xid,))
            last = copied.lastrowid or 0
            if last > self.history_size:
                db.execute("DELETE FROM history WHERE seq <= ?", (last - self.history_size,))

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
        where: list[str] = []
        args: list[Any] = []
        if flt.statuses:
            where.append(f"status IN ({','.join('?' * len(flt.statuses))})")
            args.extend(int(s) for s in flt.statuses)
        for column, value in (
            ("application_id", flt.application_id),
            ("transaction_name", flt.transaction_name),
            ("xid", flt.xid),
        ):
            if value:
                where.append(f"{column}=?")
                args.append(value)
        if flt.begin_time_from_ms:
            where.append("begin_time_ms >= ?")
            args.append(flt.begin_time_from_ms)
        if flt.begin_time_to_ms:
            where.append("begin_time_ms <= ?")
            args.append(flt.begin_time_to_ms)
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        source = f"SELECT {_GLOBAL_COLS} FROM global_session{cond}"
        all_args = list(args)
        if flt.include_history:
            source += f" UNION ALL SELECT {_GLOBAL_COLS} FROM history{cond}"
            all_args += args
        offset = _offset(page_token)
        size = max(1, page_size)
        with self._lock:
            (total,) = self._conn.execute(f"SELECT COUNT(*) FROM ({source})", all_args).fetchone()
            rows = self._conn.execute(
                f"SELECT * FROM ({source}) ORDER BY begin_time_ms DESC, xid DESC LIMIT ? OFFSET ?",
                (*all_args, size, offset),
            ).fetchall()
        next_token = str(offset + size) if offset + size < total else ""
        return Page([_global(r) for r in rows], next_token, total)

    # --- branches and locks -------------------------------------------------
    def register_branch(self, branch: BranchRecord, rows: Sequence[RowLock]) -> None:
        now = _now_ms()
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
            keys = list(unique)
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                holders = db.execute(
                    f"SELECT row_key, xid FROM lock_table WHERE row_key IN "
                    f"({','.join('?' * len(chunk))}) AND xid != ?",
                    (*chunk, branch.xid),
                ).fetchall()
                if holders:
                    row_key, holder = holders[0]
                    holder_status = db.execute(
                        "SELECT status FROM global_session WHERE xid=?", (holder,)
                    ).fetchone()
                    fail_fast = holder_status is not None and (
                        GlobalStatus(holder_status[0]).is_rolling_back
                        or holder_status[0] == GlobalStatus.ROLLBACK_FAILED
                    )
                    raise LockConflictError(holder, row_key, fail_fast=fail_fast)
            db.executemany(
                f"INSERT OR IGNORE INTO lock_table ({_LOCK_COLS}) VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        key,
                        branch.xid,
                        branch.transaction_id,
                        branch.branch_id,
                        row.resource_id,
                        row.table_name,
                        row.pk,
                        now,
                    )
                    for key, row in unique.items()
                ],
            )
            db.execute(
                f"INSERT INTO branch_session ({_BRANCH_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    branch.branch_id,
                    branch.xid,
                    branch.transaction_id,
                    branch.resource_id,
                    int(branch.branch_type),
                    int(branch.status),
                    branch.lock_keys,
                    branch.application_data,
                    branch.client_id,
                    branch.begin_time_ms,
                    branch.modified_time_ms,
                ),
            )

    def update_branch_status(self, xid: str, branch_id: int, status: BranchStatus) -> bool:
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE branch_session SET status=?, modified_time_ms=? "
                "WHERE xid=? AND branch_id=?",
                (int(status), _now_ms(), xid, branch_id),
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
        where: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("xid", flt.xid),
            ("resource_id", flt.resource_id),
            ("table_name", flt.table_name),
            ("pk", flt.pk),
        ):
            if value:
                where.append(f"{column}=?")
                args.append(value)
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        offset = _offset(page_token)
        size = max(1, page_size)
        with self._lock:
            (total,) = self._conn.execute(f"SELECT COUNT(*) FROM lock_table{cond}", args).fetchone()
            rows = self._conn.execute(
                f"SELECT {_LOCK_COLS} FROM lock_table{cond} ORDER BY row_key LIMIT ? OFFSET ?",
                (*args, size, offset),
            ).fetchall()
        next_token = str(offset + size) if offset + size < total else ""
        return Page([_lock(r) for r in rows], next_token, total)

    # --- cluster --------------------------------------------------------------
    def try_job_lock(self, name: str, owner: str, ttl_ms: int) -> bool:
        now = _now_ms()
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
                "INSERT INTO audit_log (time_ms, operator, action, xid, result, detail) "
                "VALUES (?,?,?,?,?,?) RETURNING id",
                (
                    record.time_ms,
                    record.operator,
                    record.action,
                    record.xid,
                    record.result,
                    record.detail,
                ),
            ).fetchone()
        return AuditRecord(
            new_id,
            record.time_ms,
            record.operator,
            record.action,
            record.xid,
            record.result,
            record.detail,
        )

    def list_audit(self, xid: str, page_size: int, page_token: str) -> Page[AuditRecord]:
        cond, args = (" WHERE xid=?", [xid]) if xid else ("", [])
        offset = _offset(page_token)
        size = max(1, page_size)
        with self._lock:
            (total,) = self._conn.execute(f"SELECT COUNT(*) FROM audit_log{cond}", args).fetchone()
            rows = self._conn.execute(
                "SELECT id, time_ms, operator, action, xid, result, detail FROM audit_log"
                f"{cond} ORDER BY id DESC LIMIT ? OFFSET ?",
                (*args, size, offset),
            ).fetchall()
        next_token = str(offset + size) if offset + size < total else ""
        return Page([AuditRecord(*r) for r in rows], next_token, total)

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
