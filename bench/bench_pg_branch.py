"""An AT branch vs a plain local transaction on PostgreSQL (psycopg 3), as bench_branch.py
does for MariaDB: a one-row UPDATE by primary key through the proxy inside a global
transaction (before image FOR UPDATE, UPDATE, after image, BranchRegister RPC to a real
TC, undo-log INSERT, COMMIT) against the same UPDATE and COMMIT on a raw psycopg
connection. Also the branch's five statements on raw psycopg (no RM code, no RPC), the
floor of any AT client short of the RPC. Kinds take turns in each round; medians.

Run: .venv/bin/python bench/bench_pg_branch.py   (ATX_BENCH_N=300 per round, ATX_BENCH_ROUNDS=7)
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from _common import tc_process

import atx.rm as rm
from atx.dsn import parse_postgres_url

POSTGRES_URL = os.environ.get("ATX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
N = int(os.environ.get("ATX_BENCH_N", "300"))
ROUNDS = int(os.environ.get("ATX_BENCH_ROUNDS", "7"))
PER_TRANSACTION = 50
ROWS = 1000
SQL = "UPDATE t SET v = v + 1 WHERE id = %s"


class Bench:
    def __init__(self, url: str) -> None:
        self.raw = psycopg.connect(**parse_postgres_url(url).connect_kwargs())
        self.proxy = rm.connect_postgres(url, resource_id="bench-pg", create_undo_table=True)
        self.tc = rm.get_tc_client()
        self.row = 0
        self.floor_id = 0

    def _next(self) -> int:
        self.row = self.row % ROWS + 1
        return self.row

    def plain(self) -> float:
        cur = self.raw.cursor()
        return _timed(lambda: (cur.execute(SQL, (self._next(),)), self.raw.commit()))

    def floor(self) -> float:
        cur = self.raw.cursor()

        def one() -> None:
            row = self._next()
            self.floor_id += 1
            cur.execute("SELECT id, v FROM t WHERE id IN (%s) FOR UPDATE", (row,))
            cur.fetchall()
            cur.execute(SQL, (row,))
            cur.execute("SELECT id, v FROM t WHERE id IN (%s)", (row,))
            cur.fetchall()
            cur.execute(
                "INSERT INTO undo_log (branch_id, xid, context, rollback_info, log_status,"
                " log_created, log_modified) VALUES (%s, %s, %s, %s, 0, now(), now())",
                (self.floor_id, "floor", "serializer=json", b"{}" * 100),
            )
            self.raw.commit()

        elapsed = _timed(one)
        self.raw.execute("DELETE FROM undo_log WHERE xid = 'floor'")
        self.raw.commit()
        return elapsed

    def at_branch(self) -> float:
        cur, wall, done = self.proxy.cursor(), 0.0, 0
        while done < N:
            xid = self.tc.begin("bench", 60_000)
            count = min(PER_TRANSACTION, N - done)
            with rm.bind_xid(xid):
                started = time.perf_counter()
                for _ in range(count):
                    cur.execute(SQL, (self._next(),))
                    self.proxy.commit()
                wall += time.perf_counter() - started
            done += count
            self.tc.commit(xid)
        return wall / N


def _timed(one: Callable[[], object]) -> float:
    started = time.perf_counter()
    for _ in range(N):
        one()
    return (time.perf_counter() - started) / N


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    target = parse_postgres_url(POSTGRES_URL)
    name = f"atx_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(**target.connect_kwargs(), autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = target.url(name)
    kinds = ["plain", "floor", "at_branch"]
    results: dict[str, list[float]] = {k: [] for k in kinds}
    try:
        with psycopg.connect(**parse_postgres_url(url).connect_kwargs()) as setup:
            setup.execute("CREATE TABLE t (id INT PRIMARY KEY, v BIGINT NOT NULL)")
            setup.execute("INSERT INTO t SELECT g, 0 FROM generate_series(1, %s) AS g", (ROWS,))
        with tc_process() as tc:
            rm.configure(tc_addresses=[tc.address], application_id="bench")
            channel = rm.ensure_runtime()
            assert channel is not None and channel.wait_connected(10)
            bench = Bench(url)
            for kind in kinds:  # warm-up
                getattr(bench, kind)()
            for round_ in range(ROUNDS):
                for kind in kinds if round_ % 2 == 0 else kinds[::-1]:
                    results[kind].append(getattr(bench, kind)())
            channel.drain(30)
            bench.proxy.close()
            bench.raw.close()
            rm.shutdown()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    base = statistics.median(results["plain"])
    print(f"N={N} per round, median of {ROUNDS} rounds")
    for kind, label in [
        ("plain", "plain local transaction (UPDATE by pk + COMMIT)"),
        ("floor", "DB floor: the branch's 5 statements, raw psycopg"),
        ("at_branch", "AT branch (images, BranchRegister, undo INSERT, COMMIT)"),
    ]:
        value = statistics.median(results[kind])
        print(f"{label:<58} {value * 1e3:8.3f} ms/op  {value / base:5.2f}x plain")
    ratios = sorted(a / p for a, p in zip(results["at_branch"], results["plain"], strict=True))
    print(f"ratio AT / plain: median {statistics.median(ratios):.2f}x, min {ratios[0]:.2f}x")


if __name__ == "__main__":
    main()
