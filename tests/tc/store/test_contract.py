"""The SessionStore contract, run against every store: SQLite, Redis, MariaDB, PostgreSQL.

Each test gets a fresh store (its own file, key prefix or database). Where a
test needs a second TC node, it opens a second store on the same URL.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from atx.errors import (
    GlobalTransactionNotFoundError,
    IllegalStatusError,
    InvalidArgumentError,
    LockConflictError,
)
from atx.status import BranchStatus, BranchType, GlobalStatus
from atx.tc.store.base import (
    AuditRecord,
    BranchRecord,
    GlobalRecord,
    GlobalSessionFilter,
    LockFilter,
    RowLock,
    SessionStore,
    create_store,
)
from atx.testing import wait_until

StoreMaker = Callable[..., SessionStore]
G = GlobalStatus


@pytest.fixture(params=["sqlite", "redis", "mariadb", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def make_store(store_url: str) -> Iterator[StoreMaker]:
    """Opens stores on this test's URL (a second one plays a second TC node)."""
    opened: list[SessionStore] = []

    def make(history_size: int = 1000) -> SessionStore:
        store = create_store(store_url, history_size)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreMaker) -> SessionStore:
    return make_store()


_clock = itertools.count(1_700_000_000_000, 1000)


def new_global(
    store: SessionStore,
    *,
    status: GlobalStatus = G.BEGIN,
    app: str = "app",
    name: str = "tx",
    begin_ms: int | None = None,
    next_retry_ms: int = 0,
) -> GlobalRecord:
    tid = store.next_id()
    begin = next(_clock) if begin_ms is None else begin_ms
    record = GlobalRecord(
        xid=f"127.0.0.1:8091:{tid}",
        transaction_id=tid,
        status=status,
        application_id=app,
        transaction_name=name,
        timeout_ms=60_000,
        begin_time_ms=begin,
        modified_time_ms=begin,
        next_retry_ms=next_retry_ms,
    )
    store.insert_global(record)
    return record


def new_branch(g: GlobalRecord, branch_id: int, resource: str = "db1") -> BranchRecord:
    return BranchRecord(
        branch_id=branch_id,
        xid=g.xid,
        transaction_id=g.transaction_id,
        resource_id=resource,
        branch_type=BranchType.AT,
        status=BranchStatus.REGISTERED,
        lock_keys="t:1",
        application_data='{"k": "v"}',
        client_id="rm-1",
        begin_time_ms=g.begin_time_ms,
        modified_time_ms=g.begin_time_ms,
    )


def rows(*pks: str, resource: str = "db1", table: str = "t") -> list[RowLock]:
    return [RowLock(resource, table, pk) for pk in pks]


def register(
    store: SessionStore, g: GlobalRecord, locks: list[RowLock], resource: str = "db1"
) -> BranchRecord:
    branch = new_branch(g, store.next_id(), resource)
    store.register_branch(branch, locks)
    return branch


def held_by(store: SessionStore, xid: str) -> list[str]:
    return [lock.row_key for lock in store.list_locks(LockFilter(xid=xid), 1000, "").items]


# --- identity -----------------------------------------------------------------


