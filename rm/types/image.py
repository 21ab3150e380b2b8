"""Before and after images of the rows one statement touches, and what a statement did."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from atx.lock_keys import LockKey
from atx.rm.types.sql import SQLType

__all__ = ["ExecutionResult", "Field", "RowImage", "SQLUndoLog", "TableImage"]


@dataclass(frozen=True)
class Field:
    """One column value of one row."""

    name: str
    value: Any
    is_pk: bool = False


@dataclass(frozen=True)
class RowImage:
    """One row: its fields in table column order."""

    fields: tuple[Field, ...]

    def as_dict(self) -> dict[str, Any]:
        return {f.name: f.value for f in self.fields}

    def pk_values(self) -> tuple[Any, ...]:
        return tuple(f.value for f in self.fields if f.is_pk)


@dataclass(frozen=True)
class TableImage:
    """Rows of one table, stored column-aligned (the columns once, the values per row)."""

    table: str
    columns: tuple[str, ...]
    pk_columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.rows)

    def __bool__(self) -> bool:
        return bool(self.rows)

    @property
    def pk_indexes(self) -> tuple[int, ...]:
        return tuple(self.columns.index(c) for c in self.pk_columns)

    def pk_of(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(row[i] for i in self.pk_indexes)

    def pks(self) -> list[tuple[Any, ...]]:
        """Primary-key tuples of every row, in row order."""
        idx = self.pk_indexes
        return [tuple(row[i] for i in idx) for row in self.rows]

    def by_pk(self) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        return {self.pk_of(row): row for row in self.rows}

    def row_images(self) -> Iterator[RowImage]:
        pk = set(self.pk_columns)
        for row in self.rows:
            yield RowImage(
                tuple(Field(c, v, c in pk) for c, v in zip(self.columns, row, strict=True))
            )

    def as_dicts(self) -> list[Mapping[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    @classmethod
    def empty(cls, table: str, columns: tuple[str, ...], pk_columns: tuple[str, ...]) -> TableImage:
        return cls(table, columns, pk_columns, ())


@dataclass(frozen=True)
class SQLUndoLog:
    """The undo record of one statement: its type, table, and the two images."""

    sql_type: SQLType
    table: str
    before: TableImage
    after: TableImage


@dataclass(frozen=True)
class ExecutionResult:
    """What one execute/executemany did: its row count, and for a branch its undo
    items and the rows it locks."""

    rowcount: int
    lastrowid: int | None
    undo_items: list[SQLUndoLog] = field(default_factory=list)
    lock_keys: list[LockKey] = field(default_factory=list)
