"""The Redis store's admin listings read what a page needs, not every session or lock.

Counted on the real server with MONITOR: the session and lock hashes a listing
reads (HGETALL under this test's key prefix), with thousands of sessions stored.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from atx.dsn import parse_redis_url
from atx.status import GlobalStatus as G
from atx.tc.store.base import GlobalRecord, GlobalSessionFilter, LockFilter, RowLock
from atx.tc.store.redis import RedisSessionStore
from tests.tc.store.test_contract import new_branch

_SESSIONS = 2000


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisSessionStore]:
    opened = RedisSessionStore(redis_url)
    yield opened
    opened.close()


class Reads:
    """HGETALLs under one key prefix, seen by MONITOR while ``count`` runs a call."""

    def __init__(self, redis_url: str) -> None:
        target = parse_redis_url(redis_url)
        self.prefix = target.key_prefix
        self.client = redis.Redis.from_url(target.url, decode_responses=True)

    def count(self, call: Callable[[], Any]) -> tuple[Any, dict[str, int]]:
        """``call()``'s result and its HGETALLs by key kind (``g``, ``h``, ``l``)."""
        begin, end = (
            f"{self.prefix}begin-{uuid.uuid4().hex}",
            f"{self.prefix}end-{uuid.uuid4().hex}",
        )
        seen: queue.Queue[str] = queue.Queue()
        ready = threading.Event()

        def watch() -> None:
            with self.client.monitor() as monitor:
                ready.set()
                for entry in monitor.listen():
                    command = str(entry.get("command", ""))
                    if self.prefix in command:
                        seen.put(command)
                        if end in command:
                            return

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        assert ready.wait(10)
        # MONITOR may attach after ready is set: poke until it sees us.
        while True:
            self.client.exists(begin)
            try:
                if begin in seen.get(timeout=0.2):
                    break
            except queue.Empty:
                continue
        result = call()
        self.client.exists(end)
        thread.join(20)
        assert not thread.is_alive(), "MONITOR did not see the end marker"
        reads: dict[str, int] = {}
        while not seen.empty():
            command = seen.get()
            if command.startswith("HGETALL "):
                kind = command.split()[1][len(self.prefix) :].split(":", 1)[0]
                reads[kind] = reads.get(kind, 0) + 1
        return result, reads


def _fill(store: RedisSessionStore, statuses: list[G]) -> list[GlobalRecord]:
    made = []
    for n, status in enumerate(statuses):
        tid = store.next_id()
        record = GlobalRecord(
            xid=f"127.0.0.1:8091:{tid}",
            transaction_id=tid,
            status=status,
            application_id="app",
            transaction_name="tx",
            timeout_ms=60_000,
            begin_time_ms=1_700_000_000_000 + n,
            modified_time_ms=1_700_000_000_000 + n,
        )
        store.insert_global(record)
        made.append(record)
    return made


def test_pages_of_sessions_read_only_their_sessions(
    store: RedisSessionStore, redis_url: str
) -> None:
    made = _fill(store, [G.BEGIN] * _SESSIONS + [G.ROLLBACK_FAILED] * 3)
    for record in made[-10:-5]:
        store.finish_global(record.xid, G.COMMITTED)
    reads = Reads(redis_url)

    page, counted = reads.count(lambda: store.list_globals(GlobalSessionFilter(), 10, ""))
    assert page.total == _SESSIONS + 3 - 5 and len(page.items) == 10
    assert counted == {"g": 11}  # the page and one more, to know there is a next page
    following, counted = reads.count(
        lambda: store.list_globals(GlobalSessionFilter(), 10, page.next_token)
    )
    assert not {r.xid for r in following.items} & {r.xid for r in page.items}
    assert counted == {"g": 11}

    everything = GlobalSessionFilter(include_history=True)
    page, counted = reads.count(lambda: store.list_globals(everything, 10, ""))
    assert page.total == _SESSIONS + 3 and sum(counted.values()) == 11
    assert counted.get("h") == 5  # the newest finished sessions are among the newest ten

    stuck = GlobalSessionFilter(statuses=frozenset({G.ROLLBACK_FAILED}))
    page, counted = reads.count(lambda: store.list_globals(stuck, 10, ""))
    assert [r.xid for r in page.items] == [r.xid for r in reversed(made[_SESSIONS : _SESSIONS + 3])]
    assert counted == {"g": 3}


def test_pages_of_locks_read_only_their_locks(store: RedisSessionStore, redis_url: str) -> None:
    (holder,) = _fill(store, [G.BEGIN])
    rows = [RowLock("db1", "t", str(n)) for n in range(_SESSIONS)]
    rows += [RowLock("db2", "t", str(n)) for n in range(5)]
    store.register_branch(new_branch(holder, store.next_id()), rows)
    reads = Reads(redis_url)

    page, counted = reads.count(lambda: store.list_locks(LockFilter(), 20, ""))
    assert page.total == _SESSIONS + 5 and len(page.items) == 20
    assert counted == {"l": 21}
    page, counted = reads.count(lambda: store.list_locks(LockFilter(resource_id="db2"), 20, ""))
    assert [lock.pk for lock in page.items] == ["0", "1", "2", "3", "4"] and page.total == 5
    assert counted == {"l": 5}