def test_next_id_unique_across_threads_and_nodes(make_store: StoreMaker) -> None:
    nodes = [make_store(), make_store()]
    ids: list[int] = []
    guard = threading.Lock()

    def draw(store: SessionStore) -> None:
        mine = [store.next_id() for _ in range(150)]
        with guard:
            ids.extend(mine)

    threads = [threading.Thread(target=draw, args=(nodes[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 600
    assert len(set(ids)) == 600
    assert min(ids) > 0


def test_reserved_id_blocks_never_meet_other_ids(make_store: StoreMaker) -> None:
    nodes = [make_store(), make_store()]
    taken: list[int] = []
    for store in nodes:
        taken.extend(store.next_id() for _ in range(5))
        first, count = store.reserve_ids(250)
        assert count >= 1
        taken.extend(range(first, first + count))
        taken.extend(store.next_id() for _ in range(5))
    assert len(taken) == len(set(taken))
    assert min(taken) > 0


# --- global sessions ----------------------------------------------------------


def test_insert_and_get(store: SessionStore) -> None:
    g = new_global(store, app="shop", name="order", next_retry_ms=5)
    got = store.get_global(g.xid)
    assert got == g
    assert got is not None and got.branches == []
    assert store.get_global("127.0.0.1:8091:999999999") is None


def test_change_status_is_compare_and_set(store: SessionStore) -> None:
    g = new_global(store)
    assert store.change_status(g.xid, [G.ROLLBACKING], G.COMMITTING) is None
    assert store.change_status("nope:1:1", [G.BEGIN], G.COMMITTING) is None
    current = store.get_global(g.xid)
    assert current is not None and current.status == G.BEGIN

    done = store.change_status(
        g.xid, [G.BEGIN, G.ROLLBACKING], G.COMMIT_RETRYING, next_retry_ms=1234, retry_count=2
    )
    assert done is not None
    assert (done.status, done.next_retry_ms, done.retry_count) == (G.COMMIT_RETRYING, 1234, 2)
    assert done.xid == g.xid and done.branches == []
    again = store.get_global(g.xid, with_branches=False)
    assert again is not None and again.status == G.COMMIT_RETRYING
    assert store.change_status(g.xid, [G.BEGIN], G.COMMITTING) is None


def test_change_status_releases_locks_in_the_same_step(store: SessionStore) -> None:
    a, b = new_global(store), new_global(store)
    register(store, a, rows("1", "2"))
    done = store.change_status(a.xid, [G.BEGIN], G.ASYNC_COMMITTING, release_locks=True)
    assert done is not None and done.status == G.ASYNC_COMMITTING
    assert held_by(store, a.xid) == []
    assert store.query_locks(rows("1", "2")) is None
    register(store, b, rows("1", "2"))  # free for others at once
    got = store.get_global(a.xid)
    assert got is not None and len(got.branches) == 1  # branches stay for phase two


def test_update_global(store: SessionStore) -> None:
    g = new_global(store)
    updated = store.update_global(g.xid, retry_stopped=True, next_retry_ms=99, retry_count=3)
    assert updated is not None
    assert (updated.retry_stopped, updated.next_retry_ms, updated.retry_count) == (True, 99, 3)
    assert updated.status == G.BEGIN
    assert store.update_global("nope:1:1", retry_count=1) is None


def test_find_globals_by_status_and_due_time(store: SessionStore) -> None:
    due = new_global(store, status=G.COMMIT_RETRYING, next_retry_ms=100)
    later = new_global(store, status=G.COMMIT_RETRYING, next_retry_ms=10_000)
    rolling = new_global(store, status=G.ROLLBACK_RETRYING, next_retry_ms=50)
    new_global(store, status=G.BEGIN, next_retry_ms=10)
    # Branch ids deliberately decreasing: order must follow registration.
    store.update_global(rolling.xid, retry_stopped=True)
    store.change_status(rolling.xid, [G.ROLLBACK_RETRYING], G.BEGIN)
    first, second = new_branch(rolling, 900_000_002), new_branch(rolling, 900_000_001)
    store.register_branch(first, rows("a"))
    store.register_branch(second, rows("b"))
    store.change_status(rolling.xid, [G.BEGIN], G.ROLLBACK_RETRYING)

    wanted = [G.COMMIT_RETRYING, G.ROLLBACK_RETRYING]
    found = store.find_globals(wanted, due_before_ms=1000)
    assert [r.xid for r in found] == [due.xid, rolling.xid]  # oldest first
    assert [b.branch_id for b in found[1].branches] == [900_000_002, 900_000_001]
    assert found[1].retry_stopped  # included; the caller decides
    every = store.find_globals(wanted)
    assert [r.xid for r in every] == [due.xid, later.xid, rolling.xid]
    assert len(store.find_globals(wanted, limit=2)) == 2
    assert store.find_globals([G.ASYNC_COMMITTING]) == []


def test_finish_global_keeps_a_bounded_history(make_store: StoreMaker) -> None:
    store = make_store(history_size=3)
    sessions = [new_global(store) for _ in range(5)]
    for i, g in enumerate(sessions):
        register(store, g, rows(str(i)))
        store.finish_global(g.xid, G.COMMITTED)
    assert store.list_locks(LockFilter(), 100, "").total == 0
    assert store.find_globals([G.BEGIN]) == []
    assert store.get_global(sessions[0].xid) is None
    assert store.get_global(sessions[1].xid) is None
    kept = store.get_global(sessions[4].xid)
    assert kept is not None and kept.status == G.COMMITTED
    assert [b.resource_id for b in kept.branches] == ["db1"]
    active = store.list_globals(GlobalSessionFilter(), 100, "")
    assert active.total == 0
    history = store.list_globals(GlobalSessionFilter(include_history=True), 100, "")
    assert [r.xid for r in history.items] == [g.xid for g in reversed(sessions[2:])]
    with pytest.raises(IllegalStatusError) as info:  # finished: late registration
        register(store, sessions[4], rows("x"))
    assert info.value.status == "COMMITTED"
    store.finish_global("nope:1:1", G.COMMITTED)  # unknown: nothing happens


def test_finish_committed_records_branches_committed_in_history(store: SessionStore) -> None:
    committed, rolled_back = new_global(store), new_global(store)
    first, second = register(store, committed, rows("1")), register(store, committed, rows("2"))
    failed = register(store, committed, rows("3"))
    store.update_branch_status(committed.xid, failed.branch_id, BranchStatus.PHASE_ONE_FAILED)
    undone = register(store, rolled_back, rows("4"))
    kept = register(store, rolled_back, rows("5"))
    store.update_branch_status(rolled_back.xid, undone.branch_id, BranchStatus.PHASE_TWO_ROLLBACKED)

    store.finish_global(committed.xid, G.COMMITTED)
    store.finish_global(rolled_back.xid, G.ROLLBACKED)

    done = store.get_global(committed.xid)
    assert done is not None and done.status == G.COMMITTED
    assert [(b.branch_id, b.status) for b in done.branches] == [
        (first.branch_id, BranchStatus.PHASE_TWO_COMMITTED),
        (second.branch_id, BranchStatus.PHASE_TWO_COMMITTED),
        (failed.branch_id, BranchStatus.PHASE_ONE_FAILED),  # phase two skips it
    ]
    back = store.get_global(rolled_back.xid)
    assert back is not None and back.status == G.ROLLBACKED
    # Rollbacks record each branch as it goes; finishing changes none.
    assert [(b.branch_id, b.status) for b in back.branches] == [
        (undone.branch_id, BranchStatus.PHASE_TWO_ROLLBACKED),
        (kept.branch_id, BranchStatus.REGISTERED),
    ]


def test_delete_global(store: SessionStore) -> None:
    active, finished = new_global(store), new_global(store)
    register(store, active, rows("1"))
    store.finish_global(finished.xid, G.ROLLBACKED)
    assert store.delete_global(active.xid)
    assert store.delete_global(finished.xid)
    assert not store.delete_global(active.xid)
    assert store.get_global(active.xid) is None and store.get_global(finished.xid) is None
    assert store.query_locks(rows("1")) is None
    everything = store.list_globals(GlobalSessionFilter(include_history=True), 100, "")
    assert everything.total == 0


def test_list_globals_filters_and_stable_pagination(store: SessionStore) -> None:
    base = next(_clock) + 10_000_000
    made: list[GlobalRecord] = []
    for i in range(12):
        made.append(
            new_global(
                store,
                status=G.BEGIN if i % 3 else G.ROLLBACK_RETRYING,
                app="shop" if i % 2 else "bank",
                name=f"tx{i % 4}",
                begin_ms=base + (i // 2) * 1000,  # pairs share a begin time
            )
        )
    old = made[0]
    store.finish_global(made[1].xid, G.COMMITTED)
    active = [g for g in made if g.xid != made[1].xid]

    def key(g: GlobalRecord) -> tuple[int, str]:
        return (g.begin_time_ms, g.xid)

    expected = sorted(active, key=key, reverse=True)
    seen: list[str] = []
    token = ""
    while True:
        page = store.list_globals(GlobalSessionFilter(), 4, token)
        assert page.total == 11
        seen += [r.xid for r in page.items]
        token = page.next_token
        if not token:
            break
    assert seen == [g.xid for g in expected]
    assert all(r.branches == [] for r in page.items)

    def xids(flt: GlobalSessionFilter) -> set[str]:
        return {r.xid for r in store.list_globals(flt, 100, "").items}

    assert xids(GlobalSessionFilter(statuses=frozenset({G.ROLLBACK_RETRYING}))) == {
        g.xid for g in active if g.status == G.ROLLBACK_RETRYING
    }
    assert xids(GlobalSessionFilter(application_id="shop")) == {
        g.xid for g in active if g.application_id == "shop"
    }
    assert xids(GlobalSessionFilter(transaction_name="tx2")) == {
        g.xid for g in active if g.transaction_name == "tx2"
    }
    assert xids(GlobalSessionFilter(xid=old.xid)) == {old.xid}
    window = GlobalSessionFilter(begin_time_from_ms=base + 1000, begin_time_to_ms=base + 2000)
    assert xids(window) == {g.xid for g in active if base + 1000 <= g.begin_time_ms <= base + 2000}
    assert xids(GlobalSessionFilter(application_id="bank", include_history=True)) == {
        g.xid for g in made if g.application_id == "bank"
    }
    assert xids(GlobalSessionFilter(application_id="shop", include_history=True)) == {
        g.xid for g in made if g.application_id == "shop"
    }


def _all_pages(store: SessionStore, flt: GlobalSessionFilter, size: int) -> tuple[list[str], int]:
    """Every page of a listing, in order, and the total each page reported (all equal)."""
    seen: list[str] = []
    totals: set[int] = set()
    token = ""
    while True:
        page = store.list_globals(flt, size, token)
        assert len(page.items) <= size
        totals.add(page.total)
        seen += [r.xid for r in page.items]
        token = page.next_token
        if not token:
            break
    assert len(totals) == 1, totals
    return seen, totals.pop()


def test_list_globals_pages_across_active_history_and_statuses(store: SessionStore) -> None:
    """Paging newest first through active and finished sessions mixed in begin time
    (ties included), by status, and within a time window: every store, same answers."""
    base = next(_clock) + 20_000_000
    made: list[GlobalRecord] = []
    for i in range(23):
        status = (G.BEGIN, G.ROLLBACK_FAILED, G.COMMIT_RETRYING)[i % 3]
        made.append(new_global(store, status=status, begin_ms=base + (i // 3) * 1000))
    finished = made[2::4]
    for g in finished:
        store.finish_global(g.xid, G.COMMITTED)
    active = [g for g in made if g not in finished]

    def newest_first(records: list[GlobalRecord]) -> list[str]:
        return [
            g.xid for g in sorted(records, key=lambda g: (g.begin_time_ms, g.xid), reverse=True)
        ]

    for size in (1, 4, 7, 100):
        assert _all_pages(store, GlobalSessionFilter(), size) == (newest_first(active), len(active))
        everything = GlobalSessionFilter(include_history=True)
        assert _all_pages(store, everything, size) == (newest_first(made), len(made))
        failed = GlobalSessionFilter(statuses=frozenset({G.ROLLBACK_FAILED, G.COMMIT_RETRYING}))
        stuck = [g for g in active if g.status != G.BEGIN]
        assert _all_pages(store, failed, size) == (newest_first(stuck), len(stuck))
        window = GlobalSessionFilter(
            begin_time_from_ms=base + 2000, begin_time_to_ms=base + 5000, include_history=True
        )
        inside = [g for g in made if base + 2000 <= g.begin_time_ms <= base + 5000]
        assert _all_pages(store, window, size) == (newest_first(inside), len(inside))
    done = GlobalSessionFilter(statuses=frozenset({G.COMMITTED}), include_history=True)
    assert _all_pages(store, done, 3) == (newest_first(finished), len(finished))
    assert _all_pages(store, GlobalSessionFilter(xid=finished[0].xid), 3) == ([], 0)
    one = GlobalSessionFilter(xid=finished[0].xid, include_history=True)
    assert _all_pages(store, one, 3) == ([finished[0].xid], 1)


def test_pages_keep_their_place_while_rows_arrive(store: SessionStore) -> None:
    """Newer sessions, locks and audit entries arriving between two pages neither
    repeat nor skip anything on the next page (keyset paging, not offsets)."""
    first = [new_global(store) for _ in range(6)]
    page = store.list_globals(GlobalSessionFilter(), 3, "")
    for _ in range(4):
        new_global(store)  # newer: they sort before the first page
    rest = store.list_globals(GlobalSessionFilter(), 3, page.next_token)
    older = [g.xid for g in reversed(first)]
    assert [r.xid for r in page.items] == older[:3]
    assert [r.xid for r in rest.items] == older[3:6]
    assert rest.total == 10

    register(store, first[0], rows("b", "d", "f", "h"))
    locks = store.list_locks(LockFilter(), 2, "")
    register(store, first[1], rows("a", "c"))  # sorts before the first page's keys
    more = store.list_locks(LockFilter(), 2, locks.next_token)
    assert [lock.pk for lock in locks.items] == ["b", "d"]
    assert [lock.pk for lock in more.items] == ["f", "h"] and more.total == 6

    for n in range(4):
        store.append_audit(AuditRecord(0, 0, "op", "retry", first[0].xid, "ok", str(n)))
    entries = store.list_audit("", 2, "")
    store.append_audit(AuditRecord(0, 0, "op", "retry", first[0].xid, "ok", "later"))
    after = store.list_audit("", 2, entries.next_token)
    assert [e.detail for e in entries.items] == ["3", "2"]
    assert [e.detail for e in after.items] == ["1", "0"]


# --- branches and locks ---------------------------------------------------------


def test_register_branch_needs_begin(store: SessionStore) -> None:
    g = new_global(store)
    store.change_status(g.xid, [G.BEGIN], G.ASYNC_COMMITTING)
    with pytest.raises(IllegalStatusError) as info:
        register(store, g, rows("1"))
    assert info.value.status == "ASYNC_COMMITTING"
    assert "ASYNC_COMMITTING" in str(info.value)
    assert store.query_locks(rows("1")) is None
    with pytest.raises(GlobalTransactionNotFoundError) as missing:
        store.register_branch(dataclasses.replace(new_branch(g, 5), xid="nope:1:1"), rows("2"))
    assert missing.value.xid == "nope:1:1"


def test_register_branch_locks_all_or_nothing(store: SessionStore) -> None:
    a, b = new_global(store), new_global(store)
    first = register(store, a, rows("1", "2"))
    with pytest.raises(LockConflictError) as info:
        register(store, b, rows("5", "2", "6"))
    assert info.value.holder_xid == a.xid
    assert info.value.details["row_key"] == "db1^^^t^^^2"
    assert not info.value.fail_fast
    assert held_by(store, b.xid) == []
    assert store.query_locks(rows("5", "6")) is None
    got_b = store.get_global(b.xid)
    assert got_b is not None and got_b.branches == []

    # The same transaction re-locks its own rows, alone or with new ones.
    second = register(store, a, rows("2", "3"))
    assert sorted(held_by(store, a.xid)) == ["db1^^^t^^^1", "db1^^^t^^^2", "db1^^^t^^^3"]
    got_a = store.get_global(a.xid)
    assert got_a is not None
    assert [x.branch_id for x in got_a.branches] == [first.branch_id, second.branch_id]
    assert got_a.branches[0] == first
    # Rows are keyed by resource: the same table and pk elsewhere is free.
    register(store, b, rows("1", resource="db2"), resource="db2")
    # A branch without rows.
    register(store, b, [])


def test_lock_conflict_fails_fast_when_holder_rolls_back(store: SessionStore) -> None:
    a, b = new_global(store), new_global(store)
    register(store, a, rows("1"))
    store.change_status(a.xid, [G.BEGIN], G.ROLLBACKING)
    with pytest.raises(LockConflictError) as info:
        register(store, b, rows("1"))
    assert info.value.fail_fast and info.value.holder_xid == a.xid
    store.change_status(a.xid, [G.ROLLBACKING], G.ROLLBACK_FAILED)
    with pytest.raises(LockConflictError) as failed:
        register(store, b, rows("1"))
    assert failed.value.fail_fast  # locks stay held after a failed rollback


def test_update_branch_status_and_release_by_branch(store: SessionStore) -> None:
    g = new_global(store)
    one = register(store, g, rows("1", "2"))
    two = register(store, g, rows("3"))
    assert store.update_branch_status(g.xid, one.branch_id, BranchStatus.PHASE_TWO_COMMITTED)
    assert not store.update_branch_status(g.xid, 123_456_789, BranchStatus.PHASE_TWO_COMMITTED)
    got = store.get_global(g.xid)
    assert got is not None
    assert [b.status for b in got.branches] == [
        BranchStatus.PHASE_TWO_COMMITTED,
        BranchStatus.REGISTERED,
    ]
    assert store.release_locks(g.xid, two.branch_id) == 1
    assert sorted(held_by(store, g.xid)) == ["db1^^^t^^^1", "db1^^^t^^^2"]
    assert store.release_locks(g.xid) == 2
    assert store.release_locks(g.xid) == 0


def test_query_locks(store: SessionStore) -> None:
    a, b = new_global(store), new_global(store)
    register(store, a, rows("1"))
    assert store.query_locks(rows("9", "1")) == a.xid
    assert store.query_locks(rows("9", "1"), xid=b.xid) == a.xid
    assert store.query_locks(rows("1"), xid=a.xid) is None
    assert store.query_locks(rows("9")) is None
    assert store.query_locks([]) is None


def test_list_locks_filters_and_pagination(store: SessionStore) -> None:
    a, b = new_global(store), new_global(store)
    register(store, a, rows("1", "2", "3", "4"))
    register(store, a, rows("1", "2", table="u"))
    register(store, b, rows("7", "8", resource="db2"), resource="db2")
    everything = store.list_locks(LockFilter(), 1000, "")
    assert everything.total == 8
    keys = [lock.row_key for lock in everything.items]
    assert keys == sorted(keys)
    paged: list[str] = []
    token = ""
    while True:
        page = store.list_locks(LockFilter(), 3, token)
        assert page.total == 8 and len(page.items) <= 3
        paged += [lock.row_key for lock in page.items]
        token = page.next_token
        if not token:
            break
    assert paged == keys

    def listed(flt: LockFilter) -> list[str]:
        return [lock.row_key for lock in store.list_locks(flt, 100, "").items]

    assert listed(LockFilter(xid=b.xid)) == ["db2^^^t^^^7", "db2^^^t^^^8"]
    assert len(listed(LockFilter(resource_id="db1"))) == 6
    assert listed(LockFilter(table_name="u")) == ["db1^^^u^^^1", "db1^^^u^^^2"]
    assert listed(LockFilter(pk="1")) == ["db1^^^t^^^1", "db1^^^u^^^1"]
    assert listed(LockFilter(xid=a.xid, table_name="t", pk="3")) == ["db1^^^t^^^3"]
    for flt, size in ((LockFilter(resource_id="db1"), 4), (LockFilter(resource_id="db2"), 1)):
        expected = [k for k in keys if k.startswith(flt.resource_id + "^^^")]
        paged, token = [], ""
        while True:
            page = store.list_locks(flt, size, token)
            assert page.total == len(expected)
            paged += [lock.row_key for lock in page.items]
            token = page.next_token
            if not token:
                break
        assert paged == expected
    assert store.list_locks(LockFilter(resource_id="db"), 10, "").total == 0
    lock = store.list_locks(LockFilter(xid=b.xid, pk="7"), 10, "").items[0]
    assert (lock.xid, lock.transaction_id, lock.resource_id) == (b.xid, b.transaction_id, "db2")
    assert (lock.table_name, lock.pk) == ("t", "7")
    assert lock.branch_id > 0 and lock.created_time_ms > 0


def _race(nodes: list[SessionStore], round_no: int) -> None:
    """Two nodes register overlapping rows (in opposite orders) at once."""
    sessions = [new_global(nodes[i]) for i in range(2)]
    pks = [f"{round_no}-{i}" for i in range(6)]
    wanted = [rows(*pks), rows(*reversed(pks))]
    barrier = threading.Barrier(2)
    outcome: list[object] = [None, None]

    def attempt(i: int) -> None:
        branch = new_branch(sessions[i], nodes[i].next_id())
        barrier.wait()
        try:
            nodes[i].register_branch(branch, wanted[i])
            outcome[i] = "won"
        except LockConflictError as error:
            outcome[i] = error

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcome.count("won") == 1, outcome
    winner = outcome.index("won")
    loser = 1 - winner
    error = outcome[loser]
    assert isinstance(error, LockConflictError), outcome
    assert error.holder_xid == sessions[winner].xid
    assert len(held_by(nodes[0], sessions[winner].xid)) == 6
    assert held_by(nodes[0], sessions[loser].xid) == []


def test_two_nodes_register_conflicting_branches_one_wins(make_store: StoreMaker) -> None:
    nodes = [make_store(), make_store()]
    for round_no in range(10):
        _race(nodes, round_no)


# --- cluster --------------------------------------------------------------------


def test_job_lock_exclusive_renewable_expiring(make_store: StoreMaker) -> None:
    a, b = make_store(), make_store()
    assert a.try_job_lock("retry", "node-a", 60_000)
    assert not b.try_job_lock("retry", "node-b", 60_000)
    assert a.try_job_lock("retry", "node-a", 300)  # renewed, with a short expiry now
    assert b.try_job_lock("other", "node-b", 60_000)  # locks are per name
    b.release_job_lock("retry", "node-b")  # not the owner: no effect
    assert not b.try_job_lock("retry", "node-b", 60_000)
    # It expires without renewal.
    wait_until(lambda: b.try_job_lock("retry", "node-b", 60_000), 10, "the job lock to expire")
    assert not a.try_job_lock("retry", "node-a", 60_000)
    a.release_job_lock("retry", "node-a")
    assert not a.try_job_lock("retry", "node-a", 60_000)
    b.release_job_lock("retry", "node-b")
    assert a.try_job_lock("retry", "node-a", 60_000)


# --- audit --------------------------------------------------------------------------


def test_audit_append_and_list(store: SessionStore) -> None:
    stored = [
        store.append_audit(
            AuditRecord(0, 1_700_000_000_000 + i, "admin", "retry", f"x{i % 2}", "ok", f"d{i}")
        )
        for i in range(5)
    ]
    assert len({r.id for r in stored}) == 5
    assert stored[0].detail == "d0" and stored[0].xid == "x0" and stored[0].id > 0
    everything = store.list_audit("", 100, "")
    assert everything.total == 5
    assert [r.id for r in everything.items] == sorted((r.id for r in stored), reverse=True)
    assert everything.items[-1] == stored[0]
    only = store.list_audit("x1", 100, "")
    assert [r.detail for r in only.items] == ["d3", "d1"]
    paged: list[int] = []
    token = ""
    while True:
        page = store.list_audit("", 2, token)
        paged += [r.id for r in page.items]
        token = page.next_token
        if not token:
            break
    assert paged == [r.id for r in everything.items]


# --- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["not a token!", "-1", "Zm9vOmJhcg==", "x" * 40])
def test_garbage_page_tokens_are_invalid_arguments(store: SessionStore, token: str) -> None:
    new_global(store)
    with pytest.raises(InvalidArgumentError):
        store.list_globals(GlobalSessionFilter(), 10, token)
    with pytest.raises(InvalidArgumentError):
        store.list_locks(LockFilter(), 10, token)
    with pytest.raises(InvalidArgumentError):
        store.list_audit("", 10, token)


def test_unusual_keys_are_kept_apart(store: SessionStore) -> None:
    # Case, unicode and separators in keys must not collide or be mangled.
    a, b = new_global(store), new_global(store)
    register(store, a, [RowLock("db1", "t", "Ab"), RowLock("db1", "t", "ü:1,2")])
    register(store, b, [RowLock("db1", "t", "ab"), RowLock("db1", "T", "Ab")])
    assert sorted(held_by(store, a.xid)) == ["db1^^^t^^^Ab", "db1^^^t^^^ü:1,2"]
    assert store.query_locks([RowLock("db1", "t", "ü:1,2")]) == a.xid
    assert store.query_locks([RowLock("db1", "t", "AB")]) is None
