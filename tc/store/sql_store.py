"""The session store over a networked SQL database, shared by the MySQL and
PostgreSQL stores; each adds its driver, pool, schema and the few statements
the two databases spell differently (id blocks, insert-if-absent, the clock).

Tables: ``global_table``, ``branch_table``, ``lock_table`` (``row_key``
primary key), ``distributed_lock``, ``audit_log``, the ids' counter and
``global_history`` (capped).

Every deciding method is one transaction. Status changes are a conditional
``UPDATE ... WHERE status IN (...)`` (a compare-and-set that holds the
global row's lock until commit); registration locks the global row with
``SELECT ... FOR UPDATE`` first, so that no status change can slip between
the status check and the lock inserts. Row locks are inserted sorted by row
key (a fixed order, so two registrations cannot deadlock each other); a row
another transaction inserted first means it won the race, and the
registration is decided again (:class:`~atx.tc.store.sql_txn.Rerun`).

Sessions run READ COMMITTED: every decision rests on a locking read, a
conditional update or a unique-key insert, which always see the newest
committed rows, and READ COMMITTED takes no gap locks (MySQL), so
concurrent registrations do not block on neighbouring keys.

Durability: state lives in the database; everything acknowledged survives
a ``kill -9`` of the TC (and of the database with its default flush on
commit: InnoDB's ``innodb_flush_log_at_trx_commit=1``, PostgreSQL's
``synchronous_commit=on``).
"""

from __future__ import annotations

import dataclasses
import threading
from abc import abstractmethod
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

