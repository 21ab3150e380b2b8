"""The async proxies' pass-through outside a global transaction vs the raw async driver
(target: <= 5 % overhead), and the raw MySQL drivers side by side (why asyncmy).

Outside a global transaction a statement through ``AsyncCursorProxy`` costs one
contextvar read, the connection guard (MySQL) and one extra coroutine frame;
fetches are the driver's own methods. Measured on MariaDB with asyncmy (UPDATE by
primary key with autocommit, a point SELECT), on PostgreSQL with psycopg's
AsyncConnection (the same two) and on SQLite with aiosqlite (a point SELECT;
aiosqlite's thread hop dominates it).

As bench_passthrough.py: raw and proxy statements alternate one by one (which goes
first alternates too), each round's figure is the ratio of the medians (and of the
10th percentiles, which preemption on a shared machine disturbs least), and the
result the median over rounds. ``--drivers`` compares raw aiomysql with raw asyncmy
the same way (point SELECT). The proxy's own cost per statement is also timed on
its own, over a cursor whose ``execute`` returns at once (no round trip: the
figure that noise on a shared machine hides in the ratios).

Run: .venv/bin/python bench/bench_passthrough_aio.py [--drivers | --postgres]
     (ATX_BENCH_N=1000 statements per round, ATX_BENCH_ROUNDS=11 rounds)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import scratch_database

import atx.rm as rm
from atx.dsn import parse_mysql_url, parse_postgres_url

POSTGRES_URL = os.environ.get("ATX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
N = int(os.environ.get("ATX_BENCH_N", "1000"))
ROUNDS = int(os.environ.get("ATX_BENCH_ROUNDS", "11"))


def low(times: list[float]) -> float:
    return statistics.quantiles(times, n=10)[0]


async def compare_each(label: str, first: Any, second: Any, sql: str, fetch: bool) -> None:
    """``second`` against ``first``, statement by statement (the ratio second/first - 1)."""
    clock = time.perf_counter
    first_medians, second_medians, overheads, low_overheads = [], [], [], []
    for _ in range(ROUNDS):
        first_times: list[float] = []
        second_times: list[float] = []
        for i in range(N):
            params = (i % 100 + 1,)
            pair = ((first, first_times), (second, second_times))
            for cursor, times in pair if i % 2 else pair[::-1]:
                started = clock()
                await cursor.execute(sql, params)
                if fetch:
                    await cursor.fetchall()
                times.append(clock() - started)
        first_medians.append(statistics.median(first_times))
        second_medians.append(statistics.median(second_times))
        overheads.append(second_medians[-1] / first_medians[-1] - 1)
        low_overheads.append(low(second_times) / low(first_times) - 1)
    a, b = statistics.median(first_medians), statistics.median(second_medians)
    overhead = statistics.median(overheads)
    quartiles = statistics.quantiles(overheads, n=4)
    print(
        f"{label}: {a * 1e6:.1f} vs {b * 1e6:.1f} us/op (medians), "
        f"{overhead * 100:+.1f}% = {overhead * a * 1e9:+.0f} ns (median of {ROUNDS} rounds of"
        f" {N} interleaved pairs; quartiles {quartiles[0] * 100:+.1f}% /"
        f" {quartiles[2] * 100:+.1f}%); at the 10th percentile"
        f" {statistics.median(low_overheads) * 100:+.1f}%",
        flush=True,
    )


class _Instant:
    """A cursor whose statements return at once: what is left is the proxy's own code."""

    rowcount = 0

    async def execute(self, sql: str, params: Any = None) -> int:
        return 0

    async def fetchall(self) -> tuple[()]:
        return ()

    fetchone = fetchmany = fetchall


async def own_cost(proxy: rm.AsyncConnectionProxy, n: int = 100_000) -> None:
    raw = _Instant()
    wrapped = rm.AsyncCursorProxy(proxy, raw)
    times: dict[str, list[float]] = {"raw": [], "proxy": []}
    for _ in range(7):
        for label, cursor in (("raw", raw), ("proxy", wrapped)):
            started = time.perf_counter()
            for i in range(n):
                await cursor.execute("SELECT v FROM t WHERE id = %s", (i,))
            times[label].append((time.perf_counter() - started) / n)
    cost = min(times["proxy"]) - min(times["raw"])
    print(f"the async proxy's own cost per statement (best of 7 x {n}): {cost * 1e9:.0f} ns")


