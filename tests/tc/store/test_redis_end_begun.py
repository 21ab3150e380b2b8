"""The Redis store's one-round-trip Commit/Rollback decision (``end_begun``) and its
id blocks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from atx.status import BranchStatus
from atx.status import GlobalStatus as G
from atx.tc.store.base import LockFilter, create_store
from atx.tc.store.redis import RedisSessionStore
from tests.tc.store.test_contract import held_by, new_global, register, rows


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisSessionStore]:
    made = create_store(redis_url)
    assert isinstance(made, RedisSessionStore)
    yield made
    made.close()


def test_an_empty_session_goes_to_history_at_once(store: RedisSessionStore) -> None:
    g = new_global(store)
    assert store.end_begun(g.xid, G.ASYNC_COMMITTING, 5, G.COMMITTED) == (None, True)
    done = store.get_global(g.xid)
    assert done is not None and done.status == G.COMMITTED and done.branches == []
    assert store.find_globals([G.BEGIN, G.ASYNC_COMMITTING]) == []
    again, moved = store.end_begun(g.xid, G.ASYNC_COMMITTING, 5, G.COMMITTED)
    assert not moved and again is not None and again.status == G.COMMITTED


def test_a_session_with_branches_moves_with_them(store: RedisSessionStore) -> None:
    g = new_global(store)
    first = register(store, g, rows("1", "2"))
    second = register(store, g, rows("9"), resource="db2")
    record, moved = store.end_begun(
        g.xid, G.ASYNC_COMMITTING, 12345, G.COMMITTED, release_locks=True
    )
    assert moved and record is not None
    assert record.status == G.ASYNC_COMMITTING and record.next_retry_ms == 12345
    assert [b.branch_id for b in record.branches] == [first.branch_id, second.branch_id]
    assert [b.status for b in record.branches] == [BranchStatus.REGISTERED] * 2
    assert held_by(store, g.xid) == []
    assert store.list_locks(LockFilter(), 10, "").total == 0
    due = store.find_globals([G.ASYNC_COMMITTING], due_before_ms=12345)
    assert [r.xid for r in due] == [g.xid]
    assert store.find_globals([G.BEGIN]) == []


def test_rollback_keeps_the_locks(store: RedisSessionStore) -> None:
    g = new_global(store)
    register(store, g, rows("1"))
    record, moved = store.end_begun(g.xid, G.ROLLBACKING, 7, G.ROLLBACKED)
    assert moved and record is not None and record.status == G.ROLLBACKING
    assert len(record.branches) == 1
    assert held_by(store, g.xid) == ["db1^^^t^^^1"]


def test_another_status_or_an_unknown_session_is_left_alone(store: RedisSessionStore) -> None:
    g = new_global(store)
    register(store, g, rows("1"))
    store.change_status(g.xid, (G.BEGIN,), G.ROLLBACKING)
    record, moved = store.end_begun(g.xid, G.ASYNC_COMMITTING, 5, G.COMMITTED, release_locks=True)
    assert not moved and record is not None and record.status == G.ROLLBACKING
    assert record.branches == []  # not asked for: the caller only needs the status
    assert held_by(store, g.xid) == ["db1^^^t^^^1"]
    assert store.end_begun("127.0.0.1:8091:424242", G.ROLLBACKING, 5, G.ROLLBACKED) == (
        None,
        False,
    )


def test_history_stays_bounded(redis_url: str) -> None:
    store = create_store(redis_url, history_size=2)
    assert isinstance(store, RedisSessionStore)
    xids = [new_global(store).xid for _ in range(4)]
    for xid in xids:
        assert store.end_begun(xid, G.ASYNC_COMMITTING, 5, G.COMMITTED) == (None, True)
    assert [store.get_global(xid) is not None for xid in xids] == [False, False, True, True]
    store.close()


def test_ids_come_in_blocks_shared_by_nodes(redis_url: str) -> None:
    nodes = [create_store(redis_url), create_store(redis_url)]
    first = [nodes[0].next_id() for _ in range(3)]
    other = nodes[1].next_id()
    assert first == [first[0], first[0] + 1, first[0] + 2]
    assert other not in range(first[0], first[0] + 100)  # the first node's block
    for node in nodes:
        node.close()
