"""The order service's job lock without Redis (services/common/jobs.py): a
row of ``order_job_locks`` in the order database, on SQLite and MariaDB."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from atx.shop.common.db import Database
from atx.shop.common.jobs import DbJobLock, JobRunner, build_runner
from atx.shop.order.jobs import ORDER_TIMEOUT_CLOSE_JOB
from atx.shop.order.service import SCHEMA


@pytest.fixture(params=["sqlite", "mariadb"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'order.db'}"
    else:
        url = str(request.getfixturevalue("mariadb_url"))
    database = Database(url, "order")
    database.execute_script(SCHEMA)
    return database


def test_order_job_runs_on_one_process_at_a_time(db: Database) -> None:
    runners = [build_runner("", db, table="order_job_locks", owner=o) for o in ("a", "b")]
    assert all(isinstance(runner.lock, DbJobLock) for runner in runners)
    started = threading.Barrier(2)

    def body() -> int:
        time.sleep(0.5)
        return 1

    for runner in runners:
        runner.register(ORDER_TIMEOUT_CLOSE_JOB, body, 10.0**9)
    results: list[bool] = []

    def trigger(runner: JobRunner) -> None:
        started.wait()
        results.append(runner.run_now(ORDER_TIMEOUT_CLOSE_JOB).ran)

    threads = [threading.Thread(target=trigger, args=(runner,)) for runner in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False, True]
    assert runners[1].run_now(ORDER_TIMEOUT_CLOSE_JOB).ran  # released after the run
    assert db.query("SELECT name, owner FROM order_job_locks") == [(ORDER_TIMEOUT_CLOSE_JOB, "")]


def test_lock_table_name_is_checked(db: Database) -> None:
    with pytest.raises(ValueError, match="bad lock table"):
        DbJobLock(db, table="x; DROP TABLE orders")
