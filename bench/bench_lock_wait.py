"""Global lock waits under contention: how many transactions time out, per retry policy.

Worker processes (each its own RM, with a connection per database) run global transactions that
move one unit from a random row of a small table in the first MariaDB database
to random rows of the same table in the others, one branch per database,
against a real TC (SQLite store). Rows are few, so transactions collide on global locks; a branch
that cannot get its locks retries its registration every ``interval`` seconds,
``times`` times, then gives up with GlobalLockWaitTimeout (and the transaction
rolls back). For each policy the bench reports the share of transactions that
timed out and the committed throughput; the policies take turns in each round.

Run: .venv/bin/python bench/bench_lock_wait.py [--workers 6] [--rows 60]
     [--databases 3] [--transactions 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import scratch_database, tc_process

import atx.rm as rm

#: (lock_retry_times, lock_retry_interval seconds): Seata's default first.
Policy = tuple[int, float]
POLICIES: list[Policy] = [(30, 0.01), (30, 0.05), (100, 0.02), (300, 0.01)]


def _worker(
    tc: str, urls: list[str], rows: int, count: int, times: int, interval: float
) -> tuple[int, int]:
    """One worker process: its own RM, one connection per database."""
    rm.configure(tc_addresses=[tc], application_id="bench", client_id=uuid.uuid4().hex)
    conns = [rm.connect_mysql(url, resource_id=f"bench-lock-{i}") for i, url in enumerate(urls)]

    @rm.global_transactional(name="lock-wait", lock_retry_times=times, lock_retry_interval=interval)
    def transfer() -> None:
        for index, conn in enumerate(conns):
            delta = -(len(conns) - 1) if index == 0 else 1
            with conn.cursor() as cur:
                row = random.randint(1, rows)
                cur.execute("UPDATE t SET v = v + %s WHERE id = %s", (delta, row))
            conn.commit()  # one branch per database

    committed = timed_out = 0
    for _ in range(count):
        try:
            transfer()
            committed += 1
        except rm.GlobalLockWaitTimeout:
            timed_out += 1
    for conn in conns:
        conn.close()
    rm.shutdown()
    return committed, timed_out


def _round(
    pool: Any, tc: str, urls: list[str], workers: int, rows: int, count: int, policy: Policy
) -> tuple[int, int, float]:
    started = time.perf_counter()
    outcomes = pool.starmap(_worker, [(tc, urls, rows, count, *policy)] * workers)
    seconds = time.perf_counter() - started
    return sum(o[0] for o in outcomes), sum(o[1] for o in outcomes), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--databases", type=int, default=3)
    parser.add_argument("--transactions", type=int, default=60, help="per worker")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[tuple[int, float], list[tuple[float, float]]] = {p: [] for p in POLICIES}
    with tc_process() as tc, contextlib.ExitStack() as stack:
        urls = [stack.enter_context(scratch_database(args.rows)) for _ in range(args.databases)]
        for index, url in enumerate(urls):
            rm.connect_mysql(url, resource_id=f"bench-lock-{index}", create_undo_table=True).close()
        pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(args.workers))
        # Untimed: each worker process starts, imports atx and attaches once before the rounds.
        _round(pool, tc.address, urls, args.workers, args.rows, 2, POLICIES[0])
        for _ in range(args.rounds):
            for policy in POLICIES:
                ok, out, seconds = _round(
                    pool, tc.address, urls, args.workers, args.rows, args.transactions, policy
                )
                results[policy].append((out / (ok + out), ok / seconds))
    total = args.workers * args.transactions
    print(
        f"# {args.workers} workers x {args.transactions} transfers over {args.rows} rows"
        f" in each of {args.databases} databases,"
        f" {args.rounds} rounds (medians); {total} transactions per round"
    )
    for (times, interval), rounds in results.items():
        share = statistics.median(r[0] for r in rounds)
        rate = statistics.median(r[1] for r in rounds)
        print(
            f"lock_retry_times={times:<4} interval={interval * 1000:>4.0f} ms"
            f" (window {times * interval:5.2f} s): {share:6.1%} timed out, {rate:6.1f} commits/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
