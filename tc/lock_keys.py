"""Lock keys from the client (``table:pk1,pk2;table2:pk``) into row locks."""

from __future__ import annotations

from tc.errors import InvalidLockKeysError
from tc.store.base import RowLock

__all__ = ["MAX_LOCK_KEYS_LENGTH", "parse_lock_keys"]

MAX_LOCK_KEYS_LENGTH = 4 * 1024 * 1024


def parse_lock_keys(resource_id: str, lock_keys: str) -> list[RowLock]:
    """Every row named by ``lock_keys`` for ``resource_id``, in order, without
    duplicates. Empty segments (a trailing ``;``) are allowed; a segment
    without a table or without keys is not."""
    if len(lock_keys) > MAX_LOCK_KEYS_LENGTH:
        raise InvalidLockKeysError(lock_keys[:64] + "...", "too long")
    rows: dict[str, RowLock] = {}
    for segment in lock_keys.split(";"):
        segment = segment.strip()
        if not segment:
            continue
        table, sep, pks = segment.partition(":")
        table = table.strip()
        if not sep or not table:
            raise InvalidLockKeysError(lock_keys, f"segment {segment!r} is not table:pk[,pk]")
        if "^^^" in table:
            raise InvalidLockKeysError(lock_keys, f"table {table!r} contains '^^^'")
        for pk in pks.split(","):
            pk = pk.strip()
            if not pk or "^^^" in pk:
                raise InvalidLockKeysError(lock_keys, f"segment {segment!r} has an empty key")
            row = RowLock(resource_id, table, pk)
            rows.setdefault(row.row_key, row)
    return list(rows.values())
