"""What the executors and the undo layer know about one table."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TableMeta"]


@dataclass(frozen=True)
class TableMeta:
    """What the executors need to know about one table."""

    name: str
    columns: tuple[str, ...]  # in table order, as the database spells them
    pk_columns: tuple[str, ...]  # in key order
    column_types: dict[str, str]
    auto_increment: str | None = None  # the column the database fills in
    unique_keys: tuple[tuple[str, ...], ...] = ()  # the primary key first, then unique indexes
    generated: frozenset[str] = frozenset()  # computed columns: read, never written
    #: The table's one name for global lock keys: as the database stores it, without the
    #: schema when that is the connection's own. ``name`` is as the statement wrote it
    #: (``shop.t``, ``T``), which images and undo SQL keep, since the statement's own
    #: clauses may refer to it; two spellings of one table must still share lock keys.
    lock_name: str = ""

    @property
    def key_name(self) -> str:
        """The table part of this table's lock keys."""
        return self.lock_name or self.name

    def column(self, name: str) -> str | None:
        """The column's real spelling (MySQL and SQLite column names ignore case)."""
        lowered = name.lower()
        for column in self.columns:
            if column.lower() == lowered:
                return column
        return None
