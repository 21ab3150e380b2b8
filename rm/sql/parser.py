"""The only module that imports sqlglot: SQL text in, :class:`SQLRecognition` out.

Placeholders are first rewritten to numbered markers (see ``placeholders``), so
the WHERE, ORDER BY and LIMIT clauses regenerated from the tree carry exactly
the caller's parameters they consume, in the driver's paramstyle.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from atx.dialect import Dialect
from atx.rm.sql.placeholders import (
    MARKER_PREFIX,
    Normalized,
    normalize,
    render,
    split_statements,
)
from atx.rm.types.sql import (
    InsertValue,
    ParamSQL,
    ParamStyle,
    SQLRecognition,
    SQLType,
    UpdateTarget,
    ValueKind,
)

__all__ = ["parse"]

_DDL_WORDS = frozenset({"CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME", "COMMENT"})
_DML_WORDS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "UPSERT"})
_FIRST_WORD = re.compile(r"\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*([A-Za-z]+)", re.S)
_FOR_UPDATE_TAIL = re.compile(
    r"\s+FOR\s+UPDATE(?:\s+OF\s+[\w`\".,\s]+?)?(?:\s+NOWAIT|\s+SKIP\s+LOCKED)?\s*;?\s*$", re.I
)
# COPY table [(columns)] FROM ...; COPY (query) TO ... only reads.
_COPY_FROM = re.compile(r"^\s*COPY\s+[^(\s].*?\bFROM\b", re.I | re.S)
_NAMES = {Dialect.MYSQL: "MySQL", Dialect.SQLITE: "SQLite", Dialect.POSTGRES: "PostgreSQL"}
_DDL_NODES: tuple[type[exp.Expression], ...] = (exp.Create, exp.Alter, exp.Drop, exp.TruncateTable)


def _first_word(sql: str) -> str:
    match = _FIRST_WORD.match(sql)
    return match.group(1).upper() if match else ""


def _by_keyword(sql: str, construct: str | None = None) -> SQLRecognition:
    word = _first_word(sql)
    if word in _DDL_WORDS:
        return SQLRecognition(sql, SQLType.DDL)
    if word in _DML_WORDS:
        # DML we cannot read: the executor refuses it, naming the construct.
        return SQLRecognition(
            sql, SQLType.OTHER, unsupported=construct or word, extra={"dml": True}
        )
    return SQLRecognition(sql, SQLType.OTHER)


def parse(sql: str, dialect: Dialect, has_params: bool = True) -> SQLRecognition:
    """Recognise one statement. Never raises: refusals are in ``unsupported``."""
    word = _first_word(sql)
    if word in ("REPLACE", "MERGE"):
        return SQLRecognition(sql, SQLType.OTHER, unsupported=word, extra={"dml": True})
    if word == "COPY" and _COPY_FROM.search(sql):  # PostgreSQL's bulk load: no images
        return SQLRecognition(sql, SQLType.OTHER, unsupported="COPY ... FROM", extra={"dml": True})
    norm = normalize(sql, dialect, has_params)
    try:
        trees = [t for t in sqlglot.parse(norm.text, read=dialect.value) if t is not None]
    except SqlglotError:
        return _by_keyword(sql, f"unparseable {_first_word(sql) or 'statement'}")
    if not trees:
        return SQLRecognition(sql, SQLType.OTHER)
    if len(trees) > 1:
        if any(isinstance(t, _DDL_NODES) for t in trees):
            return SQLRecognition(
                sql, SQLType.DDL, unsupported="multiple statements", extra={"dml": True}
            )
        return _multi(sql, dialect, has_params, len(trees))
    return _Builder(sql, dialect, norm).build(trees[0])  # type: ignore[arg-type]


_KIND_WORDS = {
    SQLType.INSERT_ON_DUPLICATE: "INSERT ... ON DUPLICATE KEY UPDATE",
    SQLType.SELECT_FOR_UPDATE: "SELECT ... FOR UPDATE",
}


def _multi(sql: str, dialect: Dialect, has_params: bool, count: int) -> SQLRecognition:
    """``;``-separated statements in one execute (Seata's MultiExecutor): all UPDATEs or
    all DELETEs, each recognised on its own; the executor runs them one by one."""

    def refuse(construct: str) -> SQLRecognition:
        return SQLRecognition(sql, SQLType.OTHER, unsupported=construct, extra={"dml": True})

    if dialect is Dialect.SQLITE:
        return refuse("multiple statements (sqlite3 runs one statement per execute)")
    if dialect is Dialect.POSTGRES:
        return refuse(
            "multiple statements (psycopg runs one statement per execute with parameters)"
        )
    pieces = split_statements(sql, dialect)
    if len(pieces) != count:
        return refuse("multiple statements that cannot be told apart")
    subs = tuple(parse(piece, dialect, has_params) for piece in pieces)
    kinds: list[str] = []
    for sub in subs:
        if sub.sql_type in (SQLType.UPDATE, SQLType.DELETE, SQLType.INSERT):
            word = sub.sql_type.value
        else:
            word = _KIND_WORDS.get(sub.sql_type) or _first_word(sub.sql) or "an empty statement"
        if word not in kinds:
            kinds.append(word)
    if len(kinds) > 1 or kinds[0] not in ("UPDATE", "DELETE"):
        what = f"mixing {' and '.join(kinds)}" if len(kinds) > 1 else f"of type {kinds[0]}"
        return refuse(
            f"multiple statements {what} (only all UPDATEs or all DELETEs run in one execute)"
        )
    for number, sub in enumerate(subs, 1):
        if sub.unsupported:
            return refuse(f"{sub.unsupported} (statement {number} of {count})")
    styles = {sub.param_style for sub in subs} - {ParamStyle.NONE}
    if len(styles) > 1:
        return refuse("multiple statements mixing positional and named parameters")
    return SQLRecognition(
        sql,
        subs[0].sql_type,
        param_style=styles.pop() if styles else ParamStyle.NONE,
        param_count=sum(sub.param_count for sub in subs),
        statements=subs,
    )


class _Builder:
    def __init__(self, sql: str, dialect: Dialect, norm: Normalized) -> None:
        self.sql = sql
        self.dialect = dialect
        self.norm = norm

    def _base(self, sql_type: SQLType, **kwargs: Any) -> SQLRecognition:
        return SQLRecognition(
            self.sql,
            sql_type,
            param_style=self.norm.style,
            param_count=self.norm.positional_count,
            **kwargs,
        )

    def _refuse(self, sql_type: SQLType, construct: str) -> SQLRecognition:
        return self._base(sql_type, unsupported=construct)

    def _clause(self, node: exp.Expression | None) -> ParamSQL | None:
        if node is None:
            return None
        return render(node.sql(dialect=self.dialect.value), self.norm.refs, self.dialect)

    def build(self, tree: exp.Expression) -> SQLRecognition:
        if isinstance(tree, _DDL_NODES):
            return self._base(SQLType.DDL)
        if isinstance(tree, exp.Command):
            return _by_keyword(self.sql, str(tree.this).upper())
        if isinstance(tree, exp.Merge):
            return self._refuse(SQLType.OTHER, "MERGE")
        if isinstance(tree, exp.Insert):
            return self._insert(tree)
        if isinstance(tree, exp.Update):
            return self._update_delete(tree, SQLType.UPDATE)
        if isinstance(tree, exp.Delete):
            return self._update_delete(tree, SQLType.DELETE)
        if isinstance(tree, exp.Select) and tree.args.get("locks"):
            return self._select_for_update(tree)
        return self._base(SQLType.SELECT if isinstance(tree, exp.Query) else SQLType.OTHER)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _table_name(table: exp.Table) -> str:
        db = table.args.get("db")
        return f"{db.name}.{table.name}" if db is not None else table.name

    def _subquery(self, tree: exp.Expression) -> bool:
        return any(
            isinstance(node, exp.Subquery | exp.Select) and node is not tree
            for node in tree.walk()
            if isinstance(node, exp.Expression)
        )

    def _table_count(self, tree: exp.Expression) -> int:
        """Tables the statement writes or joins: not those an EXISTS subquery reads, nor
        the list of ``DELETE t FROM ...`` (which names a table of the FROM)."""
        listed = {id(t) for t in tree.args.get("tables") or []}
        return sum(
            1
            for node in tree.walk(prune=lambda n: isinstance(n, exp.Exists))
            if isinstance(node, exp.Table) and id(node) not in listed
        )

    # -- statements ------------------------------------------------------------------------

    def _insert(self, tree: exp.Insert) -> SQLRecognition:
        target = tree.this
        columns: tuple[str, ...] = ()
        if isinstance(target, exp.Schema):
            columns = tuple(ident.name for ident in target.expressions)
            target = target.this
        if not isinstance(target, exp.Table):
            return self._refuse(SQLType.INSERT, "INSERT target")
        table = self._table_name(target)
        alternative = str(tree.args.get("alternative") or "").upper()
        if alternative == "REPLACE":
            return self._refuse(SQLType.INSERT, "REPLACE")
        # SQLite's OR IGNORE skips a row that breaks a constraint; MySQL's IGNORE also
        # coerces bad values, so the images could not find the row the server stored.
        or_ignore = alternative == "IGNORE" and self.dialect is Dialect.SQLITE
        if (alternative == "IGNORE" or tree.args.get("ignore")) and not or_ignore:
            return self._refuse(SQLType.INSERT, "INSERT IGNORE")
        # OR ABORT is SQLite's default; OR FAIL keeps a failed statement's earlier rows
        # and OR ROLLBACK ends the transaction: neither leaves images to trust.
        if alternative not in ("", "ABORT") and not or_ignore:
            return self._refuse(SQLType.INSERT, f"INSERT OR {alternative}")
        if tree.args.get("with_") or tree.args.get("with"):
            return self._refuse(SQLType.INSERT, "WITH (common table expression) in INSERT")
        source = tree.expression
        if isinstance(source, exp.Query) and not isinstance(source, exp.Values):
            # PostgreSQL's RETURNING names the rows an INSERT ... SELECT made (SQLAlchemy's
            # many-row ORM insert is one); elsewhere nothing would.
            if self.dialect is not Dialect.POSTGRES or tree.args.get("conflict") is not None:
                return self._refuse(SQLType.INSERT, "INSERT ... SELECT")
            return self._insert_select(tree, table, columns)
        if not isinstance(source, exp.Values):
            return self._refuse(SQLType.INSERT, "INSERT without VALUES")
        if self._subquery(source):
            return self._refuse(SQLType.INSERT, "subquery in INSERT VALUES")
        rows = tuple(
            tuple(
                self._value(v) for v in (row.expressions if isinstance(row, exp.Tuple) else [row])
            )
            for row in source.expressions
        )
        # An upsert (MySQL ON DUPLICATE KEY UPDATE, SQLite ON CONFLICT / OR IGNORE) is
        # imaged by the unique keys of its rows: existing rows before, all of them after.
        sql_type = SQLType.INSERT_ON_DUPLICATE if or_ignore else SQLType.INSERT
        dup_columns: tuple[str, ...] = ()
        conflict = tree.args.get("conflict")
        if conflict is not None:
            action = str(conflict.args.get("action") or "").upper()
            if not conflict.args.get("duplicate") and action not in ("DO UPDATE", "DO NOTHING"):
                return self._refuse(SQLType.INSERT, "INSERT ... ON CONFLICT")
            if self._subquery(conflict):
                return self._refuse(SQLType.INSERT_ON_DUPLICATE, "subquery in an upsert")
            sql_type = SQLType.INSERT_ON_DUPLICATE
            dup_columns = tuple(
                eq.this.name for eq in conflict.expressions if isinstance(eq, exp.EQ)
            )
        extra: dict[str, Any] = {}
        returning = tree.args.get("returning")
        if returning is not None:
            # sqlite3's cursors cannot rewind the rows for the caller.
            if self.dialect is Dialect.SQLITE:
                return self._refuse(sql_type, "INSERT ... RETURNING")
            if sql_type is SQLType.INSERT_ON_DUPLICATE and self.dialect is Dialect.MYSQL:
                return self._refuse(sql_type, "INSERT ... ON DUPLICATE KEY UPDATE ... RETURNING")
            if self._subquery(returning):
                return self._refuse(sql_type, "subquery in INSERT ... RETURNING")
            extra["returning"] = _returned_columns(returning)
        return self._base(
            sql_type,
            table=table,
            columns=columns,
            insert_rows=rows,
            on_duplicate_columns=dup_columns,
            extra=extra,
        )

    def _insert_select(
        self, tree: exp.Insert, table: str, columns: tuple[str, ...]
    ) -> SQLRecognition:
        extra: dict[str, Any] = {"select": True}
        returning = tree.args.get("returning")
        if returning is not None:
            if self._subquery(returning):
                return self._refuse(SQLType.INSERT, "subquery in INSERT ... RETURNING")
            extra["returning"] = _returned_columns(returning)
        return self._base(SQLType.INSERT, table=table, columns=columns, extra=extra)

    def _value(self, node: exp.Expression) -> InsertValue:
        if isinstance(node, exp.Placeholder) and str(node.this).startswith(MARKER_PREFIX):
            ref = self.norm.refs[int(str(node.this)[len(MARKER_PREFIX) :])]
            return InsertValue(ValueKind.PARAM, param=ref)
        if isinstance(node, exp.Null):
            return InsertValue(ValueKind.NULL)
        if isinstance(node, exp.Boolean):
            return InsertValue(ValueKind.LITERAL, literal=int(bool(node.this)))
        negative = isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal)
        literal = node.this if negative else node
        if isinstance(literal, exp.Literal):
            if literal.is_string:
                return InsertValue(ValueKind.LITERAL, literal=str(literal.this))
            text = ("-" if negative else "") + str(literal.this)
            try:
                return InsertValue(ValueKind.LITERAL, literal=int(text))
            except ValueError:
                try:
                    return InsertValue(ValueKind.LITERAL, literal=Decimal(text))
                except InvalidOperation:
                    return InsertValue(ValueKind.EXPRESSION)
        if isinstance(node, exp.Column | exp.Var) and node.name.upper() == "DEFAULT":
            return InsertValue(ValueKind.DEFAULT)
        return InsertValue(ValueKind.EXPRESSION)

    def _update_delete(self, tree: exp.Update | exp.Delete, sql_type: SQLType) -> SQLRecognition:
        target = tree.this
        if not isinstance(target, exp.Table):
            return self._refuse(sql_type, f"{sql_type.value} target")
        word = sql_type.value
        if tree.args.get("with_") or tree.args.get("with"):
            return self._refuse(sql_type, f"WITH (common table expression) in {word}")
        source = tree.args.get("from_") or tree.args.get("from")
        if isinstance(tree, exp.Update) and (target.args.get("joins") or source is not None):
            return self._update_join(tree, target, source)
        if target.args.get("joins") or source is not None:
            return self._refuse(sql_type, f"{word} with JOIN")
        if isinstance(tree, exp.Delete):
            refusal = self._delete_target(tree, target)
            if refusal is not None:
                return self._refuse(sql_type, refusal)
        refusal = self._subquery_refusal(tree, word)
        if refusal is not None:
            return self._refuse(sql_type, refusal)
        if self._table_count(tree) > 1:
            return self._refuse(sql_type, f"multi-table {word}")
        # PostgreSQL's RETURNING only hands the caller rows the images select anyway.
        if tree.args.get("returning") and self.dialect is not Dialect.POSTGRES:
            return self._refuse(sql_type, f"{word} ... RETURNING")
        alias = target.alias or None
        columns: tuple[str, ...] = ()
        if isinstance(tree, exp.Update):
            columns = tuple(eq.this.name for eq in tree.expressions if isinstance(eq, exp.EQ))
        where = tree.args.get("where")
        return self._base(
            sql_type,
            table=self._table_name(target),
            alias=alias,
            columns=columns,
            where=self._clause(where.this if where is not None else None),
            order_by=self._clause(tree.args.get("order")),
            limit=self._clause(tree.args.get("limit")),
        )

    def _delete_target(self, tree: exp.Delete, target: exp.Table) -> str | None:
        """MySQL's ``DELETE t FROM t1 AS t WHERE ...`` naming the one table of its FROM is
        a plain DELETE; any other table list (a join, ``USING``) is refused."""
        if tree.args.get("using"):
            return "DELETE with JOIN"
        tables = tree.args.get("tables") or []
        if not tables:
            return None
        if self.dialect is not Dialect.MYSQL:
            return f"multi-table DELETE syntax (DELETE t FROM ...) on {_NAMES[self.dialect]}"
        if len(tables) > 1:
            return "DELETE with JOIN"
        named = tables[0]
        if not isinstance(named, exp.Table) or _resolve([target], named.name) is None:
            return f"DELETE of {named.sql(dialect=self.dialect.value)!r}, not its FROM table"
        if named.args.get("db") is not None and named.args["db"].name != (
            target.args["db"].name if target.args.get("db") is not None else None
        ):
            return f"DELETE of {named.sql(dialect=self.dialect.value)!r}, not its FROM table"
        if tree.args.get("order") or tree.args.get("limit"):
            return "ORDER BY / LIMIT in multi-table DELETE syntax"
        return None

    def _subquery_refusal(self, tree: exp.Update | exp.Delete, word: str) -> str | None:
        """The subquery AT cannot image, named: EXISTS in WHERE is fine (the before image
        uses the same WHERE); IN-subqueries (as Seata), other subqueries and subqueries
        in SET, ORDER BY or LIMIT are not."""
        if isinstance(tree, exp.Update) and any(self._subquery(eq) for eq in tree.expressions):
            return "subquery in SET"
        where = tree.args.get("where")
        if where is not None:
            for node in where.walk(prune=lambda n: isinstance(n, exp.Exists)):
                if isinstance(node, exp.Subquery | exp.Select):
                    if isinstance(node.parent, exp.In):
                        return f"IN-subquery in {word} WHERE"
                    return f"subquery in {word} WHERE (only EXISTS subqueries are supported)"
        if any(self._subquery(tree.args[k]) for k in ("order", "limit") if tree.args.get(k)):
            return f"subquery in {word} ORDER BY / LIMIT"
        exists = (lambda n: isinstance(n, exp.Exists)) if where is not None else None
        if any(isinstance(n, exp.Subquery | exp.Select) for n in tree.walk(prune=exists)):
            return f"subquery in {word}"
        return None

    def _update_join(
        self, tree: exp.Update, target: exp.Table, source: exp.Expression | None
    ) -> SQLRecognition:
        """MySQL ``UPDATE a JOIN b ... SET`` / ``UPDATE a, b SET``: images per assigned table."""
        kind = SQLType.UPDATE
        if self.dialect is not Dialect.MYSQL:
            return self._refuse(
                kind, f"multi-table UPDATE (UPDATE ... FROM / JOIN) on {_NAMES[self.dialect]}"
            )
        if source is not None:
            return self._refuse(kind, "multi-table UPDATE ... FROM")
        tables = [target]
        for join in target.args.get("joins") or []:
            if not isinstance(join.this, exp.Table):
                return self._refuse(kind, "derived table (subquery) as a join source in UPDATE")
            tables.append(join.this)
        if self._subquery(tree):
            return self._refuse(kind, "subquery in multi-table UPDATE")
        if tree.args.get("order") or tree.args.get("limit"):
            return self._refuse(kind, "ORDER BY / LIMIT in multi-table UPDATE")
        if tree.args.get("returning"):
            return self._refuse(kind, "UPDATE ... RETURNING")
        assigned: dict[int, list[str]] = {}  # index in ``tables`` -> SET columns
        unqualified: list[str] = []  # resolved by the executor, which knows the columns
        for eq in tree.expressions:
            column = eq.this if isinstance(eq, exp.EQ) else None
            if not isinstance(column, exp.Column):
                return self._refuse(kind, "SET target in multi-table UPDATE")
            if not column.table:
                unqualified.append(column.name)
                continue
            index = _resolve(tables, column.table)
            if index is None:
                return self._refuse(kind, f"unknown table {column.table!r} in multi-table UPDATE")
            assigned.setdefault(index, []).append(column.name)
        targets: list[UpdateTarget] = []
        seen: set[str] = set()
        for index, columns in assigned.items():
            table = tables[index]
            name = self._table_name(table)
            # Conservative: ``db1.t`` and ``db2.t`` count as the same table too.
            bare = table.name.lower()
            if bare in seen:
                return self._refuse(kind, f"table {name!r} updated under two aliases")
            seen.add(bare)
            targets.append(UpdateTarget(name, table.alias or None, tuple(columns)))
        where = tree.args.get("where")
        return self._base(
            kind,
            update_targets=tuple(targets),
            join_tables=tuple(
                UpdateTarget(self._table_name(t), t.alias or None, ()) for t in tables
            ),
            unqualified_columns=tuple(unqualified),
            from_clause=self._clause(target),
            where=self._clause(where.this if where is not None else None),
        )

    def _select_for_update(self, tree: exp.Select) -> SQLRecognition:
        locks = tree.args.get("locks") or []
        if not any(lock.args.get("update") for lock in locks):
            return self._base(SQLType.SELECT)  # FOR SHARE: no global lock check
        source = tree.args.get("from_") or tree.args.get("from")
        target = source.this if source is not None else None
        stripped = None
        if self.dialect is Dialect.SQLITE:
            stripped = _FOR_UPDATE_TAIL.sub("", self.sql)
        if not isinstance(target, exp.Table) or tree.args.get("joins"):
            return self._refuse(
                SQLType.SELECT_FOR_UPDATE, "SELECT ... FOR UPDATE over several tables"
            )
        if self._subquery(tree):
            return self._refuse(SQLType.SELECT_FOR_UPDATE, "subquery in SELECT ... FOR UPDATE")
        if tree.args.get("group") or tree.args.get("having") or tree.args.get("distinct"):
            return self._refuse(SQLType.SELECT_FOR_UPDATE, "aggregate SELECT ... FOR UPDATE")
        where = tree.args.get("where")
        return self._base(
            SQLType.SELECT_FOR_UPDATE,
            table=self._table_name(target),
            alias=target.alias or None,
            where=self._clause(where.this if where is not None else None),
            order_by=self._clause(tree.args.get("order")),
            limit=self._clause(tree.args.get("limit")),
            stripped_sql=stripped,
        )


def _returned_columns(returning: exp.Expression) -> tuple[str, ...]:
    """The plain columns a RETURNING clause hands back, by output name (``*``: all)."""
    names: list[str] = []
    for node in returning.expressions:
        if isinstance(node, exp.Star) or (isinstance(node, exp.Column) and node.is_star):
            names.append("*")
        elif isinstance(node, exp.Column):
            names.append(node.name)
    return tuple(names)


def _resolve(tables: list[exp.Table], qualifier: str) -> int | None:
    """Which table a column qualifier names: exact alias/name first, then ignoring case."""
    names = [t.alias_or_name for t in tables]
    if qualifier in names:
        return names.index(qualifier)
    folded = [n.lower() for n in names]
    if folded.count(qualifier.lower()) == 1:
        return folded.index(qualifier.lower())
    return None
