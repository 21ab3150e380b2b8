"""The MySQL/MariaDB session store (PyMySQL, InnoDB), shared by TC nodes.

Tables (created if missing): ``global_table``, ``branch_table``,
``lock_table`` (``row_key`` primary key), ``distributed_lock``,
``audit_log``, ``id_sequence`` (ids reserved in blocks with
``LAST_INSERT_ID(value + n)``) and ``global_history`` (capped).

Every deciding method is one transaction. Status changes are a conditional
``UPDATE ... WHERE status IN (...)`` (a compare-and-set that holds the
global row's lock until commit); registration locks the global row with
``SELECT ... FOR UPDATE`` first, so that no status change can slip between
the status check and the lock inserts. Row locks are taken by inserting
every row in one multi-row ``INSERT`` sorted by row key (a fixed order, so
two registrations cannot deadlock each other); a duplicate key means
another transaction won the race, and the registration is re-evaluated.

Sessions run READ COMMITTED: every decision rests on a locking read, a
conditional update or a unique-key insert, which always see the newest
committed rows, and READ COMMITTED takes no gap locks, so concurrent
registrations do not block on neighbouring keys.

Connections come from a small pool (idle ones kept, up to 16), so each
thread of the TC uses its own while it runs a method. A lost connection is
reopened and the transaction rerun, unless COMMIT itself failed (then the
outcome is unknown and the caller gets UnavailableError).

Durability: state lives in the database; everything acknowledged survives
a ``kill -9`` of the TC (and of MariaDB with the default
``innodb_flush_log_at_trx_commit=1``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

import pymysql
from pymysql.constants import CLIENT
from pymysql.cursors import Cursor

from atx.backoff import Backoff
from atx.clock import now_ms
from atx.dialect import Dialect
from atx.dsn import parse_mysql_url
from atx.errors import (
    GlobalTransactionNotFoundError,
    IllegalStatusError,
    InvalidArgumentError,
    UnavailableError,
)
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
    history_branch_status,
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
    branches_json,
    global_record,
    global_values,
    lock_record,
    lock_values,
)

__all__ = ["MySQLSessionStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ID_BLOCK = 100
_ATTEMPTS = 4
#: Between two attempts of a store step on a lost connection or a conflict.
_RETRY = Backoff(0.05, 0.5)
#: Idle connections kept open; busier moments open (and then close) more.
_POOL_IDLE = 16
#: Lost connection, server gone, cannot connect, deadlock, lock wait timeout.
_CONFLICT_CODES = frozenset({1213, 1205})  # deadlock, lock wait timeout: rerun
_RETRY_CODES = frozenset({2003, 2006, 2013, 2014, 2055, 1927, 4031}) | _CONFLICT_CODES

_SQL = StoreSql(Dialect.MYSQL, global_table="global_table", history_table="global_history")

_GLOBAL_DEF = """
    xid VARCHAR(128) NOT NULL, transaction_id BIGINT NOT NULL, status TINYINT NOT NULL,
    application_id VARCHAR(128) NOT NULL, transaction_name VARCHAR(256) NOT NULL,
    timeout_ms BIGINT NOT NULL, begin_time_ms BIGINT NOT NULL, modified_time_ms BIGINT NOT NULL,
    retry_stopped TINYINT NOT NULL DEFAULT 0, retry_count INT NOT NULL DEFAULT 0,
    next_retry_ms BIGINT NOT NULL DEFAULT 0"""
_TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS global_table ({_GLOBAL_DEF},
    PRIMARY KEY (xid), KEY ix_status (status, begin_time_ms),
    KEY ix_begin (begin_time_ms, xid)) {_TABLE_OPTIONS}""",
    f"""CREATE TABLE IF NOT EXISTS branch_table (
    seq BIGINT NOT NULL AUTO_INCREMENT, branch_id BIGINT NOT NULL, xid VARCHAR(128) NOT NULL,
    transaction_id BIGINT NOT NULL, resource_id VARCHAR(256) NOT NULL,
    branch_type TINYINT NOT NULL, status TINYINT NOT NULL, lock_keys MEDIUMTEXT NOT NULL,
    application_data MEDIUMTEXT NOT NULL, client_id VARCHAR(256) NOT NULL,
    begin_time_ms BIGINT NOT NULL, modified_time_ms BIGINT NOT NULL,
    PRIMARY KEY (seq), UNIQUE KEY ux_branch (branch_id), KEY ix_xid (xid, seq)) {_TABLE_OPTIONS}""",
    f"""CREATE TABLE IF NOT EXISTS lock_table (
    row_key VARCHAR(700) NOT NULL, xid VARCHAR(128) NOT NULL, transaction_id BIGINT NOT NULL,
    branch_id BIGINT NOT NULL, resource_id VARCHAR(256) NOT NULL,
    table_name VARCHAR(128) NOT NULL, pk VARCHAR(300) NOT NULL, created_time_ms BIGINT NOT NULL,
    PRIMARY KEY (row_key), KEY ix_xid (xid, branch_id)) {_TABLE_OPTIONS}""",
    f"""CREATE TABLE IF NOT EXISTS distributed_lock (
    name VARCHAR(128) NOT NULL, owner VARCHAR(256) NOT NULL, expire_ms BIGINT NOT NULL,
    PRIMARY KEY (name)) {_TABLE_OPTIONS}""",
    f"""CREATE TABLE IF NOT EXISTS audit_log (
    id BIGINT NOT NULL AUTO_INCREMENT, time_ms BIGINT NOT NULL, operator VARCHAR(256) NOT NULL,
    action VARCHAR(128) NOT NULL, xid VARCHAR(128) NOT NULL, result VARCHAR(256) NOT NULL,
    detail MEDIUMTEXT NOT NULL, PRIMARY KEY (id), KEY ix_xid (xid, id)) {_TABLE_OPTIONS}""",
    f"""CREATE TABLE IF NOT EXISTS id_sequence (
    name VARCHAR(64) NOT NULL, value BIGINT NOT NULL, PRIMARY KEY (name)) {_TABLE_OPTIONS}""",
    f"""CREATE TABLE IF NOT EXISTS global_history (
    seq BIGINT NOT NULL AUTO_INCREMENT, {_GLOBAL_DEF}, branches LONGTEXT NOT NULL,
    PRIMARY KEY (seq), UNIQUE KEY ux_xid (xid), KEY ix_begin (begin_time_ms, xid))
    {_TABLE_OPTIONS}""",
    "INSERT IGNORE INTO id_sequence (name, value) VALUES ('id', 0)",
)


