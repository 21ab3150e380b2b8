"""The undo_log table: write at phase one, replay at rollback, delete at commit."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from atx.dialect import Column, Dialect, Index, TableSpec
from atx.rm.types.image import SQLUndoLog
from atx.rm.undo.apply import apply_undo
from atx.rm.undo.serialize import DEFAULT_COMPRESS_THRESHOLD, decode, encode

__all__ = ["LOG_STATUS_GLOBAL_FINISHED", "LOG_STATUS_NORMAL", "UNDO_LOG_TABLE", "UndoLogManager"]

logger = logging.getLogger(__name__)

LOG_STATUS_NORMAL = 0
#: A placeholder written by a rollback that found no undo row (anti-suspension).
LOG_STATUS_GLOBAL_FINISHED = 1
DELETE_BATCH = 100

#: Seata's undo_log schema (the unique key stops a branch's undo row being written
#: after a rollback left its placeholder; the retention purge finds rows by age).
UNDO_LOG_TABLE = TableSpec(
    "undo_log",
    (
        Column("id", "id"),
        Column("branch_id", "bigint"),
        Column("xid", "varchar(128)"),
        Column("context", "varchar(128)"),
        Column("rollback_info", "blob"),
        Column("log_status", "int"),
        Column("log_created", "datetime"),
        Column("log_modified", "datetime"),
    ),
    primary_key=("id",),
    indexes=(
        Index("ux_{table}", ("xid", "branch_id"), unique=True),
        Index("ix_{table}_log_created", ("log_created",)),
    ),
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")


class UndoLogManager:
    """Reads and writes one data source's ``undo_log`` table (Seata's schema)."""

    def __init__(
        self,
        dialect: Dialect,
        table: str = "undo_log",
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
    ) -> None:
        self.dialect = dialect
        self.table = table
        self.compress_threshold = compress_threshold
        self._ident = dialect.table_ident(table)
        ph = dialect.placeholder
        self._insert_sql = (
            f"INSERT INTO {self._ident} (branch_id, xid, context, rollback_info, log_status,"
            f" log_created, log_modified) VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph}, {ph})"
        )
        # Locks the branch's undo row against a concurrent rollback (SQLite: the
        # write lock is the database's).
        lock = " FOR UPDATE" if dialect is not Dialect.SQLITE else ""
        self._select_sql = (
            f"SELECT context, rollback_info, log_status FROM {self._ident}"
            f" WHERE xid = {ph} AND branch_id = {ph}{lock}"
        )
        self._delete_one = f"DELETE FROM {self._ident} WHERE xid = {ph} AND branch_id = {ph}"

    def create_table_sql(self) -> list[str]:
        """The DDL creating the table (idempotent: IF NOT EXISTS)."""
        return self.dialect.create_table(UNDO_LOG_TABLE.renamed(self.table))

    def ensure_table(self, connection: Any) -> None:
        cursor = self.dialect.plain_cursor(connection)
        try:
            if not self._exists(cursor):
                for statement in self.create_table_sql():
                    cursor.execute(statement)
            connection.commit()
        finally:
            cursor.close()

    def _exists(self, cursor: Any) -> bool:
        # MySQL answers CREATE TABLE IF NOT EXISTS on an existing table with a
        # warning, which async drivers (asyncmy) log at WARNING on every connect.
        if self.dialect is not Dialect.MYSQL:
            return False  # the others create silently
        schema, _, name = self.table.rpartition(".")
        cursor.execute(
            "SELECT 1 FROM information_schema.tables"
            " WHERE table_schema = COALESCE(NULLIF(%s, ''), DATABASE()) AND table_name = %s",
            (schema, name),
        )
        return cursor.fetchone() is not None

    def flush(
        self,
        cursor: Any,
        xid: str,
        branch_id: int,
        items: list[SQLUndoLog],
        *,
        and_commit: bool = False,
    ) -> None:
        """INSERT the branch's undo row in the caller's open local transaction.

        ``and_commit`` (MySQL with multi-statements only) sends the COMMIT in the
        same round trip: the server stops at the first failing statement, so a
        failed INSERT never commits the business rows without their undo row.
        Raises the driver's IntegrityError when a rollback already left a placeholder.
        """
        context, data = encode(items, self.compress_threshold)
        now = _now()
        params = (branch_id, xid, context, data, LOG_STATUS_NORMAL, now, now)
        if not and_commit:
            cursor.execute(self._insert_sql, params)
            return
        cursor.execute(self._insert_sql + "; COMMIT", params)
        while cursor.nextset():  # the COMMIT's result: its error, if any, is raised here
            pass

    def undo(self, connection: Any, xid: str, branch_id: int) -> None:
        """Phase-two rollback of one branch in its own local transaction; idempotent."""
        dialect = self.dialect
        dialect.begin(connection)
        cursor = dialect.plain_cursor(connection)
        try:
            cursor.execute(self._select_sql, (xid, branch_id))
            row = cursor.fetchone()
            if row is None:
                context, data = encode([], self.compress_threshold)
                now = _now()
                cursor.execute(
                    self._insert_sql,
                    (branch_id, xid, context, data, LOG_STATUS_GLOBAL_FINISHED, now, now),
                )
                logger.info(
                    "xid %s branch %s: no undo log, placeholder inserted",
                    xid,
                    branch_id,
                    extra={"xid": xid},
                )
            elif int(row[2]) == LOG_STATUS_NORMAL:
                items = decode(str(row[0]), bytes(row[1]))
                for item in reversed(items):
                    apply_undo(cursor, dialect, item, xid, branch_id)
                cursor.execute(self._delete_one, (xid, branch_id))
                logger.info(
                    "xid %s branch %s: undone %d statements",
                    xid,
                    branch_id,
                    len(items),
                    extra={"xid": xid},
                )
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            cursor.close()

    def delete(self, connection: Any, keys: list[tuple[str, int]]) -> int:
        """Phase-two commit: delete the undo rows of (xid, branch_id) pairs, in batches."""
        deleted = 0
        ph = self.dialect.placeholder
        cursor = self.dialect.plain_cursor(connection)
        try:
            for start in range(0, len(keys), DELETE_BATCH):
                batch = keys[start : start + DELETE_BATCH]
                where = " OR ".join([f"(xid = {ph} AND branch_id = {ph})"] * len(batch))
                params = [v for xid, branch_id in batch for v in (xid, branch_id)]
                cursor.execute(f"DELETE FROM {self._ident} WHERE {where}", params)
                deleted += max(cursor.rowcount, 0)
                connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            cursor.close()
        return deleted
