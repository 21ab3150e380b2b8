"""atx.jobs, the one job runner, over a real shared lock: the TC's SQLite store
opened twice on one file, as two nodes would."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from atx.errors import UnknownJobError
from atx.jobs import NEVER_S, JobRunner
from atx.tc.jobs import StoreJobLock
from atx.tc.store.sqlite import SQLiteStore


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[SQLiteStore, SQLiteStore]]:
    a, b = SQLiteStore(str(tmp_path / "s.db")), SQLiteStore(str(tmp_path / "s.db"))
    yield a, b
    a.close()
    b.close()


def test_a_run_is_refused_while_another_holds_the_lock(
    stores: tuple[SQLiteStore, SQLiteStore],
) -> None:
    inside, leave = threading.Event(), threading.Event()

    def slow() -> int:
        inside.set()
        assert leave.wait(30)
        return 1

    first = JobRunner(StoreJobLock(stores[0]), owner="a")
    second = JobRunner(StoreJobLock(stores[1]), owner="b")
    first.register("sweep", slow, NEVER_S)
    second.register("sweep", lambda: 2, NEVER_S)
    runs = []
    worker = threading.Thread(target=lambda: runs.append(first.run_now("sweep")))
    worker.start()
    assert inside.wait(30)
    assert second.run_now("sweep").ran is False  # the other process holds it
    assert first.run_now("sweep").ran is False  # and never overlaps itself
    leave.set()
    worker.join(30)
    assert runs[0].ran and runs[0].processed == 1
    assert second.run_now("sweep").processed == 2  # released after the run


def test_keep_lock_keeps_a_job_on_one_node_until_it_stops(
    stores: tuple[SQLiteStore, SQLiteStore],
) -> None:
    first = JobRunner(StoreJobLock(stores[0]), owner="a", keep_lock=True)
    second = JobRunner(StoreJobLock(stores[1]), owner="b", keep_lock=True)
    for runner in (first, second):
        runner.register("retry", lambda: 0, NEVER_S)
    assert first.run_now("retry").ran
    assert not second.run_now("retry").ran  # a's lease lives on between runs
    assert first.run_now("retry").ran
    first.stop()  # releases what it kept
    assert second.run_now("retry").ran


def test_wake_runs_every_job_now_and_stop_ends_the_loops() -> None:
    ran = threading.Event()
    runner = JobRunner(None)
    runner.register("local", lambda: ran.set() or 0, NEVER_S, locked=False)
    runner.start()
    assert not ran.is_set()
    runner.wake()
    assert ran.wait(30)
    runner.stop(timeout=30)


def test_an_unknown_job_is_named_and_a_locked_job_needs_a_lock() -> None:
    runner = JobRunner(None)
    runner.register("a", lambda: 0, NEVER_S, locked=False)
    with pytest.raises(UnknownJobError, match="'b'; known: a"):
        runner.run_now("b")
    with pytest.raises(ValueError, match="needs a lock"):
        runner.register("c", lambda: 0, NEVER_S)
