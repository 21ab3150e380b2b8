"""The job runner: one run at a time across processes, via a Redis lock."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time

import pytest

from atx.shop.payment.channel import JobRunner, RedisJobLock, UnknownJobError
from atx.shop.payment.channel.redis_store import connect


def test_two_processes_never_overlap_a_job(redis_url: str) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.services.payment.channel.job_worker", redis_url, "2"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=90)
        assert worker.returncode == 0, err
    store = connect(redis_url)
    runs: list[tuple[float, float, int]] = []
    for raw in store.client.lrange(store.key("intervals"), 0, -1):
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        start_s, end_s, running_s, _pid = text.split(":")
        runs.append((float(start_s), float(end_s), int(running_s)))
    assert len(runs) >= 2
    assert all(running == 1 for _, _, running in runs)
    runs.sort()
    for (_, first_end, _), (next_start, _, _) in itertools.pairwise(runs):
        assert first_end <= next_start, "two runs of the job overlapped"
    assert not store.client.exists(RedisJobLock(redis_url).key("compensation"))


def test_run_now_reports_whether_it_ran(redis_url: str) -> None:
    first = JobRunner(RedisJobLock(redis_url), lock_ttl_ms=600)
    second = JobRunner(RedisJobLock(redis_url))
    started, release = threading.Event(), threading.Event()

    def slow() -> int:
        started.set()
        release.wait(10)
        return 7

    first.register("timeout_close", slow, interval_s=60)
    second.register("timeout_close", lambda: 1, interval_s=60)
    results = []
    thread = threading.Thread(target=lambda: results.append(first.run_now("timeout_close")))
    thread.start()
    started.wait(10)
    time.sleep(0.9)  # more than the lock's ttl: only renewal keeps it
    assert not second.run_now("timeout_close").ran
    assert not first.run_now("timeout_close").ran  # never overlaps itself in-process
    release.set()
    thread.join(10)
    assert results[0].ran and results[0].processed == 7
    again = second.run_now("timeout_close")
    assert again.ran and again.processed == 1
    with pytest.raises(UnknownJobError):
        second.run_now("nope")


def test_periodic_runs(redis_url: str) -> None:
    runner = JobRunner(RedisJobLock(redis_url))
    count = threading.Semaphore(0)

    def body() -> int:
        count.release()
        return 0

    runner.register("compensation", body, interval_s=0.05)
    runner.start()
    assert count.acquire(timeout=10) and count.acquire(timeout=10)
    runner.close()


def test_only_the_holder_renews_or_releases_the_redis_lock(redis_url: str) -> None:
    lock = RedisJobLock(redis_url)
    other = RedisJobLock(redis_url)
    try:
        assert lock.acquire("sweep", "mine", 300)
        assert not other.acquire("sweep", "theirs", 300)  # held
        assert not other.renew("sweep", "theirs", 300)  # not theirs to renew
        other.release("sweep", "theirs")  # nor to free
        assert not other.acquire("sweep", "theirs", 300)
        assert lock.renew("sweep", "mine", 300)
        time.sleep(0.4)  # expired: another process may take it over
        assert other.acquire("sweep", "theirs", 300)
        assert not lock.renew("sweep", "mine", 300)  # the old holder cannot renew it back
        lock.release("sweep", "mine")  # and cannot free the new holder's
        assert not lock.acquire("sweep", "mine", 300)
        other.release("sweep", "theirs")
        assert lock.acquire("sweep", "mine", 300)
    finally:
        lock.close()
        other.close()
