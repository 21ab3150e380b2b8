"""End to end: a transfer between two MariaDB databases, plain vs XA vs atx AT.

A transfer is ``UPDATE account SET balance = balance - 1 WHERE id = %s`` in
database A and ``... + 1 ...`` in database B, made three ways, side by side:

- ``plain``: two local transactions, one per database (not atomic);
- ``xa``: MariaDB XA driven by the application: ``XA START``, the UPDATE,
  ``XA END``, ``XA PREPARE`` on A and then on B, then ``XA COMMIT`` on both;
- ``at``: atx AT, ``@rm.global_transactional`` around two ``rm.connect_mysql``
  connections (one per database), against a TC on a SQLite store (``--store``)
  in its own process;
- ``at-async`` (with ``--kinds ...,at-async``): the same AT transfer as a coroutine
  over two ``rm.connect_asyncmy`` async proxies, ``--threads`` tasks on one event
  loop (the TC calls over grpc.aio);
- ``at-multi`` (with ``--kinds ...,at-multi``): the sync AT transfer over connections
  opened with ``client_flag=CLIENT.MULTI_STATEMENTS`` (each branch's undo INSERT and
  COMMIT in one round trip).

Each kind runs ``--threads`` threads (each with its own connections) for
``--seconds`` per workload: ``uniform`` (rows drawn at random out of 1,000) and
``hot`` (every transfer on row 1). Kinds and workloads take turns within each
round, each round starting one further along; figures are medians over rounds
(tx/s; p50 and p99 latency of each round's transfers; the ratios AT/XA and
AT/plain are taken per round). Each kind has databases of its own; at the end
every balance is checked against the transfers that committed (a lost update
shows as a mismatch). The databases are dropped at the end.

``--baseline REF`` adds ``at-base``: the same AT transfers against a TC running
the code of git revision REF (the RM is re-pointed between the two, and phase
two settles, untimed, after every AT measurement).

``--micro`` measures the two micro targets instead, in interleaved rounds of
``--n`` operations:

- an AT branch (one-row UPDATE by primary key on MariaDB, BranchRegister
  included) against a plain local transaction (bench/bench_branch.py's kinds);
- an empty global transaction (Begin + Commit by the RM's TC client) against a
  bare gRPC echo round trip on the same stack (grpc.aio server in its own
  process, the same sync client channel), on the SQLite and on the Redis store;
  with ``--baseline REF`` also on TCs running REF's code (the A/B), with
  ``--ceilings`` also on a TC answering at once with no work ("canned") and the
  real TC on a store that keeps everything in dicts (bench/_ceilings.py).

Run:  .venv/bin/python bench/bench_transfer.py [--rounds 3] [--seconds 5] [--threads 8]
      .venv/bin/python bench/bench_transfer.py --micro [--rounds 7] [--n 300]
                       [--baseline HEAD~1] [--ceilings]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pymysql
import redis
from _common import (
    ECHO_METHOD,
    ROOT,
    cpu_seconds,
    echo_process,
    scratch_database,
    scratch_redis_url,
    source_tree,
    tc_process,
)
from pymysql.constants import CLIENT

import atx.rm as rm
from atx.dsn import parse_mysql_url
from atx.grpc_channels import open_channel
from atx.testing import free_port, wait_for_serving
from atx.v1 import transaction_manager_pb2 as tm_pb2

ROWS = 1000
DEBIT = "UPDATE account SET balance = balance - 1 WHERE id = %s"
CREDIT = "UPDATE account SET balance = balance + 1 WHERE id = %s"
WORKLOADS = ("uniform", "hot")
#: --micro: untimed operations before each timed run of a kind.
WARM = 10
T = TypeVar("T")
NAN = float("nan")
#: The MariaDB here offers no TLS; PyMySQL >= 1.2 otherwise builds an SSL context (loads
#: the system CA bundle: ~0.1 s of CPU, much of it holding the GIL) for every connection
#: it opens, including those the RM opens for phase two (see docs/performance.md).
NO_TLS = {"ssl_disabled": True}


def connect(url: str, autocommit: bool) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(**parse_mysql_url(url).connect_kwargs(), autocommit=autocommit, **NO_TLS)


# --- one thread's connections, per kind ------------------------------------------------
class Plain:
    """Two local transactions: not atomic."""

    def __init__(self, urls: tuple[str, str], index: int, kind: str) -> None:
        self.a, self.b = (connect(url, autocommit=False) for url in urls)
        self.ca, self.cb = self.a.cursor(), self.b.cursor()

    def transfer(self, row: int) -> None:
        self.ca.execute(DEBIT, (row,))
        self.a.commit()
        self.cb.execute(CREDIT, (row,))
        self.b.commit()

    def close(self) -> None:
        self.a.close()
        self.b.close()


class XA(Plain):
    """MariaDB XA, two branches, driven by the application (no transaction manager)."""

    def __init__(self, urls: tuple[str, str], index: int, kind: str) -> None:
        super().__init__(urls, index, kind)
        self.a.autocommit(True)
        self.b.autocommit(True)
        self.prefix = f"atx-bench-{os.getpid()}-{index}-"
        self.count = 0

    def transfer(self, row: int) -> None:
        self.count += 1
        gtrid = self.prefix + str(self.count)
        # One gtrid, a branch qualifier per database: both live on the same server.
        branches = ((self.ca, DEBIT, (gtrid, "a")), (self.cb, CREDIT, (gtrid, "b")))
        started = []
        try:
            for cursor, sql, xid in branches:
                cursor.execute("XA START %s, %s", xid)
                started.append((cursor, xid))
                cursor.execute(sql, (row,))
                cursor.execute("XA END %s, %s", xid)
                cursor.execute("XA PREPARE %s, %s", xid)
        except BaseException:
            for cursor, xid in started:  # leave nothing prepared behind: it holds its locks
                with contextlib.suppress(pymysql.MySQLError):
                    cursor.execute("XA END %s, %s", xid)
                with contextlib.suppress(pymysql.MySQLError):
                    cursor.execute("XA ROLLBACK %s, %s", xid)
            raise
        for cursor, _sql, xid in branches:
            cursor.execute("XA COMMIT %s, %s", xid)


@rm.global_transactional(name="bench-transfer", timeout=30.0)
def _at_transfer(worker: AT, row: int) -> None:
    worker.ca.execute(DEBIT, (row,))
    worker.a.commit()
    worker.cb.execute(CREDIT, (row,))
    worker.b.commit()


class AT:
    """atx AT: one global transaction, a branch in each database."""

    def __init__(self, urls: tuple[str, str], index: int, kind: str) -> None:
        # A resource per kind and database: phase two reaches each kind's own databases.
        self.a, self.b = (
            rm.connect_mysql(
                url,
                resource_id=f"transfer-{kind}-{side}",
                create_undo_table=True,
                **({} if kind == "at-tls" else NO_TLS),
                **({"client_flag": CLIENT.MULTI_STATEMENTS} if kind == "at-multi" else {}),
            )
            for side, url in zip("ab", urls, strict=True)
        )
        self.ca, self.cb = self.a.cursor(), self.b.cursor()

    def transfer(self, row: int) -> None:
        _at_transfer(self, row)

    def close(self) -> None:
        self.a.close()
        self.b.close()


@rm.global_transactional(name="bench-transfer-async", timeout=30.0)
async def _at_async_transfer(worker: ATAsync, row: int) -> None:
    await worker.ca.execute(DEBIT, (row,))
    await worker.a.commit()
    await worker.cb.execute(CREDIT, (row,))
    await worker.b.commit()


_LOOP: list[asyncio.AbstractEventLoop] = []


def bench_loop() -> asyncio.AbstractEventLoop:
    """The one loop the async workers live on (their connections belong to it)."""
    if not _LOOP:
        _LOOP.append(asyncio.new_event_loop())
    return _LOOP[0]


class ATAsync:
    """atx AT from asyncio: the async proxies (asyncmy), one task per worker."""

    tasks = True

    def __init__(self, urls: tuple[str, str], index: int, kind: str) -> None:
        run = bench_loop().run_until_complete
        self.a, self.b = (
            run(rm.connect_asyncmy(url, resource_id=f"transfer-{kind}-{side}"))
            for side, url in zip("ab", urls, strict=True)
        )
        run(self.a.ensure_undo_table())
        run(self.b.ensure_undo_table())
        self.ca, self.cb = run(self.a.cursor()), run(self.b.cursor())

    async def transfer(self, row: int) -> None:
        await _at_async_transfer(self, row)

    def close(self) -> None:
        run = bench_loop().run_until_complete
        run(self.a.close())
        run(self.b.close())


# --- the transfer runs -----------------------------------------------------------------
@dataclass
class Sample:
    """One measurement: a kind and workload for ``seconds`` with every thread."""

    rate: float
    p50: float
    p99: float
    failed: int
    #: CPU seconds per committed transfer: this process (the application and its
    #: RM), the TC, MariaDB (NaN where there is none).
    cpu: tuple[float, float, float] = (NAN, NAN, NAN)


@dataclass
class Ledger:
    """Committed transfers of one kind, to check the balances against."""

    committed: int = 0
    on_row_one: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def mariadb_pid() -> int | None:
    """The local MariaDB server's process, to read its CPU time (None if not local)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in ("mariadbd", "mysqld"):
                    return int(entry.name)
    return None


