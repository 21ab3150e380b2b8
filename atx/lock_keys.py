"""Global lock keys on the wire: Seata's ``table:pk1,pk2;table2:pk``.

The RM formats the rows a branch touched; the TC parses them into row locks.
One codec, so that both sides agree on the format and on what is malformed.
Composite primary keys are joined with ``_`` by the RM (:func:`pk_string`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from atx.errors import InvalidLockKeysError

__all__ = [
    "MAX_LOCK_KEYS_LENGTH",
    "ROW_KEY_SEPARATOR",
    "LockKey",
    "format_lock_keys",
    "parse_lock_keys",
    "pk_string",
]

MAX_LOCK_KEYS_LENGTH = 4 * 1024 * 1024
#: Joins resource, table and key into one row key in the TC's lock table.
ROW_KEY_SEPARATOR = "^^^"


@dataclass(frozen=True, order=True)
class LockKey:
    """One row of one table; ``pk`` joins composite primary keys with ``_``."""

    table: str
    pk: str


def _pk_part(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def pk_string(values: tuple[Any, ...]) -> str:
    """A row's primary key as a lock-key string: composite keys joined with ``_``."""
    return "_".join(_pk_part(v) for v in values)


def format_lock_keys(keys: Iterable[LockKey]) -> str:
    """The wire form (deduplicated, tables and keys in first-seen order)."""
    by_table: dict[str, dict[str, None]] = {}
    for key in keys:
        by_table.setdefault(key.table, {})[key.pk] = None
    return ";".join(f"{table}:{','.join(pks)}" for table, pks in by_table.items() if pks)


def parse_lock_keys(lock_keys: str) -> list[LockKey]:
    """Every row named by ``lock_keys``, in order, without duplicates.

    Empty segments (a trailing ``;``) are allowed; a segment without a table
    or without keys is not, nor a name holding the row-key separator.
    """
    if len(lock_keys) > MAX_LOCK_KEYS_LENGTH:
        raise InvalidLockKeysError(lock_keys[:64] + "...", "too long")
    keys: dict[LockKey, None] = {}
    for segment in lock_keys.split(";"):
        segment = segment.strip()
        if not segment:
            continue
        table, sep, pks = segment.partition(":")
        table = table.strip()
        if not sep or not table:
            raise InvalidLockKeysError(lock_keys, f"segment {segment!r} is not table:pk[,pk]")
        if ROW_KEY_SEPARATOR in table:
            raise InvalidLockKeysError(lock_keys, f"table {table!r} contains {ROW_KEY_SEPARATOR!r}")
        for pk in pks.split(","):
            pk = pk.strip()
            if not pk or ROW_KEY_SEPARATOR in pk:
                raise InvalidLockKeysError(lock_keys, f"segment {segment!r} has an empty key")
            keys[LockKey(table, pk)] = None
    return list(keys)
