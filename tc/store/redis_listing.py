"""Admin listings of the Redis store, paged from its sorted-set indexes.

A page reads in proportion to its size, not to the number of sessions or locks,
whenever an index answers the filter: sessions by begin time (``p:active``,
``p:hbegin``), sessions by status (``p:st:<status>``, only the sessions in the
asked statuses are read), one session by XID, one transaction's locks
(``p:gl:<xid>``), locks by row key or resource (``p:locks``, lexicographic).
Filters with no index (application id, transaction name, lock table or pk)
read the candidates the indexes leave and filter them here. In an incident an
admin console asks for exactly the indexed views (everything newest first,
RollbackFailed sessions, one transaction's locks), often and repeatedly.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import cast

import redis

from atx.tc.store.base import (
    GlobalRecord,
    GlobalSessionFilter,
    LockFilter,
    LockRecord,
    Page,
    decode_page_token,
    encode_page_token,
    invalid_page_token,
)

__all__ = ["RedisListing"]

#: Index entries read per round trip while paging.
_CHUNK = 256
_LEX_TOP = "\U0010ffff"

#: (begin time, xid, from history)
_Entry = tuple[int, str, bool]


def _globals_cursor(token: str) -> tuple[int, str] | None:
    if not token:
        return None
    begin, _, after = decode_page_token(token, "g").partition(":")
    if not begin.isdigit():
        raise invalid_page_token(token)
    return int(begin), after


def _matches(r: GlobalRecord, flt: GlobalSessionFilter) -> bool:
    return (
        (not flt.statuses or r.status in flt.statuses)
        and (not flt.application_id or r.application_id == flt.application_id)
        and (not flt.transaction_name or r.transaction_name == flt.transaction_name)
        and (not flt.xid or r.xid == flt.xid)
        and (not flt.begin_time_from_ms or r.begin_time_ms >= flt.begin_time_from_ms)
        and (not flt.begin_time_to_ms or r.begin_time_ms <= flt.begin_time_to_ms)
    )


def _lock_matches(lock: LockRecord, flt: LockFilter) -> bool:
    return (
        (not flt.xid or lock.xid == flt.xid)
        and (not flt.resource_id or lock.resource_id == flt.resource_id)
        and (not flt.table_name or lock.table_name == flt.table_name)
        and (not flt.pk or lock.pk == flt.pk)
    )


class RedisListing:
    """ListGlobalSessions and ListLocks for one key prefix."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        decode_global: Callable[[dict[str, str]], GlobalRecord],
        decode_lock: Callable[[str, dict[str, str]], LockRecord],
    ) -> None:
        self._redis = client
        self._p = prefix
        self._decode_global = decode_global
        self._decode_lock = decode_lock

    # --- global sessions ------------------------------------------------------
    def list_globals(
        self, flt: GlobalSessionFilter, page_size: int, page_token: str
    ) -> Page[GlobalRecord]:
        """Newest first (begin time, then xid)."""
        cursor = _globals_cursor(page_token)
        size = max(page_size, 1)
        if not (flt.xid or flt.statuses or flt.application_id or flt.transaction_name):
            return self._page_by_begin_time(flt, cursor, size)
        low = flt.begin_time_from_ms or "-inf"
        high = flt.begin_time_to_ms or "+inf"
        entries: list[_Entry] = []
        if flt.xid:
            entries = [(0, flt.xid, False), (0, flt.xid, True)]
        else:
            if flt.statuses:
                # Active sessions: only those in the asked statuses (an index each).
                with self._redis.pipeline(transaction=False) as pipe:
                    for status in flt.statuses:
                        pipe.zrange(f"{self._p}st:{int(status)}", 0, -1)
                    active: set[str] = {xid for xids in pipe.execute() for xid in xids}
            else:
                active = set(
                    cast(list[str], self._redis.zrangebyscore(self._p + "active", low, high))
                )
            entries = [(0, xid, False) for xid in active]
            if flt.include_history:
                history = cast(list[str], self._redis.zrangebyscore(self._p + "hbegin", low, high))
                entries += [(0, xid, True) for xid in history]
        if not flt.include_history:
            entries = [e for e in entries if not e[2]]
        found = [r for r in self._load(entries) if _matches(r, flt)]
        ordered = sorted(found, key=lambda r: (r.begin_time_ms, r.xid), reverse=True)
        after = [r for r in ordered if cursor is None or (r.begin_time_ms, r.xid) < cursor]
        return self._globals_page(after[: size + 1], size, len(ordered))

    def _page_by_begin_time(
        self, flt: GlobalSessionFilter, cursor: tuple[int, str] | None, size: int
    ) -> Page[GlobalRecord]:
        """No filter but a time window: read the begin-time indexes from the cursor on."""
        low: int | str = flt.begin_time_from_ms or "-inf"
        high: int | str = flt.begin_time_to_ms or "+inf"
        keys = [("active", False), *([("hbegin", True)] if flt.include_history else [])]
        with self._redis.pipeline(transaction=False) as pipe:
            for key, _history in keys:
                pipe.zcount(self._p + key, low, high)
            total = sum(cast(list[int], pipe.execute()))
        if cursor is not None:
            high = cursor[0] if high == "+inf" else min(cursor[0], int(high))
        merged = heapq.merge(
            *(self._descending(key, low, high, history) for key, history in keys),
            key=lambda entry: (entry[0], entry[1]),
            reverse=True,
        )
        items: list[GlobalRecord] = []
        batch: list[_Entry] = []
        for entry in merged:
            if cursor is not None and (entry[0], entry[1]) >= cursor:
                continue
            batch.append(entry)
            if len(items) + len(batch) > size:
                items += self._load(batch)  # a session gone meanwhile is skipped
                batch = []
                if len(items) > size:
                    break
        items += self._load(batch)
        return self._globals_page(items, size, total)

    def _descending(
        self, key: str, low: int | str, high: int | str, history: bool
    ) -> Iterator[_Entry]:
        """``key``'s members between the bounds, highest score first (ties: xid descending)."""
        offset = 0
        while True:
            chunk = cast(
                list[tuple[str, float]],
                self._redis.zrevrangebyscore(
                    self._p + key, high, low, start=offset, num=_CHUNK, withscores=True
                ),
            )
            for xid, score in chunk:
                yield int(score), xid, history
            if len(chunk) < _CHUNK:
                return
            offset += _CHUNK

    def _load(self, entries: list[_Entry]) -> list[GlobalRecord]:
        if not entries:
            return []
        with self._redis.pipeline(transaction=False) as pipe:
            for _begin, xid, history in entries:
                pipe.hgetall(self._p + ("h:" if history else "g:") + xid)
            return [self._decode_global(h) for h in pipe.execute() if h]

    @staticmethod
    def _globals_page(items: list[GlobalRecord], size: int, total: int) -> Page[GlobalRecord]:
        more = len(items) > size
        items = items[:size]
        token = encode_page_token("g", f"{items[-1].begin_time_ms}:{items[-1].xid}") if more else ""
        return Page(items=items, next_token=token, total=total)

    # --- locks ----------------------------------------------------------------
    def list_locks(self, flt: LockFilter, page_size: int, page_token: str) -> Page[LockRecord]:
        """Ordered by row key."""
        after = decode_page_token(page_token, "l") if page_token else None
        size = max(page_size, 1)
        if flt.xid:
            keys = sorted(cast(set[str], self._redis.smembers(self._p + "gl:" + flt.xid)))
        elif not (flt.table_name or flt.pk):
            return self._page_by_row_key(flt.resource_id, after, size)
        elif flt.resource_id:
            start = flt.resource_id + "^^^"
            keys = cast(
                list[str],
                self._redis.zrangebylex(self._p + "locks", "[" + start, "(" + start + _LEX_TOP),
            )
        else:
            keys = cast(list[str], self._redis.zrange(self._p + "locks", 0, -1))
        matching = [lock for lock in self._load_locks(keys) if _lock_matches(lock, flt)]
        rest = [lock for lock in matching if after is None or lock.row_key > after]
        return self._locks_page(rest[: size + 1], size, len(matching))

    def _page_by_row_key(self, resource_id: str, after: str | None, size: int) -> Page[LockRecord]:
        """Every lock, or one resource's: read ``p:locks`` from the cursor on."""
        key = self._p + "locks"
        if resource_id:
            low, high = "[" + resource_id + "^^^", "(" + resource_id + "^^^" + _LEX_TOP
        else:
            low, high = "-", "+"
        total = int(self._redis.zlexcount(key, low, high))
        if after is not None and (low == "-" or after >= low[1:]):
            low = "(" + after
        items: list[LockRecord] = []
        while len(items) <= size:
            keys = cast(
                list[str],
                self._redis.zrangebylex(key, low, high, start=0, num=size + 1 - len(items)),
            )
            if not keys:
                break
            items += self._load_locks(keys)  # a lock released meanwhile is skipped
            low = "(" + keys[-1]
        return self._locks_page(items, size, total)

    def _load_locks(self, keys: list[str]) -> list[LockRecord]:
        with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(self._p + "l:" + key)
            loaded = pipe.execute()
        return [self._decode_lock(k, h) for k, h in zip(keys, loaded, strict=True) if h]

    @staticmethod
    def _locks_page(items: list[LockRecord], size: int, total: int) -> Page[LockRecord]:
        more = len(items) > size
        items = items[:size]
        token = encode_page_token("l", items[-1].row_key) if more else ""
        return Page(items=items, next_token=token, total=total)
