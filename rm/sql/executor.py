"""Run one DML statement with before and after images: the AT data path.

One :class:`StatementExecutor` per data source. It recognises the statement
(cached by SQL text), reads the table's metadata (cached per table), refuses
what AT cannot undo before anything runs, then takes the before image,
executes the caller's statement with the caller's parameters, and takes the
after image.

Transactions: the executor never begins or ends one. The caller's cursor must
be inside an open local transaction (pymysql with ``autocommit=False``; sqlite3
after an explicit ``BEGIN`` or with the default isolation level, where the
first DML opens one). Image queries run on a second cursor of the same
connection so the caller's cursor keeps the statement's own result.
"""

from __future__ import annotations

import enum
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from atx.rm.errors import RMError, UnsupportedSQLError
from atx.rm.sql.dialect import Dialect
from atx.rm.sql.images import select_by_pks, select_image
from atx.rm.sql.metadata import TableMeta, read_table_meta
from atx.rm.sql.parser import parse
from atx.rm.sql.recognizer import ParamSQL, SQLRecognition, SQLType, ValueKind
from atx.rm.sql.update_join import update_join
from atx.rm.undo.images import SQLUndoLog, TableImage, pk_string

__all__ = [
    "ExecutionResult",
    "LockKey",
    "StatementExecutor",
    "StatementKind",
    "format_lock_keys",
]


class StatementKind(enum.Enum):
    """What the runtime must do with a statement."""

    DML = "dml"  # INSERT / UPDATE / DELETE / INSERT ... ON DUPLICATE KEY UPDATE
    SELECT_FOR_UPDATE = "select_for_update"
    DDL = "ddl"
    OTHER = "other"  # plain SELECT, SET, SHOW, ...: pass through


@dataclass(frozen=True, order=True)
class LockKey:
    """One row of one table; ``pk`` joins composite primary keys with ``_``."""

    table: str
    pk: str


def format_lock_keys(keys: Iterable[LockKey]) -> str:
    """Seata's wire form ``table:pk1,pk2;table2:pk`` (deduplicated, first-seen order)."""
    by_table: dict[str, dict[str, None]] = {}
    for key in keys:
        by_table.setdefault(key.table, {})[key.pk] = None
    return ";".join(f"{table}:{','.join(pks)}" for table, pks in by_table.items() if pks)


@dataclass(frozen=True)
class ExecutionResult:
    """What one execute/executemany did."""

    rowcount: int
    lastrowid: int | None
    undo_items: list[SQLUndoLog] = field(default_factory=list)
    lock_keys: list[LockKey] = field(default_factory=list)


_KINDS = {
    SQLType.INSERT: StatementKind.DML,
    SQLType.INSERT_ON_DUPLICATE: StatementKind.DML,
    SQLType.UPDATE: StatementKind.DML,
    SQLType.DELETE: StatementKind.DML,
    SQLType.SELECT_FOR_UPDATE: StatementKind.SELECT_FOR_UPDATE,
    SQLType.DDL: StatementKind.DDL,
}


def _positional(params: Any) -> Any:
    """Parameters as the driver sees them: a lone scalar means a one-tuple (pymysql)."""
    if params is None or isinstance(params, list | tuple | Mapping):
        return params
    return (params,)


def _bind(clauses: Iterable[ParamSQL | None], params: Any) -> tuple[str, list[Any]]:
    """Join clause texts and pick their parameters from the caller's."""
    texts: list[str] = []
    values: list[Any] = []
    for clause in clauses:
        if clause is None:
            continue
        texts.append(clause.text)
        values.extend(params[ref] for ref in clause.refs)
    return " ".join(texts), values


def _lock_keys(image: TableImage, meta: TableMeta) -> list[LockKey]:
    """The image's rows as lock keys, under the table's one lock name (``meta.key_name``)."""
    return [LockKey(meta.key_name, pk_string(pk)) for pk in image.pks()]