from atx.clock import now_ms
from atx.errors import GlobalTransactionNotFoundError, IllegalStatusError
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
)
from atx.tc.store.sql_common import (
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
from atx.tc.store.sql_txn import ConnT, Cursor, Rerun, SqlTransactions

__all__ = ["ID_BLOCK", "SqlSessionStore"]

T = TypeVar("T")

#: Ids reserved per round trip to the shared counter.
ID_BLOCK = 100
#: Rows per statement when a registration names many.
_CHUNK = 500


class SqlSessionStore(SqlTransactions[ConnT]):
    """A :class:`~atx.tc.store.base.SessionStore` on a shared SQL database."""

    #: This store's listing queries (dialect and table names).
    sql: StoreSql
    #: A SELECT of the database's clock in ms since the epoch (job lock expiry).
    clock_sql: str

    def __init__(self, history_size: int) -> None:
        self._history_size = history_size
        self._id_lock = threading.Lock()
        self._next = 0
        self._limit = 0

    # --- what the databases spell differently ----------------------------------
    @abstractmethod
    def _reserve_ids(self, cur: Cursor, count: int = ID_BLOCK) -> tuple[int, int]:
        """Take the next ``count`` ids from the shared counter (or the database's
        fixed block): the first of them and how many."""

    @abstractmethod
    def _insert_absent(
        self, cur: Cursor, table: str, cols: str, rows: Sequence[Sequence[Any]]
    ) -> bool:
        """Insert ``rows`` whose primary key is new; False (and the transaction
        still usable) when any key already existed."""

    @abstractmethod
    def _insert_audit(self, cur: Cursor, values: Sequence[Any]) -> int:
        """Insert an audit row (values as ``audit_values``); its new id."""

    # --- identity -------------------------------------------------------------
    def next_id(self) -> int:
        with self._id_lock:
            if self._next >= self._limit:
                first, count = self._run(self._reserve_ids)
                self._next, self._limit = first, first + count
            self._next += 1
            return self._next - 1

    def reserve_ids(self, count: int) -> tuple[int, int]:
        return self._run(lambda cur: self._reserve_ids(cur, count))

    # --- global sessions ------------------------------------------------------
    def insert_global(self, record: GlobalRecord) -> None:
        values = global_values(record)
        self._run(lambda cur: self._insert_absent(cur, "global_table", GLOBAL_COLS, [values]))

    def _branches(self, cur: Cursor, xids: Sequence[str]) -> dict[str, list[BranchRecord]]:
        found: dict[str, list[BranchRecord]] = {xid: [] for xid in xids}
        if xids:
            cur.execute(
                f"SELECT {BRANCH_COLS} FROM branch_table "
                f"WHERE xid IN ({self.sql.marks(len(xids))}) ORDER BY seq",
                tuple(xids),
            )
            for row in cur.fetchall():
                found[row[1]].append(branch_record(row))
        return found

    def _active(self, cur: Cursor, xid: str) -> GlobalRecord | None:
        cur.execute(f"SELECT {GLOBAL_COLS} FROM global_table WHERE xid=%s", (xid,))
        row = cur.fetchone()
        return None if row is None else global_record(row)

    def get_global(self, xid: str, with_branches: bool = True) -> GlobalRecord | None:
        def get(cur: Cursor) -> GlobalRecord | None:
            record = self._active(cur, xid)
            if record is not None:
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
            cur.execute(
                f"UPDATE global_table SET {', '.join(sets)} "
                f"WHERE xid=%s AND status IN ({self.sql.marks(len(expected))})",
                tuple(args),
            )
            if not cur.rowcount:
                return None
            if release_locks:
                cur.execute("DELETE FROM lock_table WHERE xid=%s", (xid,))
            return self._active(cur, xid)

        return self._run(change)

    def update_global(
        self,
        xid: str,
        *,
        retry_stopped: bool | None = None,
        next_retry_ms: int | None = None,
        retry_count: int | None = None,
    ) -> GlobalRecord | None:
        sql, args = self.sql.update_global(now_ms(), retry_stopped, next_retry_ms, retry_count)

        def update(cur: Cursor) -> GlobalRecord | None:
            cur.execute(sql, (*args, xid))
            return self._active(cur, xid) if cur.rowcount else None

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
        sql, args = self.sql.find_globals(statuses, due_before_ms, limit)

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
                f"INSERT INTO global_history ({GLOBAL_COLS}, branches) "
                f"VALUES ({self.sql.marks(12)})",
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
            cur.execute("DELETE FROM global_table WHERE xid=%s", (xid,))
            found = cur.rowcount
            cur.execute("DELETE FROM global_history WHERE xid=%s", (xid,))
            found += cur.rowcount
            cur.execute("DELETE FROM branch_table WHERE xid=%s", (xid,))
            cur.execute("DELETE FROM lock_table WHERE xid=%s", (xid,))
            return found > 0

        return self._run(delete)

    def list_globals(
        self, flt: GlobalSessionFilter, page_size: int, page_token: str
    ) -> Page[GlobalRecord]:
        return self._page(self.sql.list_globals(flt, page_size, page_token), global_record)

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
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                cur.execute(
                    f"SELECT row_key, xid FROM lock_table "
                    f"WHERE row_key IN ({self.sql.marks(len(chunk))})",
                    tuple(chunk),
                )
                held = {r[0]: r[1] for r in cur.fetchall()}
                for key in chunk:
                    holder = held.get(key)
                    if holder is None:
                        fresh.append(key)
                    elif holder != xid:
                        self._conflict(cur, holder, key)
            now = now_ms()
            for start in range(0, len(fresh), _CHUNK):
                values = [
                    lock_values(branch, unique[k], now) for k in fresh[start : start + _CHUNK]
                ]
                if not self._insert_absent(cur, "lock_table", LOCK_COLS, values):
                    raise Rerun()  # raced by another registration: decide again
            cur.execute(
                f"INSERT INTO branch_table ({BRANCH_COLS}) VALUES ({self.sql.marks(11)})",
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
            cur.execute(
                "UPDATE branch_table SET status=%s, modified_time_ms=%s "
                "WHERE xid=%s AND branch_id=%s",
                (int(status), now_ms(), xid, branch_id),
            )
            return cur.rowcount > 0

        return self._run(update)

    def release_locks(self, xid: str, branch_id: int | None = None) -> int:
        def release(cur: Cursor) -> int:
            if branch_id is None:
                cur.execute("DELETE FROM lock_table WHERE xid=%s", (xid,))
            else:
                cur.execute(
                    "DELETE FROM lock_table WHERE xid=%s AND branch_id=%s", (xid, branch_id)
                )
            return int(cur.rowcount)

        return self._run(release)

    def query_locks(self, rows: Sequence[RowLock], xid: str = "") -> str | None:
        keys = sorted({row.row_key for row in rows})

        def query(cur: Cursor) -> str | None:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                cur.execute(
                    f"SELECT xid FROM lock_table WHERE row_key IN ({self.sql.marks(len(chunk))}) "
                    "AND xid <> %s LIMIT 1",
                    (*chunk, xid),
                )
                found = cur.fetchone()
                if found is not None:
                    return str(found[0])
            return None

        return self._run(query)

    def list_locks(self, flt: LockFilter, page_size: int, page_token: str) -> Page[LockRecord]:
        return self._page(self.sql.list_locks(flt, page_size, page_token), lock_record)

    # --- cluster --------------------------------------------------------------
    def try_job_lock(self, name: str, owner: str, ttl_ms: int) -> bool:
        # Expiry is judged by the database clock, which every node shares.
        def take(cur: Cursor) -> bool:
            cur.execute(self.clock_sql)
            clock = cur.fetchone()
            now = int(clock[0]) if clock else now_ms()
            cur.execute(
                "SELECT owner, expire_ms FROM distributed_lock WHERE name=%s FOR UPDATE", (name,)
            )
            row = cur.fetchone()
            if row is None:
                # False: another node took it first.
                return self._insert_absent(
                    cur, "distributed_lock", "name, owner, expire_ms", [(name, owner, now + ttl_ms)]
                )
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
        values = audit_values(stored)
        return dataclasses.replace(stored, id=self._run(lambda c: self._insert_audit(c, values)))

    def list_audit(self, xid: str, page_size: int, page_token: str) -> Page[AuditRecord]:
        return self._page(self.sql.list_audit(xid, page_size, page_token), audit_record)
