"""Group commit of the SQLite store: one transaction for many operations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from atx.errors import GlobalTransactionNotFoundError, LockConflictError
from atx.status import GlobalStatus as G
from atx.tc.config import TCConfig
from atx.tc.coordinator import TransactionCoordinator
from atx.tc.runner import StoreRunner
from atx.tc.session import COMMIT_PHASE_TWO
from atx.tc.store.base import GlobalRecord, GlobalSessionFilter, LockFilter, RowLock
from atx.tc.store.sqlite import SQLiteStore
from tests.tc.store.test_contract import new_branch


def _record(store: SQLiteStore) -> GlobalRecord:
    tid = store.next_id()
    return GlobalRecord(f"127.0.0.1:8091:{tid}", tid, G.BEGIN, "app", "tx", 60_000, 1, 1)


def test_a_failed_call_is_rolled_back_alone(tmp_path: Path) -> None:
    path = str(tmp_path / "tc.db")
    store = SQLiteStore(path)
    holder, loser, other = _record(store), _record(store), _record(store)
    store.insert_global(holder)
    store.insert_global(loser)
    store.register_branch(new_branch(holder, 1), [RowLock("db1", "t", "1")])
    results = store.run_batch(
        [
            lambda: store.insert_global(other),
            # Conflicts on its second row after locking the first: nothing of it stays.
            lambda: store.register_branch(
                new_branch(loser, 2), [RowLock("db1", "t", "9"), RowLock("db1", "t", "1")]
            ),
            lambda: store.register_branch(new_branch(_record(store), 3), []),
            lambda: store.get_global(other.xid, False),
        ]
    )
    assert [ok for ok, _ in results] == [True, False, False, True]
    assert isinstance(results[1][1], LockConflictError)
    assert isinstance(results[2][1], GlobalTransactionNotFoundError)
    store.close()

    reopened = SQLiteStore(path)
    assert reopened.get_global(other.xid) is not None
    loser_after = reopened.get_global(loser.xid)
    assert loser_after is not None and loser_after.branches == []
    assert reopened.list_locks(LockFilter(xid=loser.xid), 10, "").total == 0
    reopened.close()


def test_concurrent_calls_share_commits_and_survive_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "tc.db")
    store = SQLiteStore(path)
    runner = StoreRunner(store)
    assert runner.atomic_steps
    batches: list[int] = []
    run_batch = store.run_batch

    def counting(calls):  # type: ignore[no-untyped-def]
        batches.append(len(calls))
        return run_batch(calls)

    runner._batch = counting
    records = [_record(store) for _ in range(20)]

    async def main() -> None:
        await asyncio.gather(*(runner(store.insert_global, r) for r in records))

    asyncio.run(main())
    assert sum(batches) == 20 and len(batches) < 20
    store.close()
    reopened = SQLiteStore(path)
    assert all(reopened.get_global(r.xid) is not None for r in records)
    reopened.close()


@pytest.mark.parametrize("in_flight", [0, 1])
def test_a_lone_call_commits_at_once(tmp_path: Path, in_flight: int) -> None:
    store = SQLiteStore(str(tmp_path / "tc.db"))
    runner = StoreRunner(store, in_flight=lambda: in_flight)
    batches: list[int] = []
    run_batch = store.run_batch

    def counting(calls):  # type: ignore[no-untyped-def]
        batches.append(len(calls))
        return run_batch(calls)

    runner._batch = counting
    record = _record(store)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ticks = 0

        def tick() -> None:
            nonlocal ticks
            ticks += 1

        loop.call_soon(tick)
        await runner(store.insert_global, record)  # no loop iteration: tick has not run
        assert ticks == 0 and batches == [1]
        with pytest.raises(GlobalTransactionNotFoundError):  # errors reach the caller
            await runner(store.register_branch, new_branch(_record(store), 7), [])

    asyncio.run(main())
    assert store.get_global(record.xid) is not None
    store.close()


def test_calls_of_concurrent_requests_still_share_commits(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "tc.db"))
    runner = StoreRunner(store, in_flight=lambda: 20)
    batches: list[int] = []
    run_batch = store.run_batch

    def counting(calls):  # type: ignore[no-untyped-def]
        batches.append(len(calls))
        return run_batch(calls)

    runner._batch = counting
    records = [_record(store) for _ in range(20)]

    async def main() -> None:
        await asyncio.gather(*(runner(store.insert_global, r) for r in records))

    asyncio.run(main())
    assert sum(batches) == 20 and len(batches) < 20
    store.close()


@pytest.mark.parametrize("branches", [0, 1])
def test_commit_through_the_batched_runner(tmp_path: Path, branches: int) -> None:
    store = SQLiteStore(str(tmp_path / "tc.db"))
    tc = TransactionCoordinator(TCConfig(port=8091), store)

    async def main() -> G:
        xid = await tc.begin(60_000)
        for n in range(branches):
            await tc.branch_register(xid, "db1", 1, f"t:{n}")  # type: ignore[arg-type]
        status = (await tc.commit(xid)).status
        assert (await tc.commit(xid)).status == G.COMMITTED  # repeated: same answer
        return status

    assert asyncio.run(main()) == G.COMMITTED
    everything = GlobalSessionFilter(include_history=True)
    (xid,) = [g.xid for g in store.list_globals(everything, 10, "").items]
    record = store.get_global(xid)
    assert record is not None
    # Without branches it is finished at once; with one it awaits phase two
    # (no RM is attached here).
    if branches == 0:
        assert record.status == G.COMMITTED
    else:
        assert record.status in COMMIT_PHASE_TWO
    assert store.list_locks(LockFilter(), 10, "").total == 0
    store.close()