class StatementExecutor:
    """One per data source (resource). Caches recognitions by SQL text and table metadata.

    Thread-safe: the caches are shared by every connection of the data source.
    """

    def __init__(self, dialect: Dialect, resource_id: str, cache_size: int = 2048) -> None:
        self.dialect = dialect
        self.resource_id = resource_id
        self._cache_size = cache_size
        self._recognitions: OrderedDict[tuple[str, bool], SQLRecognition] = OrderedDict()
        self._meta: dict[str, TableMeta] = {}
        self._autoinc_step: int | None = None
        self._lock = threading.Lock()

    # -- recognition -----------------------------------------------------------------------

    def recognize(self, sql: str, has_params: bool = True) -> SQLRecognition:
        """The statement's recognition, cached (LRU) by SQL text."""
        key = (sql, has_params or self.dialect is Dialect.SQLITE)
        cache = self._recognitions
        found = cache.get(key)
        if found is not None:
            try:  # noqa: SIM105 - suppress() costs more on this hot path
                cache.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile
                pass
            return found
        recognition = parse(sql, self.dialect, key[1])
        with self._lock:
            cache[key] = recognition
            while len(cache) > self._cache_size:
                cache.popitem(last=False)
        return recognition

    def classify(self, sql: str) -> StatementKind:
        recognition = self.recognize(sql)
        kind = _KINDS.get(recognition.sql_type)
        if kind is not None:
            return kind
        return StatementKind.DML if recognition.extra.get("dml") else StatementKind.OTHER

    # -- metadata --------------------------------------------------------------------------

    def table_meta(self, cursor: Any, table: str) -> TableMeta:
        meta = self._meta.get(table)
        if meta is None:
            meta = read_table_meta(cursor, self.dialect, table)
            with self._lock:
                self._meta[table] = meta
        return meta

    def invalidate_metadata(self, table: str | None = None) -> None:
        with self._lock:
            if table is None:
                self._meta.clear()
            else:
                self._meta.pop(table, None)

    # -- execution -------------------------------------------------------------------------

    def execute(self, cursor: Any, sql: str, params: Any | None = None) -> ExecutionResult:
        params = _positional(params)
        recognition = self.recognize(sql, params is not None)
        if recognition.unsupported:
            raise UnsupportedSQLError(recognition.unsupported, sql)
        sql_type = recognition.sql_type
        if sql_type is SQLType.DDL:
            raise UnsupportedSQLError("DDL", sql)
        if sql_type not in _KINDS:  # plain SELECT, SET, ...: nothing to record
            self._run(cursor, sql, params)
            return ExecutionResult(cursor.rowcount, cursor.lastrowid)
        aux = self.dialect.plain_cursor(cursor.connection)
        try:
            if recognition.from_clause is not None:
                return self._update_join(cursor, aux, recognition, params)
            if recognition.table is None:
                raise UnsupportedSQLError(f"{sql_type.value} without a table", sql)
            meta = self.table_meta(aux, recognition.table)
            if not meta.pk_columns:
                raise UnsupportedSQLError(
                    f"DML on table {recognition.table!r} without a primary key", sql
                )
            if sql_type is SQLType.SELECT_FOR_UPDATE:
                return self._select_for_update(cursor, aux, meta, recognition, params)
            if sql_type is SQLType.INSERT:
                return self._insert(cursor, aux, meta, recognition, params)
            if sql_type is SQLType.INSERT_ON_DUPLICATE:
                return self._insert_on_duplicate(cursor, aux, meta, recognition, params)
            return self._update_delete(cursor, aux, meta, recognition, params)
        finally:
            aux.close()

    def executemany(self, cursor: Any, sql: str, seq_of_params: Iterable[Any]) -> ExecutionResult:
        """Each parameter set in turn; one merged result."""
        rowcount = 0
        lastrowid: int | None = None
        items: list[SQLUndoLog] = []
        keys: list[LockKey] = []
        for params in seq_of_params:
            result = self.execute(cursor, sql, params)
            rowcount += max(result.rowcount, 0)
            lastrowid = result.lastrowid if result.lastrowid else lastrowid
            items.extend(result.undo_items)
            keys.extend(result.lock_keys)
        return ExecutionResult(rowcount, lastrowid, items, keys)

    @staticmethod
    def _run(cursor: Any, sql: str, params: Any) -> None:
        if params is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, params)

    def _result(self, cursor: Any, items: list[SQLUndoLog], keys: list[LockKey]) -> ExecutionResult:
        return ExecutionResult(cursor.rowcount, cursor.lastrowid, items, keys)

    # -- statement types -------------------------------------------------------------------

    def _select_for_update(
        self, cursor: Any, aux: Any, meta: TableMeta, rec: SQLRecognition, params: Any
    ) -> ExecutionResult:
        tail, values = _bind((self._where(rec.where), rec.order_by, rec.limit), params)
        locked = select_image(
            aux, self.dialect, meta.name, meta.pk_columns, meta.pk_columns, tail, values,
            alias=rec.alias, for_update=True,
        )  # fmt: skip
        self._run(cursor, rec.stripped_sql or rec.sql, params)
        return self._result(cursor, [], _lock_keys(locked, meta))

    @staticmethod
    def _where(where: ParamSQL | None) -> ParamSQL | None:
        return None if where is None else ParamSQL("WHERE " + where.text, where.refs)

    def _update_delete(
        self, cursor: Any, aux: Any, meta: TableMeta, rec: SQLRecognition, params: Any
    ) -> ExecutionResult:
        pk_lower = {c.lower() for c in meta.pk_columns}
        for column in rec.columns:
            if column.lower() in pk_lower:
                raise UnsupportedSQLError(f"UPDATE of primary key column {column!r}", rec.sql)
        tail, values = _bind((self._where(rec.where), rec.order_by, rec.limit), params)
        before = select_image(
            aux, self.dialect, meta.name, meta.columns, meta.pk_columns, tail, values,
            alias=rec.alias, for_update=True,
        )  # fmt: skip
        self._run(cursor, rec.sql, params)
        if not before:
            return self._result(cursor, [], [])
        if rec.sql_type is SQLType.DELETE:
            after = TableImage.empty(meta.name, meta.columns, meta.pk_columns)
            keys = _lock_keys(before, meta)
        else:
            after = select_by_pks(
                aux, self.dialect, meta.name, meta.columns, meta.pk_columns, before.pks()
            )
            keys = _lock_keys(after, meta)
        return self._result(cursor, [SQLUndoLog(rec.sql_type, meta.name, before, after)], keys)

    def _update_join(
        self, cursor: Any, aux: Any, rec: SQLRecognition, params: Any
    ) -> ExecutionResult:
        items = update_join(
            aux,
            self.dialect,
            rec,
            params,
            lambda table: self.table_meta(aux, table),
            lambda: self._run(cursor, rec.sql, params),
        )
        keys = [
            key
            for item in items
            for key in _lock_keys(item.after, self.table_meta(aux, item.after.table))
        ]
        return self._result(cursor, items, keys)

    def _insert_columns(self, meta: TableMeta, rec: SQLRecognition) -> tuple[str, ...]:
        if not rec.columns:
            return tuple(c for c in meta.columns if c not in meta.generated)
        columns = []
        for name in rec.columns:
            real = meta.column(name)
            if real is None:
                raise RMError(f"unknown column {name!r} in table {meta.name!r}", column=name)
            columns.append(real)
        return tuple(columns)

    def _insert_pks(
        self, meta: TableMeta, rec: SQLRecognition, params: Any
    ) -> list[tuple[tuple[Any, ...], bool]]:
        """Each row's primary key and whether the database generates its auto column."""
        columns = self._insert_columns(meta, rec)
        out: list[tuple[tuple[Any, ...], bool]] = []
        for row in rec.insert_rows:
            if len(row) != len(columns):
                raise UnsupportedSQLError("INSERT with a column/value count mismatch", rec.sql)
            by_column = dict(zip(columns, row, strict=True))
            pk: list[Any] = []
            generated = False
            for column in meta.pk_columns:
                value = by_column.get(column)
                if value is not None and value.kind is ValueKind.EXPRESSION:
                    raise UnsupportedSQLError(
                        f"INSERT with a computed primary key value ({column})", rec.sql
                    )
                resolved = None if value is None else value.resolve(params)
                zero_is_auto = self.dialect is Dialect.MYSQL and resolved == 0
                if resolved is None or (zero_is_auto and column == meta.auto_increment):
                    if column != meta.auto_increment:
                        raise UnsupportedSQLError(
                            f"INSERT without a value for primary key column {column!r}", rec.sql
                        )
                    generated = True
                pk.append(resolved)
            out.append((tuple(pk), generated))
        return out

    def _insert(
        self, cursor: Any, aux: Any, meta: TableMeta, rec: SQLRecognition, params: Any
    ) -> ExecutionResult:
        rows = self._insert_pks(meta, rec, params)
        generated = sum(1 for _, gen in rows if gen)
        if self.dialect is Dialect.SQLITE and 0 < generated < len(rows):
            raise UnsupportedSQLError(
                "multi-row INSERT mixing explicit and generated primary keys", rec.sql
            )
        step = self._autoinc_increment(aux) if generated else 1
        self._run(cursor, rec.sql, params)
        pks = [pk for pk, _ in rows]
        if generated:
            pks = self._fill_generated(meta, rows, cursor.lastrowid, generated, step)
        after = select_by_pks(aux, self.dialect, meta.name, meta.columns, meta.pk_columns, pks)
        if len(after) != len(set(pks)):
            raise RMError(
                f"cannot find the rows just inserted into {meta.name!r}"
                " (generated keys not consecutive?)",
                table=meta.name,
            )
        before = TableImage.empty(meta.name, meta.columns, meta.pk_columns)
        item = SQLUndoLog(SQLType.INSERT, meta.name, before, after)
        return self._result(cursor, [item], _lock_keys(after, meta))

    def _autoinc_increment(self, aux: Any) -> int:
        if self.dialect is not Dialect.MYSQL:
            return 1
        if self._autoinc_step is None:
            aux.execute("SELECT @@auto_increment_increment")
            self._autoinc_step = int(aux.fetchone()[0])
        return self._autoinc_step

    def _fill_generated(
        self,
        meta: TableMeta,
        rows: list[tuple[tuple[Any, ...], bool]],
        lastrowid: int | None,
        generated: int,
        step: int,
    ) -> list[tuple[Any, ...]]:
        if not lastrowid:
            raise RMError(f"no generated key reported for the insert into {meta.name!r}")
        # MySQL reports the first generated id of the statement, SQLite the last.
        first = lastrowid if self.dialect is Dialect.MYSQL else lastrowid - (generated - 1) * step
        index = meta.pk_columns.index(meta.auto_increment or "")
        ids = iter(range(first, first + generated * step, step))
        out: list[tuple[Any, ...]] = []
        for pk, gen in rows:
            if gen:
                pk = (*pk[:index], next(ids), *pk[index + 1 :])
            out.append(pk)
        return out

    def _insert_on_duplicate(
        self, cursor: Any, aux: Any, meta: TableMeta, rec: SQLRecognition, params: Any
    ) -> ExecutionResult:
        pk_lower = {c.lower() for c in meta.pk_columns}
        for column in rec.on_duplicate_columns:
            if column.lower() in pk_lower:
                raise UnsupportedSQLError(f"UPDATE of primary key column {column!r}", rec.sql)
        columns = self._insert_columns(meta, rec)
        groups: list[str] = []
        values: list[Any] = []
        ph = self.dialect.placeholder
        for row in rec.insert_rows:
            by_column = dict(zip(columns, row, strict=False))
            found = False
            for key in meta.unique_keys:
                resolved = [
                    by_column[c].resolve(params)
                    if c in by_column and by_column[c].kind in (ValueKind.PARAM, ValueKind.LITERAL)
                    else None
                    for c in key
                ]
                if all(v is not None for v in resolved):
                    groups.append(
                        "(" + " AND ".join(f"{self.dialect.ident(c)} = {ph}" for c in key) + ")"
                    )
                    values.extend(resolved)
                    found = True
            if not found:
                raise UnsupportedSQLError(
                    "upsert (ON DUPLICATE KEY UPDATE, ON CONFLICT, OR IGNORE) of a row without"
                    " a complete unique key value",
                    rec.sql,
                )
        tail = "WHERE " + " OR ".join(groups)
        before = select_image(
            aux, self.dialect, meta.name, meta.columns, meta.pk_columns, tail, values,
            for_update=True,
        )  # fmt: skip
        self._run(cursor, rec.sql, params)
        after = select_image(
            aux, self.dialect, meta.name, meta.columns, meta.pk_columns, tail, values
        )
        missing = [pk for pk in before.pks() if pk not in after.by_pk()]
        if missing:  # an update moved a unique key: follow the rows by primary key
            moved = select_by_pks(
                aux, self.dialect, meta.name, meta.columns, meta.pk_columns, missing
            )
            after = TableImage(meta.name, meta.columns, meta.pk_columns, after.rows + moved.rows)
        item = SQLUndoLog(SQLType.INSERT_ON_DUPLICATE, meta.name, before, after)
        return self._result(cursor, [item], _lock_keys(after, meta))