def cpu_of(pids: list[int | None]) -> list[float]:
    """CPU seconds so far of each process (this one's includes its ended threads)."""
    return [
        NAN if pid is None else time.process_time() if pid == os.getpid() else cpu_seconds(pid)
        for pid in pids
    ]


def _sample(
    ledger: Ledger,
    elapsed: float,
    committed: list[int],
    row_one: list[int],
    failed: list[int],
    errors: dict[str, int],
    latencies: list[list[float]],
    cpu_after: list[float],
    cpu_before: list[float],
) -> Sample:
    """One run's figures (tx/s, latencies, CPU per transfer), its counts added to ``ledger``."""
    done = max(sum(committed), 1)
    cpu = [(after - before) / done for after, before in zip(cpu_after, cpu_before, strict=True)]
    ledger.committed += sum(committed)
    ledger.on_row_one += sum(row_one)
    ledger.failed += sum(failed)
    for name, count in errors.items():
        ledger.errors[name] = ledger.errors.get(name, 0) + count
    everything = [x for mine in latencies for x in mine]
    return Sample(
        sum(committed) / elapsed,
        percentile(everything, 0.5),
        percentile(everything, 0.99),
        sum(failed),
        (cpu[0], cpu[1], cpu[2]),
    )


def run_threads(
    workers: list[Any],
    workload: str,
    seconds: float,
    ledger: Ledger,
    tc_pid: int | None = None,
    db_pid: int | None = None,
) -> Sample:
    """Every worker in its own thread, transfers back to back for ``seconds``."""
    barrier = threading.Barrier(len(workers) + 1)
    latencies: list[list[float]] = [[] for _ in workers]
    committed = [0] * len(workers)
    row_one = [0] * len(workers)
    failed = [0] * len(workers)
    errors: dict[str, int] = {}
    stop_at = 0.0

    def body(index: int) -> None:
        worker = workers[index]
        draw = random.Random(index).randint
        mine = latencies[index]
        barrier.wait()
        clock = time.perf_counter
        while True:
            row = 1 if workload == "hot" else draw(1, ROWS)
            started = clock()
            if started >= stop_at:
                return
            try:
                worker.transfer(row)
            except Exception as error:
                failed[index] += 1
                name = type(error).__name__
                errors[name] = errors.get(name, 0) + 1
                continue
            mine.append(clock() - started)
            committed[index] += 1
            row_one[index] += row == 1

    threads = [threading.Thread(target=body, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    stop_at = time.perf_counter() + 1e9  # set for real once everyone is at the barrier
    pids = [os.getpid(), tc_pid, db_pid]
    barrier.wait()
    started = time.perf_counter()
    cpu_before = cpu_of(pids)
    stop_at = started + seconds
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return _sample(
        ledger, elapsed, committed, row_one, failed, errors, latencies, cpu_of(pids), cpu_before
    )


def run_tasks(
    workers: list[Any],
    workload: str,
    seconds: float,
    ledger: Ledger,
    tc_pid: int | None = None,
    db_pid: int | None = None,
) -> Sample:
    """run_threads for async workers: every worker a task on the one bench loop."""
    latencies: list[list[float]] = [[] for _ in workers]
    committed = [0] * len(workers)
    row_one = [0] * len(workers)
    failed = [0] * len(workers)
    errors: dict[str, int] = {}
    clock = time.perf_counter

    async def body(index: int, stop_at: float) -> None:
        worker = workers[index]
        draw = random.Random(index).randint
        mine = latencies[index]
        while True:
            row = 1 if workload == "hot" else draw(1, ROWS)
            started = clock()
            if started >= stop_at:
                return
            try:
                await worker.transfer(row)
            except Exception as error:
                failed[index] += 1
                name = type(error).__name__
                errors[name] = errors.get(name, 0) + 1
                continue
            mine.append(clock() - started)
            committed[index] += 1
            row_one[index] += row == 1

    async def all_tasks(stop_at: float) -> None:
        await asyncio.gather(*(body(i, stop_at) for i in range(len(workers))))

    pids = [os.getpid(), tc_pid, db_pid]
    started = clock()
    cpu_before = cpu_of(pids)
    bench_loop().run_until_complete(all_tasks(started + seconds))
    elapsed = clock() - started
    return _sample(
        ledger, elapsed, committed, row_one, failed, errors, latencies, cpu_of(pids), cpu_before
    )


def balances(url: str) -> tuple[int, int]:
    """(sum of balances, balance of row 1)."""
    with contextlib.closing(connect(url, autocommit=True)) as connection:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT COALESCE(SUM(balance), 0), MAX(CASE id WHEN 1 THEN balance END) FROM account"
        )
        total, one = cursor.fetchone()
        return int(total), int(one)


def undo_rows(urls: tuple[str, str]) -> int:
    count = 0
    for url in urls:
        with contextlib.closing(connect(url, autocommit=True)) as connection:
            cursor = connection.cursor()
            cursor.execute("SELECT COUNT(*) FROM undo_log")
            count += int(cursor.fetchone()[0])
    return count


def settle(urls: tuple[str, str], timeout: float = 60.0) -> None:
    """Wait (untimed) until phase two of the AT transfers is over: no undo row left."""
    deadline = time.monotonic() + timeout
    while undo_rows(urls) and time.monotonic() < deadline:
        time.sleep(0.05)
    channel = rm.get_runtime()
    if channel is not None:
        channel.drain(timeout)


def point_rm_at(address: str) -> None:
    rm.configure(tc_addresses=[address], application_id="bench-transfer")
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(20), f"RM not attached to {address}"


def transfers(args: argparse.Namespace) -> None:
    every: dict[str, type[Any]] = {
        "plain": Plain,
        "xa": XA,
        "at": AT,
        "at-multi": AT,
        "at-async": ATAsync,
    }
    kinds = {kind: every[kind] for kind in args.kinds.split(",")}
    if args.baseline:
        kinds["at-base"] = AT
    if args.pymysql_tls:
        kinds["at-tls"] = AT
    with contextlib.ExitStack() as stack:
        store = args.store
        if store == "redis":
            store = stack.enter_context(scratch_redis_url())
        elif store == "sqlite":
            store = None
        tcs = {"at": stack.enter_context(tc_process(store))}
        if args.baseline:
            tree = stack.enter_context(source_tree(args.baseline))
            base_store = stack.enter_context(scratch_redis_url()) if args.store == "redis" else None
            tcs["at-base"] = stack.enter_context(tc_process(base_store, tree))
        if "at-tls" in kinds:
            tcs["at-tls"] = tcs["at"]
        for same_tc in ("at-async", "at-multi"):
            if same_tc in kinds:
                tcs[same_tc] = tcs["at"]
        # Each kind has its own pair of databases: its balances check its transfers alone.
        urls: dict[str, tuple[str, str]] = {}
        for kind in kinds:
            a = stack.enter_context(scratch_database(ROWS, "account", "balance"))
            b = stack.enter_context(scratch_database(ROWS, "account", "balance"))
            urls[kind] = (a, b)
        point_rm_at(tcs["at"].address)
        workers = {
            kind: [cls(urls[kind], i, kind) for i in range(args.threads)]
            for kind, cls in kinds.items()
        }
        stack.callback(lambda: [w.close() for ws in workers.values() for w in ws])
        ledgers = {kind: Ledger() for kind in kinds}
        samples: dict[tuple[str, str], list[Sample]] = {}
        runs = [(kind, workload) for workload in WORKLOADS for kind in kinds]
        print(
            f"# {args.rounds} rounds x {args.seconds:.1f} s per kind and workload, "
            f"{args.threads} threads per kind, TC store {args.store}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        current_tc = "at"
        db_pid = mariadb_pid()

        def measure(kind: str, workload: str, seconds: float) -> Sample:
            nonlocal current_tc
            if kind in tcs and tcs[kind].address != tcs[current_tc].address:
                point_rm_at(tcs[kind].address)
                current_tc = kind
            tc_pid = pid_of(tcs[kind]) if kind in tcs else None
            run = run_tasks if getattr(kinds[kind], "tasks", False) else run_threads
            sample = run(workers[kind], workload, seconds, ledgers[kind], tc_pid, db_pid)
            if kind in tcs:
                settle(urls[kind])
            return sample

        for kind, workload in runs:  # warm-up: connections, caches, the TC's first sessions
            measure(kind, workload, min(1.0, args.seconds))
        for ledger in ledgers.values():
            ledger.failed = 0
            ledger.errors.clear()
        for round_ in range(args.rounds):
            for kind, workload in rotated(runs, round_):
                sample = measure(kind, workload, args.seconds)
                samples.setdefault((kind, workload), []).append(sample)
                print(
                    f"  round {round_ + 1} {kind:7s} {workload:7s} {sample.rate:7.0f} tx/s "
                    f"p50 {sample.p50 * 1e3:6.2f} ms p99 {sample.p99 * 1e3:6.2f} ms"
                    + (f" ({sample.failed} failed)" if sample.failed else ""),
                    flush=True,
                )
        for kind in kinds:
            if kind in tcs:
                if tcs[kind].address != tcs[current_tc].address:
                    point_rm_at(tcs[kind].address)
                    current_tc = kind
                settle(urls[kind])
        report(samples, kinds, ledgers, urls)
        rm.shutdown()


def cpu_text(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * 1e3:.2f}"


def report(
    samples: dict[tuple[str, str], list[Sample]],
    kinds: dict[str, Any],
    ledgers: dict[str, Ledger],
    urls: dict[str, tuple[str, str]],
) -> None:
    median = statistics.median
    print()
    print(
        "| workload | kind | tx/s | p50 ms | p99 ms | failed | AT/kind tx/s | AT/kind p50 "
        "| CPU ms per transfer: app+RM / TC / MariaDB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for workload in WORKLOADS:
        at = samples["at", workload]
        for kind in kinds:
            mine = samples[kind, workload]
            if kind == "at":
                ratio = ratio_p50 = "-"
            else:
                pairs = list(zip(at, mine, strict=True))
                ratio = f"{median(a.rate / k.rate for a, k in pairs):.2f}"
                ratio_p50 = f"{median(a.p50 / k.p50 for a, k in pairs):.2f}"
            print(
                f"| {workload} | {kind} | {median(s.rate for s in mine):.0f} "
                f"| {median(s.p50 for s in mine) * 1e3:.2f} "
                f"| {median(s.p99 for s in mine) * 1e3:.2f} "
                f"| {sum(s.failed for s in mine)} | {ratio} | {ratio_p50} "
                f"| {' / '.join(cpu_text(median(s.cpu[i] for s in mine)) for i in range(3))} |"
            )
    print()
    for kind, ledger in ledgers.items():
        (sum_a, one_a), (sum_b, one_b) = (balances(url) for url in urls[kind])
        expected = (-ledger.committed, -ledger.on_row_one, ledger.committed, ledger.on_row_one)
        verdict = "ok" if (sum_a, one_a, sum_b, one_b) == expected else "MISMATCH (lost updates)"
        print(
            f"balances {kind}: {verdict}: {ledger.committed} committed transfers "
            f"({ledger.on_row_one} on row 1); A sum {sum_a}, row 1 {one_a}; "
            f"B sum {sum_b}, row 1 {one_b}"
            + (f"; failed {ledger.failed} {ledger.errors}" if ledger.failed else "")
        )


# --- the micro targets -----------------------------------------------------------------
Op = Callable[[], None]


def empty_tx(address: str) -> tuple[Op, Callable[[], None]]:
    """Begin + Commit with the RM's TC client (what ``@global_transactional`` sends)."""
    client = rm.TCClient([address], application_id="bench-micro")

    def op() -> None:
        client.commit(client.begin("bench-empty", 60_000))

    return op, client.close


def echo_rpc(address: str) -> tuple[Op, Callable[[], None]]:
    """A bare unary echo on the same client stack, a CommitRequest's bytes each way."""
    channel = open_channel(address)
    call = channel.unary_unary(ECHO_METHOD)
    payload = tm_pb2.CommitRequest(xid="127.0.0.1:8091:1234567890123").SerializeToString()

    def op() -> None:
        call(payload, timeout=10.0)

    return op, channel.close


@contextlib.contextmanager
def ceiling_process(name: str) -> Iterator[tuple[str, int]]:
    """bench_tc.py's ceiling server ``name`` (canned, logic, memory) on a free port."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_tc.py"),
            "--serve-ceiling",
            name,
            "--port",
            str(port),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        wait_for_serving(f"127.0.0.1:{port}")
        yield f"127.0.0.1:{port}", process.pid
    finally:
        process.kill()
        process.wait()


def micro(args: argparse.Namespace) -> None:
    from bench_branch import Bench

    n = args.n
    with contextlib.ExitStack() as stack:
        redis_store = stack.enter_context(scratch_redis_url())
        echo = stack.enter_context(echo_process())
        tc_sqlite = stack.enter_context(tc_process())
        tc_redis = stack.enter_context(tc_process(redis_store))
        servers: dict[str, tuple[Callable[[str], tuple[Op, Callable[[], None]]], str, int]] = {
            "echo": (echo_rpc, echo.address, pid_of(echo)),
            "empty/sqlite": (empty_tx, tc_sqlite.address, pid_of(tc_sqlite)),
            "empty/redis": (empty_tx, tc_redis.address, pid_of(tc_redis)),
        }
        if args.baseline:
            tree = stack.enter_context(source_tree(args.baseline))
            base_redis = stack.enter_context(scratch_redis_url())
            for label, store in (("empty/sqlite@base", None), ("empty/redis@base", base_redis)):
                process = stack.enter_context(tc_process(store, tree))
                servers[label] = (empty_tx, process.address, pid_of(process))
        if args.ceilings:
            for name, label in (("canned", "canned TC"), ("logic", "TC, memory store")):
                address, pid = stack.enter_context(ceiling_process(name))
                servers[label] = (empty_tx, address, pid)
        ops: dict[str, tuple[Op, int]] = {}
        for label, (make, address, pid) in servers.items():
            op, close = make(address)
            stack.callback(close)
            ops[label] = (op, pid)

        def timed(op: Op, pid: int) -> tuple[float, float]:
            for _ in range(WARM):  # untimed: wakes the server (it idled through the others)
                op()
            cpu = cpu_seconds(pid)
            started = time.perf_counter()
            for _ in range(n):
                op()
            return (time.perf_counter() - started) / n, (cpu_seconds(pid) - cpu) / n

        kinds: dict[str, Callable[[], tuple[float, float]]] = {
            label: (lambda op=op, pid=pid: timed(op, pid)) for label, (op, pid) in ops.items()
        }
        if args.ceilings:  # the Redis store's floor: its round trip, from Python
            client = redis.Redis.from_url(redis_store.split("?")[0])
            stack.callback(client.close)
            kinds["Redis round trip (redis-py PING)"] = lambda: (timed_plain(client.ping, n), NAN)
        if not args.no_branch:
            url = stack.enter_context(scratch_database(ROWS))
            point_rm_at(tc_sqlite.address)
            bench = Bench(url, echo.address, n)
            stack.callback(bench.close)
            kinds["plain local tx"] = lambda: (bench.plain()[0], NAN)
            kinds["AT branch"] = lambda: (bench.at_branch()[0], NAN)
        else:
            point_rm_at(tc_sqlite.address)

        def empty_launch() -> None:
            with rm.global_transaction("bench-empty"):
                pass

        # What an application feels: a launcher's XID is its own, so an empty global
        # transaction never reaches the TC (empty/* above are the TC's Begin + Commit).
        kinds["empty tx, @global_transactional"] = lambda: (timed_plain(empty_launch, n), NAN)
        print(
            f"# {args.rounds} interleaved rounds of {n} operations per kind, {os.cpu_count()} CPUs,"
            f" load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        for run in kinds.values():  # warm-up
            run()
        results: dict[str, list[tuple[float, float]]] = {label: [] for label in kinds}
        for round_ in range(args.rounds):
            for label in rotated(list(kinds), round_):
                results[label].append(kinds[label]())
        channel = rm.get_runtime()
        if channel is not None:
            channel.drain(30)
        rm.shutdown()
    micro_report(results)


def timed_plain(op: Callable[[], object], n: int) -> float:
    for _ in range(WARM):
        op()
    started = time.perf_counter()
    for _ in range(n):
        op()
    return (time.perf_counter() - started) / n


def rotated(items: list[T], round_: int) -> list[T]:
    """Round ``round_``'s order: each round starts one further along. (Reversing every
    other round would measure the last kind twice in a row at each turn, warm: that
    favoured it by 5-10 % in an A/B of two identical TCs.)"""
    start = round_ % len(items)
    return items[start:] + items[:start]


def pid_of(process: Any) -> int:
    assert process.process is not None
    return int(process.process.pid)


def micro_report(results: dict[str, list[tuple[float, float]]]) -> None:
    median = statistics.median

    def ratio(label: str, base: str) -> str:
        per_round = sorted(a[0] / b[0] for a, b in zip(results[label], results[base], strict=True))
        return f"{median(per_round):.2f}x (rounds {per_round[0]:.2f}-{per_round[-1]:.2f})"

    print()
    print(
        "| operation | per op (median) | server CPU per op | ratio (median of per-round ratios) |"
    )
    print("|---|---|---|---|")
    for label, rounds in results.items():
        if label == "plain local tx":
            against = "-"
        elif label == "AT branch":
            against = ratio(label, "plain local tx") + " plain local tx (target <= 3x)"
        elif label == "echo":
            against = "1 (the yardstick)"
        else:
            target = " (target <= 2.5x)" if label.startswith("empty/") else ""
            against = ratio(label, "echo") + " echo" + target
        cpu = median(r[1] for r in rounds)
        cpu_text = "-" if cpu != cpu else f"{cpu * 1e6:.0f} us"
        print(f"| {label} | {median(r[0] for r in rounds) * 1e3:.3f} ms | {cpu_text} | {against} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per kind and workload")
    parser.add_argument("--threads", type=int, default=8, help="per kind")
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument(
        "--kinds", default="plain,xa,at", help="transfers: which of plain, xa, at (at: required)"
    )
    parser.add_argument(
        "--pymysql-tls",
        action="store_true",
        help="also at-tls: AT with PyMySQL's default connect (TLS preferred: it builds an"
        " SSL context for every connection, the RM's phase-two connections included)",
    )
    parser.add_argument("--micro", action="store_true", help="the two micro targets instead")
    parser.add_argument("--n", type=int, default=300, help="--micro: operations per round")
    parser.add_argument("--baseline", metavar="REF", help="also a TC running git revision REF")
    parser.add_argument(
        "--ceilings", action="store_true", help="--micro: also the canned and memory-store TCs"
    )
    parser.add_argument(
        "--no-branch", action="store_true", help="--micro: skip the AT branch vs plain pair"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.micro:
        micro(args)
    else:
        transfers(args)


if __name__ == "__main__":
    main()
