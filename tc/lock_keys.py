"""Lock keys from the client into the TC's row locks (the format: :mod:`atx.lock_keys`)."""

from __future__ import annotations

from atx.lock_keys import parse_lock_keys
from atx.tc.store.base import RowLock

__all__ = ["row_locks"]


def row_locks(resource_id: str, lock_keys: str) -> list[RowLock]:
    """Every row named by ``lock_keys`` for ``resource_id``, in order, without duplicates."""
    return [RowLock(resource_id, key.table, key.pk) for key in parse_lock_keys(lock_keys)]
