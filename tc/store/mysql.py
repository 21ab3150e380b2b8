"""The MySQL/MariaDB session store (PyMySQL, InnoDB), shared by TC nodes.

What it decides and how (compare-and-set status updates, registration
locking the global row first, locks inserted sorted by key, READ COMMITTED,
durability) is :mod:`atx.tc.store.sql_store`, common to the SQL stores; the
rerun of a step on a lost connection or a deadlock (never when COMMIT itself
failed) is :mod:`atx.tc.store.sql_txn`. Here: the driver, the pool, the
InnoDB schema and MySQL's spelling of what differs. Ids come in blocks from
``id_sequence`` with ``LAST_INSERT_ID(value + n)``; a raced row-lock insert
is a duplicate key (InnoDB rolls back that statement only).

Connections come from SQLAlchemy's ``QueuePool`` (the ``mysql`` extra)
rather than a hand-written pool: it is well kept, thread-safe and already
what the RM's ``atx.rm.pool`` uses (DBUtils' ``PooledDB`` would do too, as
one more dependency the project has nowhere else). Up to 16 idle connections are kept
(most recently used first); busier moments open, and then close, more. A
connection that failed is invalidated (closed, never handed out again), and
after a lost connection the idle ones are dropped too, since they most
likely died with it (a restarted server). No pre-ping: the rerun covers a
stale connection without a round trip on every checkout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, cast

import pymysql
from pymysql.constants import CLIENT
from pymysql.cursors import Cursor as MySQLCursor

from atx.dialect import Dialect
from atx.dsn import parse_mysql_url, redact_url
from atx.errors import ConfigurationError, InvalidArgumentError, UnavailableError
from atx.tc.store.base import register_store
from atx.tc.store.sql_common import AUDIT_INSERT, StoreSql
from atx.tc.store.sql_store import ID_BLOCK, SqlSessionStore
from atx.tc.store.sql_txn import Cursor, Failure

try:
    from sqlalchemy.pool import PoolProxiedConnection, QueuePool
except ImportError as missing:  # pragma: no cover - depends on the installed extras
    raise ConfigurationError(
        "the MySQL store needs SQLAlchemy's connection pool",
        hint="pip install 'atx[mysql]'",
    ) from missing

__all__ = ["MySQLSessionStore"]

#: Idle connections kept open; busier moments open (and then close) more.
_POOL_IDLE = 16
_CONFLICT_CODES = frozenset({1213, 1205})  # deadlock, lock wait timeout: rerun
#: Lost connection, server gone, cannot connect, connection killed.
_LOST_CODES = frozenset({2003, 2006, 2013, 2014, 2055, 1927, 4031})

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


class MySQLSessionStore(SqlSessionStore[PoolProxiedConnection]):
    """A :class:`~atx.tc.store.base.SessionStore` on MySQL or MariaDB."""

    label = "MySQL"
    sql = StoreSql(Dialect.MYSQL, global_table="global_table", history_table="global_history")
    clock_sql = "SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)"

    def __init__(self, url: str, history_size: int = 1000) -> None:
        super().__init__(history_size)
        target = parse_mysql_url(url)
        if not target.database:
            shown = redact_url(url)  # never a password in a message
            raise InvalidArgumentError(f"MySQL store URL {shown!r} names no database", url=shown)
        kwargs = target.connect_kwargs()
        self._closed = False

        def connect() -> pymysql.connections.Connection[MySQLCursor]:
            return pymysql.connect(
                **kwargs,
                autocommit=False,
                connect_timeout=5,
                read_timeout=60,
                write_timeout=60,
                client_flag=CLIENT.FOUND_ROWS,
                init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            )

        # reset_on_return=None: every step ends in COMMIT or ROLLBACK already,
        # so the pool's own rollback on check-in would be a wasted round trip.
        # PyMySQL's stubs do not spell out SQLAlchemy's DBAPIConnection protocol.
        creator = cast("Callable[[], Any]", connect)
        self._pool = QueuePool(
            creator, pool_size=_POOL_IDLE, max_overflow=-1, use_lifo=True, reset_on_return=None
        )

        def create(cur: Cursor) -> None:
            for statement in _SCHEMA:
                cur.execute(statement)

        try:
            self._run(create)
        except BaseException:
            self._pool.dispose()
            raise

    # --- connections (SqlTransactions) ------------------------------------------
    def _acquire(self) -> PoolProxiedConnection:
        if self._closed:
            raise UnavailableError("the MySQL store is closed")
        return self._pool.connect()

    def _release(self, conn: PoolProxiedConnection, *, reuse: bool) -> None:
        if reuse and not self._closed:
            conn.close()  # back to the pool
        else:
            conn.invalidate()  # closed and dropped from the pool

    def _cursor(self, conn: PoolProxiedConnection) -> AbstractContextManager[Cursor]:
        raw = cast("pymysql.connections.Connection[MySQLCursor]", conn.dbapi_connection)
        return raw.cursor()

    def _failure(self, error: Exception) -> Failure | None:
        if isinstance(error, pymysql.err.DataError):
            return Failure.VALUE
        if not isinstance(error, pymysql.err.OperationalError | pymysql.err.InterfaceError):
            return None
        code = error.args[0] if error.args and isinstance(error.args[0], int) else 0
        if code in _CONFLICT_CODES:
            return Failure.CONFLICT
        if isinstance(error, pymysql.err.InterfaceError) or code in _LOST_CODES:
            return Failure.LOST
        return Failure.FAILED

    def _discard_idle(self) -> None:
        self._pool.dispose()

    # --- MySQL's spelling (SqlSessionStore) --------------------------------------
    def _reserve_ids(self, cur: Cursor, count: int = ID_BLOCK) -> tuple[int, int]:
        cur.execute(
            "UPDATE id_sequence SET value = LAST_INSERT_ID(value + %s) WHERE name='id'",
            (count,),
        )
        cur.execute("SELECT LAST_INSERT_ID()")
        row = cur.fetchone()
        assert row is not None
        return int(row[0]) - count + 1, count

    def _insert_absent(
        self, cur: Cursor, table: str, cols: str, rows: Sequence[Sequence[Any]]
    ) -> bool:
        marks = f"({self.sql.marks(len(rows[0]))})"
        try:
            cur.execute(
                f"INSERT INTO {table} ({cols}) VALUES " + ",".join([marks] * len(rows)),
                tuple(v for row in rows for v in row),
            )
        except pymysql.err.IntegrityError:
            return False  # InnoDB undid this statement only: the transaction goes on
        return True

    def _insert_audit(self, cur: Cursor, values: Sequence[Any]) -> int:
        cur.execute(f"{AUDIT_INSERT} ({self.sql.marks(len(values))})", tuple(values))
        return int(cast(MySQLCursor, cur).lastrowid)

    def close(self) -> None:
        self._closed = True
        self._pool.dispose()


def _factory(url: str, history_size: int) -> MySQLSessionStore:
    return MySQLSessionStore(url, history_size)


register_store("mysql", _factory)
register_store("mariadb", _factory)