def _rollback(conn: pymysql.connections.Connection[Cursor]) -> None:
    with contextlib.suppress(pymysql.err.Error):
        conn.rollback()


def _close(conn: pymysql.connections.Connection[Cursor]) -> None:
    with contextlib.suppress(pymysql.err.Error):
        conn.close()


class _Retry(Exception):
    """Raised inside a transaction to run it again from the start."""


class MySQLSessionStore:
    """A :class:`~tc.store.base.SessionStore` on MySQL or MariaDB."""

    def __init__(self, url: str, history_size: int = 1000) -> None:
        self._target = parse_mysql_url(url)
        if not self._target.database:
            raise InvalidArgumentError(f"MySQL store URL {url!r} names no database", url=url)
        self._history_size = history_size
        self._idle: list[pymysql.connections.Connection[Cursor]] = []
        self._pool_lock = threading.Lock()
        self._id_lock = threading.Lock()
        self._next = 0
        self._limit = 0
        self._closed = False

        def create(cur: Cursor) -> None:
            for statement in _SCHEMA:
                cur.execute(statement)

        self._run(create)

    # --- connections and transactions -----------------------------------------
    def _checkout(self) -> pymysql.connections.Connection[Cursor]:
        """An idle pooled connection, or a new one."""
        with self._pool_lock:
            if self._closed:
                raise UnavailableError("the MySQL store is closed")
            if self._idle:
                return self._idle.pop()
        return pymysql.connect(
            **self._target.connect_kwargs(),
            autocommit=False,
            connect_timeout=5,
            read_timeout=60,
            write_timeout=60,
            client_flag=CLIENT.FOUND_ROWS,
            init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        )

    def _checkin(self, conn: pymysql.connections.Connection[Cursor]) -> None:
        with self._pool_lock:
            if conn.open and not self._closed and len(self._idle) < _POOL_IDLE:
                self._idle.append(conn)
                return
        _close(conn)

    def _run(self, work: Callable[[Cursor], T]) -> T:
        """Run ``work`` in one transaction, retrying it on a lost connection,
        a deadlock or a raced insert. A failure of COMMIT itself is not retried:
        its outcome is unknown, so it surfaces as UnavailableError."""
        for attempt in range(_ATTEMPTS):
            committing = False
            conn: pymysql.connections.Connection[Cursor] | None = None
            try:
                conn = self._checkout()
                try:
                    with conn.cursor() as cur:
                        result = work(cur)
                    committing = True
                    conn.commit()
                except BaseException:
                    if not committing:
                        _rollback(conn)
                    raise
                self._checkin(conn)
                return result
            except _Retry:
                if conn is not None:
                    self._checkin(conn)
                continue
            except pymysql.err.DataError as error:
                if conn is not None:
                    self._checkin(conn)
                raise InvalidArgumentError(f"value refused by the MySQL store: {error}") from None
            except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as error:
                code = error.args[0] if error.args and isinstance(error.args[0], int) else 0
                if conn is not None:
                    if code in _CONFLICT_CODES and not committing:
                        self._checkin(conn)  # rolled back, still healthy
                    else:
                        _close(conn)  # a connection in an unknown state is not reused
                lost = isinstance(error, pymysql.err.InterfaceError) or code in _RETRY_CODES
                if committing or not lost or attempt == _ATTEMPTS - 1:
                    raise UnavailableError(
                        f"MySQL store failed: {error}", committing=committing
                    ) from error
                logger.warning("MySQL store: %s; retrying (attempt %d)", error, attempt + 1)
                time.sleep(_RETRY.delay(attempt + 1))
            except BaseException:
                if conn is not None:
                    self._checkin(conn)  # rolled back above: clean for reuse
                raise
        raise UnavailableError("MySQL store: too many conflicting attempts")

    # --- identity -------------------------------------------------------------
    def next_id(self) -> int:
        with self._id_lock:
            if self._next >= self._limit:

                def reserve(cur: Cursor) -> int:
                    cur.execute(
                        "UPDATE id_sequence SET value = LAST_INSERT_ID(value + %s) WHERE name='id'",
                        (_ID_BLOCK,),
                    )
                    cur.execute("SELECT LAST_INSERT_ID()")
                    row = cur.fetchone()
                    assert row is not None
                    return int(row[0])

                top = self._run(reserve)
                self._next, self._limit = top - _ID_BLOCK + 1, top + 1
            self._next += 1
            return self._next - 1

    # --- global sessions ------------------------------------------------------
    def insert_global(self, record: GlobalRecord) -> None:
        values = global_values(record)

        def insert(cur: Cursor) -> None:
            cur.execute(
                f"INSERT INTO global_table ({GLOBAL_COLS}) VALUES ({_SQL.marks(11)})"
                " ON DUPLICATE KEY UPDATE xid=xid",
                values,
            )

        self._run(insert)

    @staticmethod
    def _branches(cur: Cursor, xids: Sequence[str]) -> dict[str, list[BranchRecord]]:
        found: dict[str, list[BranchRecord]] = {xid: [] for xid in xids}
        if xids:
            cur.execute(
                f"SELECT {BRANCH_COLS} FROM branch_table WHERE xid IN ({_SQL.marks(len(xids))}) "
                "ORDER BY seq",
                tuple(xids),
            )
            for row in cur.fetchall():
                found[row[1]].append(branch_record(row))
        return found

    def get_global(self, xid: str, with_branches: bool = True) -> GlobalRecord | None:
        def get(cur: Cursor) -> GlobalRecord | None:
            cur.execute(f"SELECT {GLOBAL_COLS} FROM global_table WHERE xid=%s", (xid,))
            row = cur.fetchone()
            if row is not None:
                record = global_record(row)
                if with_branches:
                    record.branches = self._branches(cur, [xid])[xid]
                return record
            cur.execute(f"SELECT {GLOBAL_COLS}, branches FROM global_history WHERE xid=%s", (xid,))
            row = cur.fetchone()
            if row is None:
                return None
            record = global_record(row)
            if with_branches:
                record.branches = branches_from_json(row[11])
            return record

        return self._run(get)

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
        if not expected:
            return None
        sets = ["status=%s", "modified_time_ms=%s"]
        args: list[Any] = [int(new), now_ms()]
        if next_retry_ms is not None:
            sets.append("next_retry_ms=%s")
            args.append(next_retry_ms)
        if retry_count is not None:
            sets.append("retry_count=%s")
            args.append(retry_count)
        args += [xid, *(int(s) for s in expected)]

        def change(cur: Cursor) -> GlobalRecord | None:
            # The conditional UPDATE is the compare-and-set; it keeps the row
            # locked until commit, so the SELECT below sees our own write.
            matched = cur.execute(
                f"UPDATE global_table SET {', '.join(sets)} "
                f"WHERE xid=%s AND status IN ({_SQL.marks(len(expected))})",
                tuple(args),
            )
            if not matched:
                return None
            if release_locks:
                cur.execute("DELETE FROM lock_table WHERE xid=%s", (xid,))
            cur.execute(f"SELECT {GLOBAL_COLS} FROM global_table WHERE xid=%s", (xid,))
            row = cur.fetchone()
            return None if row is None else global_record(row)

        return self._run(change)

    def update_global(
        self,
        xid: str,
        *,
        retry_stopped: bool | None = None,
        next_retry_ms: int | None = None,
        retry_count: int | None = None,
    ) -> GlobalRecord | None:
        sql, args = _SQL.update_global(now_ms(), retry_stopped, next_retry_ms, retry_count)

        def update(cur: Cursor) -> GlobalRecord | None:
            if not cur.execute(sql, (*args, xid)):
                return None
            cur.execute(f"SELECT {GLOBAL_COLS} FROM global_table WHERE xid=%s", (xid,))
            row = cur.fetchone()
            return None if row is None else global_record(row)

        return self._run(update)

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

        def find(cur: Cursor) -> list[GlobalRecord]:
            cur.execute(sql, args)
            records = [global_record(r) for r in cur.fetchall()]
            branches = self._branches(cur, [r.xid for r in records])
            for record in records:
                record.branches = branches[record.xid]
            return records

        return self._run(find)

    def finish_global(self, xid: str, final_status: GlobalStatus) -> None:
        def finish(cur: Cursor) -> None:
            cur.execute(f"SELECT {GLOBAL_COLS} FROM global_table WHERE xid=%s FOR UPDATE", (xid,))
            row = cur.fetchone()
            if row is None:
                return
            branches = self._branches(cur, [xid])[xid]
            cur.execute("DELETE FROM lock_table WHERE xid=%s", (xid,))
            cur.execute("DELETE FROM branch_table WHERE xid=%s", (xid,))
            cur.execute("DELETE FROM global_table WHERE xid=%s", (xid,))
            if self._history_size <= 0:
                return
            values = list(row)
            values[2] = int(final_status)
            values[7] = now_ms()
            for branch in branches:
                branch.status = history_branch_status(final_status, branch.status)
            blob = branches_json(branches)
            cur.execute("DELETE FROM global_history WHERE xid=%s", (xid,))
            cur.execute(
                f"INSERT INTO global_history ({GLOBAL_COLS}, branches) VALUES ({_SQL.marks(12)})",
                (*values, blob),
            )
            # Keep the newest history_size entries.
            cur.execute(
                "SELECT seq FROM global_history ORDER BY seq DESC LIMIT 1 OFFSET %s",
                (self._history_size,),
            )
            cut = cur.fetchone()
            if cut is not None:
                cur.execute("DELETE FROM global_history WHERE seq <= %s", (cut[0],))

        self._run(finish)

    def delete_global(self, xid: str) -> bool:
        def delete(cur: Cursor) -> bool:
            found = cur.execute("DELETE FROM global_table WHERE xid=%s", (xid,))
            found += cur.execute("DELETE FROM global_history WHERE xid=%s", (xid,))
            cur.execute("DELETE FROM branch_table WHERE xid=%s", (xid,))
            cur.execute("DELETE FROM lock_table WHERE xid=%s", (xid,))
            return found > 0

        return self._run(delete)

    def list_globals(
        self, flt: GlobalSessionFilter, page_size: int, page_token: str
    ) -> Page[GlobalRecord]:
        return self._page(_SQL.list_globals(flt, page_size, page_token), global_record)

    def _page(self, query: PageQuery, convert: Callable[..., T]) -> Page[T]:
        def page(cur: Cursor) -> Page[T]:
            cur.execute(query.count_sql, query.count_args)
            count = cur.fetchone()
            cur.execute(query.rows_sql, query.rows_args)
            return query.page(cur.fetchall(), int(count[0]) if count else 0, convert)

        return self._run(page)

    # --- branches and locks -------------------------------------------------
    def register_branch(self, branch: BranchRecord, rows: Sequence[RowLock]) -> None:
        unique = {row.row_key: row for row in rows}
        keys = sorted(unique)
        xid = branch.xid

        def register(cur: Cursor) -> None:
            # Lock the global row: no status change can interleave with us.
            cur.execute("SELECT status FROM global_table WHERE xid=%s FOR UPDATE", (xid,))
            found = cur.fetchone()
            if found is None:
                cur.execute("SELECT status FROM global_history WHERE xid=%s", (xid,))
                found = cur.fetchone()
                if found is None:
                    raise GlobalTransactionNotFoundError(xid)
            status = GlobalStatus(found[0])
            if status != GlobalStatus.BEGIN:
                raise IllegalStatusError(xid, status.name, "register a branch in")
            fresh: list[str] = []
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = _SQL.marks(len(chunk))
                cur.execute(
                    f"SELECT row_key, xid FROM lock_table WHERE row_key IN ({marks})", tuple(chunk)
                )
                held = {r[0]: r[1] for r in cur.fetchall()}
                for key in chunk:
                    holder = held.get(key)
                    if holder is None:
                        fresh.append(key)
                    elif holder != xid:
                        self._conflict(cur, holder, key)
            now = now_ms()
            for start in range(0, len(fresh), 500):
                chunk = fresh[start : start + 500]
                values = [lock_values(branch, unique[key], now) for key in chunk]
                try:
                    cur.execute(
                        f"INSERT INTO lock_table ({LOCK_COLS}) VALUES "
                        + ",".join([f"({_SQL.marks(8)})"] * len(values)),
                        tuple(v for value in values for v in value),
                    )
                except pymysql.err.IntegrityError:
                    raise _Retry() from None  # raced by another registration: decide again
            cur.execute(
                f"INSERT INTO branch_table ({BRANCH_COLS}) VALUES ({_SQL.marks(11)})",
                branch_values(branch),
            )

        self._run(register)

    @staticmethod
    def _conflict(cur: Cursor, holder: str, row_key: str) -> None:
        cur.execute("SELECT status FROM global_table WHERE xid=%s", (holder,))
        found = cur.fetchone()
        raise lock_conflict(holder, row_key, GlobalStatus(found[0]) if found else None)

    def update_branch_status(self, xid: str, branch_id: int, status: BranchStatus) -> bool:
        def update(cur: Cursor) -> bool:
            return bool(
                cur.execute(
                    "UPDATE branch_table SET status=%s, modified_time_ms=%s "
                    "WHERE xid=%s AND branch_id=%s",
                    (int(status), now_ms(), xid, branch_id),
                )
            )

        return self._run(update)

    def release_locks(self, xid: str, branch_id: int | None = None) -> int:
        def release(cur: Cursor) -> int:
            if branch_id is None:
                return int(cur.execute("DELETE FROM lock_table WHERE xid=%s", (xid,)))
            return int(
                cur.execute(
                    "DELETE FROM lock_table WHERE xid=%s AND branch_id=%s", (xid, branch_id)
                )
            )

        return self._run(release)

    def query_locks(self, rows: Sequence[RowLock], xid: str = "") -> str | None:
        keys = sorted({row.row_key for row in rows})

        def query(cur: Cursor) -> str | None:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                cur.execute(
                    f"SELECT xid FROM lock_table WHERE row_key IN ({_SQL.marks(len(chunk))}) "
                    "AND xid <> %s LIMIT 1",
                    (*chunk, xid),
                )
                found = cur.fetchone()
                if found is not None:
                    return str(found[0])
            return None

        return self._run(query)

    def list_locks(self, flt: LockFilter, page_size: int, page_token: str) -> Page[LockRecord]:
        return self._page(_SQL.list_locks(flt, page_size, page_token), lock_record)

    # --- cluster --------------------------------------------------------------
    def try_job_lock(self, name: str, owner: str, ttl_ms: int) -> bool:
        # Expiry is judged by the database clock, which every node shares.
        def take(cur: Cursor) -> bool:
            cur.execute("SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)")
            clock = cur.fetchone()
            now = int(clock[0]) if clock else now_ms()
            cur.execute(
                "SELECT owner, expire_ms FROM distributed_lock WHERE name=%s FOR UPDATE", (name,)
            )
            row = cur.fetchone()
            if row is None:
                try:
                    cur.execute(
                        "INSERT INTO distributed_lock (name, owner, expire_ms) VALUES (%s,%s,%s)",
                        (name, owner, now + ttl_ms),
                    )
                except pymysql.err.IntegrityError:
                    return False  # another node took it first
                return True
            if row[0] != owner and int(row[1]) >= now:
                return False
            cur.execute(
                "UPDATE distributed_lock SET owner=%s, expire_ms=%s WHERE name=%s",
                (owner, now + ttl_ms, name),
            )
            return True

        return self._run(take)

    def release_job_lock(self, name: str, owner: str) -> None:
        def release(cur: Cursor) -> None:
            cur.execute("DELETE FROM distributed_lock WHERE name=%s AND owner=%s", (name, owner))

        self._run(release)

    # --- audit ----------------------------------------------------------------
    def append_audit(self, record: AuditRecord) -> AuditRecord:
        stored = dataclasses.replace(record, time_ms=record.time_ms or now_ms())

        def append(cur: Cursor) -> int:
            cur.execute(f"{AUDIT_INSERT} (%s,%s,%s,%s,%s,%s)", audit_values(stored))
            return int(cur.lastrowid)

        return dataclasses.replace(stored, id=self._run(append))

    def list_audit(self, xid: str, page_size: int, page_token: str) -> Page[AuditRecord]:
        return self._page(_SQL.list_audit(xid, page_size, page_token), audit_record)

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)


def _factory(url: str, history_size: int) -> MySQLSessionStore:
    return MySQLSessionStore(url, history_size)


register_store("mysql", _factory)
register_store("mariadb", _factory)
