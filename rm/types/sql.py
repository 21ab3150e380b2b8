"""The project's own view of a parsed statement (no sqlglot types here).

The parser (:mod:`atx.rm.sql.parser`) fills these in; the executors read them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "InsertValue",
    "ParamSQL",
    "ParamStyle",
    "SQLRecognition",
    "SQLType",
    "StatementKind",
    "UpdateTarget",
    "ValueKind",
]


class SQLType(enum.Enum):
    INSERT = "INSERT"
    INSERT_ON_DUPLICATE = "INSERT_ON_DUPLICATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    SELECT_FOR_UPDATE = "SELECT_FOR_UPDATE"
    SELECT = "SELECT"
    DDL = "DDL"
    OTHER = "OTHER"


class StatementKind(enum.Enum):
    """What the runtime must do with a statement."""

    DML = "dml"  # INSERT / UPDATE / DELETE / INSERT ... ON DUPLICATE KEY UPDATE
    SELECT_FOR_UPDATE = "select_for_update"
    DDL = "ddl"
    OTHER = "other"  # plain SELECT, SET, SHOW, ...: pass through


class ParamStyle(enum.Enum):
    NONE = "none"
    POSITIONAL = "positional"  # pymysql %s, sqlite3 ?
    NAMED = "named"  # pymysql %(name)s, sqlite3 :name


class ValueKind(enum.Enum):
    LITERAL = "literal"
    PARAM = "param"
    NULL = "null"
    DEFAULT = "default"  # DEFAULT keyword: the database chooses
    EXPRESSION = "expression"  # anything else (NOW(), a+1, ...)


@dataclass(frozen=True)
class InsertValue:
    """One value of an INSERT row: a literal, a parameter reference, or an expression."""

    kind: ValueKind
    literal: Any = None
    param: int | str | None = None  # positional index or parameter name

    def resolve(self, params: Any) -> Any:
        """The value this stands for given the statement's parameters."""
        if self.kind is ValueKind.LITERAL:
            return self.literal
        if self.kind is ValueKind.PARAM:
            return params[self.param]
        return None


@dataclass(frozen=True)
class ParamSQL:
    """A clause's SQL text in the driver's paramstyle plus the parameters it consumes."""

    text: str
    refs: tuple[int | str, ...] = ()  # positional indexes or names, in text order


@dataclass(frozen=True)
class UpdateTarget:
    """One table a multi-table UPDATE assigns to."""

    table: str  # as written, possibly ``db.table``
    alias: str | None
    columns: tuple[str, ...]  # its SET columns


@dataclass(frozen=True)
class SQLRecognition:
    """Everything the executors need to know about one statement."""

    sql: str
    sql_type: SQLType
    param_style: ParamStyle = ParamStyle.NONE
    param_count: int = 0
    table: str | None = None
    alias: str | None = None
    #: INSERT target columns (empty when the statement lists none) or UPDATE SET columns.
    columns: tuple[str, ...] = ()
    where: ParamSQL | None = None
    order_by: ParamSQL | None = None
    limit: ParamSQL | None = None
    insert_rows: tuple[tuple[InsertValue, ...], ...] = ()
    on_duplicate_columns: tuple[str, ...] = ()
    #: Multi-table UPDATE (MySQL): the assigned tables and the whole FROM/JOIN clause.
    #: ``table``/``alias``/``columns`` stay empty then: they describe a single table.
    update_targets: tuple[UpdateTarget, ...] = ()
    #: Multi-table UPDATE: every table of the FROM/JOIN clause (columns empty), for SET
    #: columns written without a table, which the executor resolves from metadata.
    join_tables: tuple[UpdateTarget, ...] = ()
    unqualified_columns: tuple[str, ...] = ()
    from_clause: ParamSQL | None = None
    #: For SQLite SELECT ... FOR UPDATE: the statement to run with the clause stripped.
    stripped_sql: str | None = None
    #: ``;``-separated statements run in one execute (MySQL, all UPDATEs or all DELETEs):
    #: each one's own recognition, its parameters counted from its own text. The
    #: fields above then describe none of them but ``sql_type`` and the parameters.
    statements: tuple[SQLRecognition, ...] = ()
    #: Set when the statement is refused: the construct's name.
    unsupported: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> StatementKind:
        """What the runtime does with the statement (DML, a locking read, DDL, other)."""
        kind = _KINDS.get(self.sql_type)
        if kind is not None:
            return kind
        return StatementKind.DML if self.extra.get("dml") else StatementKind.OTHER

    @property
    def is_join(self) -> bool:
        """A multi-table UPDATE: imaged per assigned table."""
        return self.from_clause is not None


_KINDS = {
    SQLType.INSERT: StatementKind.DML,
    SQLType.INSERT_ON_DUPLICATE: StatementKind.DML,
    SQLType.UPDATE: StatementKind.DML,
    SQLType.DELETE: StatementKind.DML,
    SQLType.SELECT_FOR_UPDATE: StatementKind.SELECT_FOR_UPDATE,
    SQLType.DDL: StatementKind.DDL,
}
