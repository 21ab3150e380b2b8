"""What the SQL stores (SQLite, MySQL, PostgreSQL) share: column lists, row
conversion, the listing queries with their filters and keyset page tokens.

The stores differ in dialect (placeholder style) and table names; a
:class:`StoreSql` carries both, so one builder serves either store.
Each store still runs the statements itself (its own connection handling).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from atx.dialect import Dialect
from atx.status import BranchStatus, BranchType, GlobalStatus
from atx.tc.store.base import (
    AuditRecord,
    BranchRecord,
    GlobalRecord,
    GlobalSessionFilter,
    LockFilter,
    LockRecord,
    Page,
    RowLock,
    decode_page_token,
    encode_page_token,
    invalid_page_token,
)

__all__ = [
    "AUDIT_COLS",
    "AUDIT_INSERT",
    "BRANCH_COLS",
    "GLOBAL_COLS",
    "LOCK_COLS",
    "PageQuery",
    "StoreSql",
    "audit_record",
    "audit_values",
    "branch_record",
    "branch_values",
    "branches_from_json",
    "branches_json",
    "global_record",
    "global_values",
    "lock_record",
    "lock_values",
]

T = TypeVar("T")

GLOBAL_COLS = (
    "xid, transaction_id, status, application_id, transaction_name, timeout_ms, "
    "begin_time_ms, modified_time_ms, retry_stopped, retry_count, next_retry_ms"
)
BRANCH_COLS = (
    "branch_id, xid, transaction_id, resource_id, branch_type, status, lock_keys, "
    "application_data, client_id, begin_time_ms, modified_time_ms"
)
LOCK_COLS = "row_key, xid, transaction_id, branch_id, resource_id, table_name, pk, created_time_ms"
AUDIT_COLS = "id, time_ms, operator, action, xid, result, detail"
#: What an INSERT into audit_log names (the id is assigned).
AUDIT_INSERT = "INSERT INTO audit_log (time_ms, operator, action, xid, result, detail) VALUES"


# --- rows <-> records ---------------------------------------------------------
def global_record(row: Sequence[Any]) -> GlobalRecord:
    """A row of GLOBAL_COLS (extra trailing columns are ignored)."""
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


def branch_record(row: Sequence[Any]) -> BranchRecord:
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


def lock_record(row: Sequence[Any]) -> LockRecord:
    return LockRecord(*row)


def audit_record(row: Sequence[Any]) -> AuditRecord:
    return AuditRecord(*row)


def audit_values(r: AuditRecord) -> tuple[Any, ...]:
    """AUDIT_COLS values but the id (the database assigns it), for an INSERT."""
    return (r.time_ms, r.operator, r.action, r.xid, r.result, r.detail)


def global_values(r: GlobalRecord) -> tuple[Any, ...]:
    """GLOBAL_COLS values of a record, for an INSERT."""
    return (
        r.xid,
        r.transaction_id,
        int(r.status),
        r.application_id,
        r.transaction_name,
        r.timeout_ms,
        r.begin_time_ms,
        r.modified_time_ms,
        int(r.retry_stopped),
        r.retry_count,
        r.next_retry_ms,
    )


def branch_values(b: BranchRecord) -> tuple[Any, ...]:
    """BRANCH_COLS values of a record (also the history's JSON array per branch)."""
    return (
        b.branch_id,
        b.xid,
        b.transaction_id,
        b.resource_id,
        int(b.branch_type),
        int(b.status),
        b.lock_keys,
        b.application_data,
        b.client_id,
        b.begin_time_ms,
        b.modified_time_ms,
    )


def lock_values(branch: BranchRecord, row: RowLock, now_ms: int) -> tuple[Any, ...]:
    """LOCK_COLS values of one row lock taken by ``branch``."""
    return (
        row.row_key,
        branch.xid,
        branch.transaction_id,
        branch.branch_id,
        row.resource_id,
        row.table_name,
        row.pk,
        now_ms,
    )


def branches_json(branches: Sequence[BranchRecord]) -> str:
    """The history's ``branches`` column: a JSON array of BRANCH_COLS arrays."""
    return json.dumps([branch_values(b) for b in branches])


def branches_from_json(text: str | None) -> list[BranchRecord]:
    return [branch_record(b) for b in json.loads(text or "[]")]


# --- queries --------------------------------------------------------------------
#: A listing's cursor, from its last item: what the next page starts after.
_CURSORS: dict[str, Callable[[Any], str]] = {
    "g": lambda r: f"{r.begin_time_ms}:{r.xid}",
    "l": lambda r: str(r.row_key),
    "a": lambda r: str(r.id),
}


@dataclass(frozen=True)
class PageQuery:
    """A listing: a COUNT statement and a page statement that starts after the
    cursor of the page token (keyset paging: a page stays where it was when
    newer rows arrive) and reads one row more than the page, to know whether
    another follows."""

    count_sql: str
    count_args: tuple[Any, ...]
    rows_sql: str
    rows_args: tuple[Any, ...]
    size: int
    kind: str

    def page(self, rows: Sequence[Sequence[Any]], total: int, convert: Callable[..., T]) -> Page[T]:
        items = [convert(r) for r in rows[: self.size]]
        more = len(rows) > self.size
        token = encode_page_token(self.kind, _CURSORS[self.kind](items[-1])) if more else ""
        return Page(items, token, total)


@dataclass(frozen=True)
class StoreSql:
    """The listing queries of one SQL store: its dialect and its table names."""

    dialect: Dialect
    global_table: str
    history_table: str

    @property
    def mark(self) -> str:
        return self.dialect.placeholder

    def marks(self, n: int) -> str:
        return self.dialect.marks(n)

    def _paged(
        self,
        source: str,
        args: Sequence[Any],
        order: str,
        page_size: int,
        kind: str,
        after: tuple[str, tuple[Any, ...]] | None,
    ) -> PageQuery:
        """``after``: the condition (and its arguments) of rows past the cursor."""
        size, m = max(1, page_size), self.mark
        where, after_args = (f" WHERE {after[0]}", after[1]) if after else ("", ())
        return PageQuery(
            f"SELECT COUNT(*) FROM {source}",
            tuple(args),
            f"SELECT * FROM {source}{where} ORDER BY {order} LIMIT {m}",
            (*args, *after_args, size + 1),
            size,
            kind,
        )

    def _equal(self, pairs: Sequence[tuple[str, Any]]) -> tuple[list[str], list[Any]]:
        where = [f"{column}={self.mark}" for column, value in pairs if value]
        return where, [value for _column, value in pairs if value]

    def list_globals(self, flt: GlobalSessionFilter, page_size: int, page_token: str) -> PageQuery:
        """Active sessions (and history when asked), newest first; rows of GLOBAL_COLS."""
        where, args = self._equal(
            [
                ("application_id", flt.application_id),
                ("transaction_name", flt.transaction_name),
                ("xid", flt.xid),
            ]
        )
        if flt.statuses:
            where.insert(0, f"status IN ({self.marks(len(flt.statuses))})")
            args[:0] = [int(s) for s in flt.statuses]
        if flt.begin_time_from_ms:
            where.append(f"begin_time_ms >= {self.mark}")
            args.append(flt.begin_time_from_ms)
        if flt.begin_time_to_ms:
            where.append(f"begin_time_ms <= {self.mark}")
            args.append(flt.begin_time_to_ms)
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        source = f"SELECT {GLOBAL_COLS} FROM {self.global_table}{cond}"
        all_args = list(args)
        if flt.include_history:
            source += f" UNION ALL SELECT {GLOBAL_COLS} FROM {self.history_table}{cond}"
            all_args += args
        after = None
        if page_token:
            begin, _, xid = decode_page_token(page_token, "g").partition(":")
            if not begin.isdigit():
                raise invalid_page_token(page_token)
            m = self.mark
            after = (
                f"(begin_time_ms < {m} OR (begin_time_ms = {m} AND xid < {m}))",
                (int(begin), int(begin), xid),
            )
        return self._paged(
            f"({source}) AS g", all_args, "begin_time_ms DESC, xid DESC", page_size, "g", after
        )

    def list_locks(self, flt: LockFilter, page_size: int, page_token: str) -> PageQuery:
        """Row locks by row key; rows of LOCK_COLS."""
        where, args = self._equal(
            [
                ("xid", flt.xid),
                ("resource_id", flt.resource_id),
                ("table_name", flt.table_name),
                ("pk", flt.pk),
            ]
        )
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        source = f"(SELECT {LOCK_COLS} FROM lock_table{cond}) AS l"
        after = None
        if page_token:
            after = (f"row_key > {self.mark}", (decode_page_token(page_token, "l"),))
        return self._paged(source, args, "row_key", page_size, "l", after)

    def list_audit(self, xid: str, page_size: int, page_token: str) -> PageQuery:
        """Audit entries newest first; rows of AUDIT_COLS."""
        where, args = self._equal([("xid", xid)])
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        source = f"(SELECT {AUDIT_COLS} FROM audit_log{cond}) AS a"
        after = None
        if page_token:
            last = decode_page_token(page_token, "a")
            if not last.isdigit():
                raise invalid_page_token(page_token)
            after = (f"id < {self.mark}", (int(last),))
        return self._paged(source, args, "id DESC", page_size, "a", after)

    def find_globals(
        self, statuses: Collection[GlobalStatus], due_before_ms: int | None, limit: int
    ) -> tuple[str, tuple[Any, ...]]:
        """Active sessions in ``statuses`` (due by ``due_before_ms``), oldest first."""
        sql = (
            f"SELECT {GLOBAL_COLS} FROM {self.global_table} "
            f"WHERE status IN ({self.marks(len(statuses))})"
        )
        args: list[Any] = [int(s) for s in statuses]
        if due_before_ms is not None:
            sql += f" AND next_retry_ms <= {self.mark}"
            args.append(due_before_ms)
        sql += f" ORDER BY begin_time_ms, xid LIMIT {self.mark}"
        args.append(limit)
        return sql, tuple(args)

    def update_global(
        self,
        now_ms: int,
        retry_stopped: bool | None,
        next_retry_ms: int | None,
        retry_count: int | None,
    ) -> tuple[str, list[Any]]:
        """``UPDATE <global table> SET ... WHERE xid=`` (the caller appends the
        xid argument and any RETURNING clause) and its arguments."""
        m = self.mark
        sets = [f"modified_time_ms={m}"]
        args: list[Any] = [now_ms]
        for column, value in (
            ("retry_stopped", retry_stopped),
            ("next_retry_ms", next_retry_ms),
            ("retry_count", retry_count),
        ):
            if value is not None:
                sets.append(f"{column}={m}")
                args.append(int(value))
        return f"UPDATE {self.global_table} SET {', '.join(sets)} WHERE xid={m}", args
