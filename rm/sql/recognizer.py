"""The project's own view of a parsed statement (no sqlglot types here)."""

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
    #: Set when the statement is refused: the construct's name.
    unsupported: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
