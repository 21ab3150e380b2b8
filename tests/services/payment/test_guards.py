"""The payment service's no-Redis fallbacks (guards.py): the job lock as a
database row and the replay guard on pay_notifications, on SQLite and MariaDB."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from atx.shop.common.db import Database
from atx.shop.common.jobs import DbJobLock, JobRunner
from atx.shop.payment.guards import DbReplayGuard, build_guards
from atx.shop.payment.schema import SCHEMA
from atx.shop.payment.settings import PaymentSettings


@pytest.fixture(params=["sqlite", "mariadb"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'payment.db'}"
    else:
        url = str(request.getfixturevalue("mariadb_url"))
    database = Database(url, "payment")
    database.execute_script(SCHEMA)
    return database


def test_db_job_lock_runs_each_job_on_one_runner_at_a_time(db: Database) -> None:
    guards = build_guards(PaymentSettings(), db)  # no Redis: the database fallbacks
    assert guards.breaker is None
    runners = [guards.runner, JobRunner(DbJobLock(db), owner="other")]
    active = 0
    overlaps: list[int] = []
    lock = threading.Lock()

    def body() -> int:
        nonlocal active
        with lock:
            active += 1
            overlaps.append(active)
        time.sleep(0.3)
        with lock:
            active -= 1
        return 1

    for runner in runners:
        runner.register("compensation", body, 10.0**9)
    results: list[bool] = []

    def trigger(runner: object) -> None:
        results.append(runner.run_now("compensation").ran)  # type: ignore[attr-defined]

    threads = [threading.Thread(target=trigger, args=(x,)) for x in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False, True]
    assert max(overlaps) == 1
    # Released after the run: the other runner may take it now.
    assert runners[1].run_now("compensation").ran
    for runner in runners:
        runner.close()


def test_db_replay_guard(db: Database) -> None:
    guard = DbReplayGuard(db)
    assert not guard.seen("alipay_sim", "n-1")
    assert guard.remember("alipay_sim", "n-1")
    assert guard.seen("alipay_sim", "n-1")
    assert not guard.remember("alipay_sim", "n-1")
