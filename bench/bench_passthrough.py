"""Pass-through outside a global transaction vs the raw driver (target: <= 5% overhead).

Statements through the proxy outside any global transaction or global lock
cost one contextvar read and one extra Python call (fetches are the driver's own
methods). Measured on MariaDB (UPDATE by primary key with autocommit, and a point
SELECT) and on SQLite (a point SELECT on a file database, where the driver itself
is fastest and the overhead shows most).

Each sample is the best of 3 runs of N statements; raw and proxy samples alternate
(which one goes first alternates too) so that the machine's noise hits both. The
figure is the median over ROUNDS of the per-round overhead (proxy / raw - 1).

Run: .venv/bin/python bench/bench_passthrough.py [--observed]
     (ATX_BENCH_N=1000 statements per run, ATX_BENCH_ROUNDS=21 rounds)

``--observed`` first installs and activates the observability of issue 16: an
OpenTelemetry SDK tracer provider (atx's XID processor, an in-memory exporter,
the gRPC instrumentation on every channel) and the RM's Prometheus endpoint, and
runs one traced global transaction, so the figures are pass-through with both live.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pymysql
from _common import scratch_database

import atx.rm as rm
from atx.dsn import parse_mysql_url

N = int(os.environ.get("ATX_BENCH_N", "1000"))
REPEAT = 3  # each sample is the best of REPEAT runs of N statements: filters preemption
ROUNDS = int(os.environ.get("ATX_BENCH_ROUNDS", "21"))


def best_of(run: Callable[[], None], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best / N


def loop(cursor: Any, sql: str, fetch: bool) -> Callable[[], None]:
    def run() -> None:
        for i in range(N):
            cursor.execute(sql, (i % 100 + 1,))
            if fetch:
                cursor.fetchall()

    return run


def compare(label: str, raw_cursor: Any, proxy_cursor: Any, sql: str, fetch: bool) -> None:
    # Interleave to share the machine's noise fairly.
    raw_times, proxy_times = [], []
    for round_ in range(ROUNDS):
        # Alternate which goes first, so that neither gains from going second.
        if round_ % 2:
            proxy_times.append(best_of(loop(proxy_cursor, sql, fetch), REPEAT))
            raw_times.append(best_of(loop(raw_cursor, sql, fetch), REPEAT))
        else:
            raw_times.append(best_of(loop(raw_cursor, sql, fetch), REPEAT))
            proxy_times.append(best_of(loop(proxy_cursor, sql, fetch), REPEAT))
    overheads = [p / r - 1 for p, r in zip(proxy_times, raw_times, strict=True)]
    report(label, raw_times, proxy_times, overheads, f"{ROUNDS} rounds")


def report(
    label: str,
    raw_times: list[float],
    proxy_times: list[float],
    overheads: list[float],
    rounds: str,
) -> None:
    """One line: median times, the median per-round overhead and its quartiles."""
    raw, proxy = statistics.median(raw_times), statistics.median(proxy_times)
    overhead = statistics.median(overheads)
    quartiles = statistics.quantiles(overheads, n=4)
    print(
        f"{label}: raw {raw * 1e6:.2f} us/op, proxy {proxy * 1e6:.2f} us/op (medians), "
        f"overhead {overhead * 100:+.1f}% = {overhead * raw * 1e9:+.0f} ns"
        f" (median of {rounds}; quartiles "
        f"{quartiles[0] * 100:+.1f}% / {quartiles[2] * 100:+.1f}%) (target <= 5%)"
    )


def compare_each(label: str, raw_cursor: Any, proxy_cursor: Any, sql: str, fetch: bool) -> None:
    """Statement-by-statement interleaving, for drivers whose statements are slow and noisy."""
    clock = time.perf_counter
    raw_medians, proxy_medians, overheads = [], [], []
    for _ in range(ROUNDS):
        raw_times, proxy_times = [], []
        for i in range(N):
            params = (i % 100 + 1,)
            pair = ((raw_cursor, raw_times), (proxy_cursor, proxy_times))
            for cursor, times in pair if i % 2 else pair[::-1]:
                started = clock()
                cursor.execute(sql, params)
                if fetch:
                    cursor.fetchall()
                times.append(clock() - started)
        raw_medians.append(statistics.median(raw_times))
        proxy_medians.append(statistics.median(proxy_times))
        overheads.append(proxy_medians[-1] / raw_medians[-1] - 1)
    report(
        label, raw_medians, proxy_medians, overheads, f"{ROUNDS} rounds of {N} interleaved pairs"
    )


def observe() -> None:
    """Tracing and RM metrics installed and active (one global transaction traced)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from atx import tracing
    from atx.tc.testing import InProcessTC
    from atx.testing import free_port

    provider = TracerProvider()
    tracing.install_xid_processor(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    tc = InProcessTC().start()
    rm.configure(tc_addresses=[tc.address], metrics_port=free_port())
    tmp = tempfile.mkdtemp(prefix="atx-bench-observed-")  # the RM's runtime keeps using it
    conn = rm.connect_sqlite(f"{tmp}/observed.sqlite", create_undo_table=True)
    conn.raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INT)")
    conn.raw.commit()
    with rm.global_transaction("observed"):
        conn.execute("INSERT INTO t VALUES (1, 1)")
        conn.commit()
    conn.close()
    assert exporter.get_finished_spans(), "tracing is not active"
    print(f"observed: {len(exporter.get_finished_spans())} spans of one global transaction")


def main() -> None:
    if "--observed" in sys.argv[1:]:
        observe()
    with scratch_database(100) as url:
        kwargs = parse_mysql_url(url).connect_kwargs()
        raw = pymysql.connect(**kwargs, autocommit=True)
        proxy = rm.connect_mysql(url, resource_id="bench-pass", autocommit=True)
        compare_each(
            "MariaDB UPDATE by pk (autocommit)",
            raw.cursor(),
            proxy.cursor(),
            "UPDATE t SET v = v + 1 WHERE id = %s",
            False,
        )
        compare_each(
            "MariaDB point SELECT",
            raw.cursor(),
            proxy.cursor(),
            "SELECT v FROM t WHERE id = %s",
            True,
        )
        raw.close()
        proxy.close()
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/bench.sqlite"
        setup = sqlite3.connect(path)
        setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INT)")
        setup.executemany("INSERT INTO t VALUES (?, 0)", [(i,) for i in range(1, 101)])
        setup.commit()
        setup.close()
        # The same connect arguments as connect_sqlite uses: only the proxy differs.
        raw_sqlite = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
        proxy_sqlite = rm.connect_sqlite(path, resource_id="bench-pass-sqlite")
        compare(
            "SQLite point SELECT",
            raw_sqlite.cursor(),
            proxy_sqlite.cursor(),
            "SELECT v FROM t WHERE id = ?",
            True,
        )
    rm.shutdown()


if __name__ == "__main__":
    main()
