"""The SQL session stores' own cost, in process, without gRPC: the MySQL store
on its pool (SQLAlchemy's QueuePool) against the same store at another git
revision (its hand-written pool before), and the PostgreSQL store beside them.

Run:  .venv/bin/python bench/bench_sql_store.py [--baseline REF] [--rounds 3]
      [--seconds 3] [--threads 8]

Each store runs in a child process on a fresh database; ``--threads`` threads
(the TC calls its store from 16 worker threads) repeat one transaction's store
steps: 3 ids, insert_global, two register_branch with 2 row locks each,
change_status to COMMITTING releasing the locks, finish_global. Rounds
interleave the stores; the table gives each store's median transactions/s and
its ratio to the first store (the baseline when given).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pymysql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MYSQL_URL, source_tree

from atx.dsn import parse_mysql_url, parse_postgres_url

POSTGRES_URL = os.environ.get("ATX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

_WORKLOAD = r"""
import json, sys, threading, time
from atx.status import BranchStatus, BranchType, GlobalStatus
from atx.tc.store.base import BranchRecord, GlobalRecord, RowLock, create_store

url, seconds, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
store = create_store(url)
G = GlobalStatus
done = [0] * threads
stop = time.monotonic() + seconds

def work(slot):
    n = 0
    while time.monotonic() < stop:
        tid = store.next_id()
        xid = f"x:{tid}"
        store.insert_global(GlobalRecord(xid, tid, G.BEGIN, "app", "tx", 60000, 1, 1))
        for b in range(2):
            bid = store.next_id()
            rows = [RowLock("db", "t", f"{slot}-{n}-{b}-{k}") for k in range(2)]
            store.register_branch(
                BranchRecord(bid, xid, tid, "db", BranchType.AT, BranchStatus.REGISTERED,
                             "", "", "c", 1, 1), rows)
        store.change_status(xid, {G.BEGIN}, G.COMMITTING, release_locks=True)
        store.finish_global(xid, G.COMMITTED)
        n += 1
    done[slot] = n

workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
store.close()
print(json.dumps(sum(done) / seconds))
"""


@contextlib.contextmanager
def fresh_mysql() -> Iterator[str]:
    target = parse_mysql_url(MYSQL_URL)
    name = f"atx_bench_{uuid.uuid4().hex[:10]}"
    admin = pymysql.connect(**{**target.connect_kwargs(), "database": None, "autocommit": True})
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
    try:
        yield target.url(name)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@contextlib.contextmanager
def fresh_postgres() -> Iterator[str]:
    target = parse_postgres_url(POSTGRES_URL)
    name = f"atx_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**target.connect_kwargs(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield target.url(name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(url: str, seconds: float, threads: int, pythonpath: str | None) -> float:
    env = {**os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {})}
    argv = [sys.executable, "-P", "-c", _WORKLOAD, url, str(seconds), str(threads)]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=300)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="", help="git revision of the MySQL baseline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        tree = stack.enter_context(source_tree(args.baseline)) if args.baseline else None
        stores: list[tuple[str, contextlib.AbstractContextManager[str], str | None]] = []
        results: dict[str, list[float]] = {}
        names = ([f"MySQL @ {args.baseline}"] if tree else []) + ["MySQL", "PostgreSQL"]
        for _ in range(args.rounds):
            stores = ([(names[0], fresh_mysql(), tree)] if tree else []) + [
                ("MySQL", fresh_mysql(), None),
                ("PostgreSQL", fresh_postgres(), None),
            ]
            for name, database, path in stores:
                with database as url:
                    rate = run(url, args.seconds, args.threads, path)
                results.setdefault(name, []).append(rate)
                print(f"  {name}: {rate:,.0f} tx/s", file=sys.stderr)
        first = statistics.median(results[names[0]])
        print(f"{'store':<22}{'tx/s (median)':>14}{'ratio':>8}   rounds")
        for name in names:
            median = statistics.median(results[name])
            rounds = ", ".join(f"{r:,.0f}" for r in results[name])
            print(f"{name:<22}{median:>14,.0f}{median / first:>8.2f}   {rounds}")


if __name__ == "__main__":
    main()