async def mariadb(url: str, drivers: bool) -> None:
    import asyncmy

    kwargs = parse_mysql_url(url).connect_kwargs()
    raw = await asyncmy.connect(**kwargs, autocommit=True)
    if drivers:
        import aiomysql

        other = await aiomysql.connect(
            **{("db" if k == "database" else k): v for k, v in kwargs.items()}, autocommit=True
        )
        await compare_each(
            "MariaDB point SELECT, raw aiomysql vs raw asyncmy",
            await other.cursor(),
            raw.cursor(),
            "SELECT v FROM t WHERE id = %s",
            True,
        )
        other.close()
        await raw.ensure_closed()
        return
    proxy = await rm.connect_asyncmy(url, resource_id="bench-pass-aio", autocommit=True)
    for label, sql, fetch in (
        ("MariaDB UPDATE by pk (autocommit), asyncmy raw vs proxy",
         "UPDATE t SET v = v + 1 WHERE id = %s", False),
        ("MariaDB point SELECT, asyncmy raw vs proxy", "SELECT v FROM t WHERE id = %s", True),
    ):  # fmt: skip
        await compare_each(label, raw.cursor(), await proxy.cursor(), sql, fetch)
    await own_cost(proxy)
    await raw.ensure_closed()
    await proxy.close()


@contextlib.contextmanager
def scratch_postgres(rows: int = 100) -> Iterator[str]:
    """A fresh PostgreSQL database with ``t(id INT PRIMARY KEY, v BIGINT)``; dropped afterwards."""
    import psycopg

    target = parse_postgres_url(POSTGRES_URL)
    name = f"atx_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**target.connect_kwargs(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = target.url(name)
            with psycopg.connect(**parse_postgres_url(url).connect_kwargs()) as setup:
                setup.execute("CREATE TABLE t (id INT PRIMARY KEY, v BIGINT NOT NULL)")
                setup.execute("INSERT INTO t SELECT g, 0 FROM generate_series(1, %s) g", (rows,))
            yield url
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def postgres(url: str) -> None:
    import psycopg

    kwargs = parse_postgres_url(url).connect_kwargs()
    raw = await psycopg.AsyncConnection.connect(**kwargs, autocommit=True)
    proxy = await rm.connect_psycopg_async(url, resource_id="bench-pass-pg-aio", autocommit=True)
    for label, sql, fetch in (
        ("PostgreSQL UPDATE by pk (autocommit), psycopg async raw vs proxy",
         "UPDATE t SET v = v + 1 WHERE id = %s", False),
        ("PostgreSQL point SELECT, psycopg async raw vs proxy",
         "SELECT v FROM t WHERE id = %s", True),
    ):  # fmt: skip
        await compare_each(label, raw.cursor(), await proxy.cursor(), sql, fetch)
    await raw.close()
    await proxy.close()


async def sqlite(path: str) -> None:
    import aiosqlite

    raw = await aiosqlite.connect(path, timeout=30.0)
    proxy = await rm.connect_aiosqlite(path, resource_id="bench-pass-aiosqlite")
    await compare_each(
        "SQLite point SELECT, aiosqlite raw vs proxy",
        await raw.cursor(),
        await proxy.cursor(),
        "SELECT v FROM t WHERE id = ?",
        True,
    )
    await raw.close()
    await proxy.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--drivers", action="store_true", help="raw aiomysql vs raw asyncmy")
    parser.add_argument("--postgres", action="store_true", help="psycopg async only")
    args = parser.parse_args()
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    if not args.postgres:
        with scratch_database(100) as url:
            asyncio.run(mariadb(url, args.drivers))
        if args.drivers:
            return
    with scratch_postgres(100) as url:
        asyncio.run(postgres(url))
    if args.postgres:
        rm.shutdown()
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/bench.sqlite"
        setup = sqlite3.connect(path)
        setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INT)")
        setup.executemany("INSERT INTO t VALUES (?, 0)", [(i,) for i in range(1, 101)])
        setup.commit()
        setup.close()
        asyncio.run(sqlite(path))
    rm.shutdown()


if __name__ == "__main__":
    main()
