"""An AT branch vs a plain local transaction on MariaDB (target: <= 3x), with a breakdown.

The AT branch is a one-row UPDATE by primary key through the proxy inside a
global transaction: before image, UPDATE, after image, BranchRegister RPC to a
real TC, undo-log INSERT, local COMMIT. The baseline is the same UPDATE and
COMMIT on a raw PyMySQL connection. Global begin/commit are outside the timing
(they belong to the transaction, not to the branch); 50 branches per transaction.

For the breakdown it also measures, interleaved with the above:
- "DB floor": the branch's five statements (SELECT ... FOR UPDATE, UPDATE,
  SELECT by pk, undo INSERT, COMMIT) sent by raw PyMySQL, no RM code, no RPC;
- the same with a real BranchRegister RPC before the undo INSERT: the AT branch
  without any RM code, so "AT - this" is the RM's own cost;
- the AT branch again, but each global transaction's phase two (BranchCommit over
  the Attach stream, undo-row deletion) is waited for, untimed, before the next
  begins: the difference is the interference of asynchronous phase two;
- the two floors again with MySQL multi-statements (``CLIENT.MULTI_STATEMENTS``):
  the images and the UPDATE in one round trip, the undo INSERT and the COMMIT in
  another (the issue's "fewer database round trips" direction, measured without
  building it: the flag lets any SQL sent on the connection run several statements);
- the BranchRegister RPC alone against the same TC;
- a bare echo RPC of the same size on the same gRPC stack (grpc.aio server in
  its own process, the RM's sync client), which separates gRPC cost from TC cost;
- main-thread CPU time per AT branch and per plain transaction (time.thread_time).

Each figure is the median over ROUNDS rounds of N operations; the kinds take turns
in each round so that the machine's noise hits them alike.

Run: .venv/bin/python bench/bench_branch.py   (ATX_BENCH_N=300 per round, ATX_BENCH_ROUNDS=7)
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc
import pymysql
from _common import ECHO_METHOD, echo_process, scratch_database, tc_process

import atx.rm as rm
from atx.dsn import parse_mysql_url
from atx.errors import GlobalTransactionNotFoundError
from atx.v1 import resource_manager_pb2 as rm_pb2

N = int(os.environ.get("ATX_BENCH_N", "300"))
ROUNDS = int(os.environ.get("ATX_BENCH_ROUNDS", "7"))
PER_TRANSACTION = 50
ROWS = 1000
SQL = "UPDATE t SET v = v + 1 WHERE id = %s"
RESOURCE = "bench-branch"  # every branch registers for the proxy's resource: our RM ends them

Timing = tuple[float, float]  # (wall seconds per op, main-thread CPU seconds per op)


def timed(run: Callable[[], None], n: int) -> Timing:
    wall, cpu = time.perf_counter(), time.thread_time()
    run()
    return (time.perf_counter() - wall) / n, (time.thread_time() - cpu) / n


class Bench:
    """Each method runs ``n`` operations of one kind and returns its :data:`Timing`
    (bench/bench_transfer.py --micro uses ``plain`` and ``at_branch`` too)."""

    def __init__(self, url: str, echo_address: str, n: int = N) -> None:
        self.n = n
        kwargs = parse_mysql_url(url).connect_kwargs()
        self.raw = pymysql.connect(**kwargs, autocommit=False)
        self.raw_cursor = self.raw.cursor()
        self.multi = pymysql.connect(
            **kwargs, autocommit=False, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS
        )
        self.multi_cursor = self.multi.cursor()
        self.proxy = rm.connect_mysql(url, resource_id=RESOURCE, create_undo_table=True)
        self.proxy_cursor = self.proxy.cursor()
        # The same resource, opened with multi-statements: the RM then sends the undo
        # INSERT and the COMMIT in one round trip.
        self.proxy_multi = rm.connect_mysql(
            url, resource_id=RESOURCE, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS
        )
        self.proxy_multi_cursor = self.proxy_multi.cursor()
        self.tc = rm.get_tc_client()
        self.echo_channel = grpc.insecure_channel(echo_address)
        self.echo = self.echo_channel.unary_unary(ECHO_METHOD)
        self.payload = rm_pb2.BranchRegisterRequest(
            xid="127.0.0.1:8091:1234567890123", resource_id="bench-register", lock_keys="t:1"
        ).SerializeToString()
        self.row = 0
        self.floor_id = 0
        self.register_id = 0

    def _next_row(self) -> int:
        self.row = self.row % ROWS + 1
        return self.row

    def plain(self) -> Timing:
        cursor, connection = self.raw_cursor, self.raw

        def run() -> None:
            for _ in range(self.n):
                cursor.execute(SQL, (self._next_row(),))
                connection.commit()

        return timed(run, self.n)

    def db_floor(self) -> Timing:
        return self._floor(with_rpc=False)

    def floor_rpc(self) -> Timing:
        return self._floor(with_rpc=True)

    def _floor(self, with_rpc: bool) -> Timing:
        cursor, connection = self.raw_cursor, self.raw
        blob = b"x" * 300  # about the size of this branch's rollback_info
        xid = self.tc.begin("bench-floor", 60_000) if with_rpc else ""

        def run() -> None:
            for _ in range(self.n):
                row = self._next_row()
                self.floor_id += 1
                if with_rpc:
                    self.tc.branch_register(xid, RESOURCE, f"floor:{self.floor_id}")
                cursor.execute("SELECT `id`, `v` FROM `t` WHERE id = %s FOR UPDATE", (row,))
                cursor.fetchall()
                cursor.execute(SQL, (row,))
                cursor.execute("SELECT `id`, `v` FROM `t` WHERE `id` IN (%s)", (row,))
                cursor.fetchall()
                cursor.execute(
                    "INSERT INTO `undo_log` (branch_id, xid, context, rollback_info, log_status,"
                    " log_created, log_modified) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        self.floor_id,
                        "floor",
                        "serializer=json",
                        blob,
                        0,
                        "2026-01-01",
                        "2026-01-01",
                    ),
                )
                connection.commit()

        result = timed(run, self.n)
        cursor.execute("DELETE FROM `undo_log` WHERE xid = 'floor'")
        connection.commit()
        if with_rpc:  # committed, so that our RM ends it at once: no TC retries later
            self.tc.commit(xid)
            self._settle(xid)
        return result

    def floor_multi(self) -> Timing:
        return self._floor_multi(with_rpc=False)

    def floor_multi_rpc(self) -> Timing:
        return self._floor_multi(with_rpc=True)

    def _floor_multi(self, with_rpc: bool) -> Timing:
        cursor, connection = self.multi_cursor, self.multi
        blob = b"x" * 300
        xid = self.tc.begin("bench-floor-multi", 60_000) if with_rpc else ""
        images = (
            "SELECT `id`, `v` FROM `t` WHERE id = %s FOR UPDATE; "
            + SQL
            + "; SELECT `id`, `v` FROM `t` WHERE `id` IN (%s)"
        )
        undo_commit = (
            "INSERT INTO `undo_log` (branch_id, xid, context, rollback_info, log_status,"
            " log_created, log_modified) VALUES (%s, %s, %s, %s, %s, %s, %s); COMMIT"
        )

        def run() -> None:
            for _ in range(self.n):
                row = self._next_row()
                self.floor_id += 1
                cursor.execute(images, (row, row, row))
                cursor.fetchall()
                while cursor.nextset():
                    cursor.fetchall()
                if with_rpc:
                    self.tc.branch_register(xid, RESOURCE, f"floor:{self.floor_id}")
                cursor.execute(
                    undo_commit,
                    (
                        self.floor_id,
                        "floor",
                        "serializer=json",
                        blob,
                        0,
                        "2026-01-01",
                        "2026-01-02",
                    ),
                )
                while cursor.nextset():
                    pass

        result = timed(run, self.n)
        cursor.execute("DELETE FROM `undo_log` WHERE xid = 'floor'")
        connection.commit()
        if with_rpc:
            self.tc.commit(xid)
            self._settle(xid)
        return result

    def at_branch(self) -> Timing:
        return self._at(settle=False)

    def at_multi(self) -> Timing:
        return self._at(settle=False, multi=True)

    def at_settled(self) -> Timing:
        return self._at(settle=True)

    def _settle(self, xid: str) -> None:
        """Wait (untimed) until phase two of ``xid`` is over: no background work left."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.tc.get_status(xid).is_final:
                    break
            except GlobalTransactionNotFoundError:
                break
            time.sleep(0.002)
        channel = rm.ensure_runtime()
        assert channel is not None
        channel.drain(10)

    def _at(self, settle: bool, multi: bool = False) -> Timing:
        proxy, cursor = (
            (self.proxy_multi, self.proxy_multi_cursor)
            if multi
            else (self.proxy, self.proxy_cursor)
        )
        wall = cpu = 0.0
        done = 0
        while done < self.n:
            xid = self.tc.begin("bench", 60_000)
            count = min(PER_TRANSACTION, self.n - done)
            with rm.bind_xid(xid):
                started, cpu_started = time.perf_counter(), time.thread_time()
                for _ in range(count):
                    cursor.execute(SQL, (self._next_row(),))
                    proxy.commit()
                wall += time.perf_counter() - started
                cpu += time.thread_time() - cpu_started
            done += count
            self.tc.commit(xid)
            if settle:
                self._settle(xid)
        return wall / self.n, cpu / self.n

    def register(self) -> Timing:
        wall = cpu = 0.0
        for start in range(0, self.n, PER_TRANSACTION):
            xid = self.tc.begin("bench-register", 60_000)
            started, cpu_started = time.perf_counter(), time.thread_time()
            for _ in range(start, min(start + PER_TRANSACTION, self.n)):
                self.register_id += 1  # fresh keys: the last round's locks may still be held
                self.tc.branch_register(xid, RESOURCE, f"reg:{self.register_id}")
            wall += time.perf_counter() - started
            cpu += time.thread_time() - cpu_started
            self.tc.commit(xid)
            self._settle(xid)
        return wall / self.n, cpu / self.n

    def echo_rpc(self) -> Timing:
        echo, payload = self.echo, self.payload

        def run() -> None:
            for _ in range(self.n):
                echo(payload, timeout=10.0)

        return timed(run, self.n)

    def close(self) -> None:
        self.echo_channel.close()
        self.proxy.close()
        self.raw.close()
        self.multi.close()
        self.proxy_multi.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    kinds = [
        "plain",
        "db_floor",
        "floor_rpc",
        "floor_multi",
        "floor_multi_rpc",
        "at_branch",
        "at_multi",
        "at_settled",
        "register",
        "echo_rpc",
    ]
    results: dict[str, list[Timing]] = {k: [] for k in kinds}
    with scratch_database(ROWS) as url, tc_process() as tc, echo_process() as echo:
        rm.configure(tc_addresses=[tc.address], application_id="bench")
        channel = rm.ensure_runtime()
        assert channel is not None and channel.wait_connected(10)
        bench = Bench(url, echo.address)
        for kind in kinds:  # warm-up: caches, connections, the TC's first transaction
            getattr(bench, kind)()
        for round_ in range(ROUNDS):
            order = kinds if round_ % 2 == 0 else kinds[::-1]
            for kind in order:
                results[kind].append(getattr(bench, kind)())
        channel.drain(30)
        bench.close()
        rm.shutdown()

    def median(kind: str, index: int = 0) -> float:
        return statistics.median(t[index] for t in results[kind])

    base = median("plain")
    ratios = sorted(
        a[0] / p[0] for a, p in zip(results["at_branch"], results["plain"], strict=True)
    )
    line: Any = "{:<58} {:>8.3f} ms/op  (CPU {:>6.3f} ms)"
    print(f"N={N} per round, median of {ROUNDS} rounds")
    print(
        line.format(
            "plain local transaction (UPDATE by pk + COMMIT)", base * 1e3, median("plain", 1) * 1e3
        )
    )
    for kind, label in [
        ("db_floor", "DB floor: the branch's 5 statements, raw PyMySQL"),
        ("floor_rpc", "DB floor + BranchRegister RPC (the AT branch minus RM code)"),
        ("floor_multi", "DB floor, multi-statements: 2 round trips"),
        ("floor_multi_rpc", "DB floor, multi-statements, + BranchRegister RPC"),
        ("at_branch", "AT branch (images, BranchRegister, undo INSERT, COMMIT)"),
        ("at_multi", "AT branch, multi-statements (undo INSERT + COMMIT: 1 round trip)"),
        ("at_settled", "AT branch, previous phase two settled (untimed) first"),
        ("register", "BranchRegister RPC alone"),
        ("echo_rpc", "bare echo RPC (same client, grpc.aio server)"),
    ]:
        print(line.format(label, median(kind) * 1e3, median(kind, 1) * 1e3))
    print(
        f"ratio AT / plain: {statistics.median(ratios):.2f}x (median of per-round ratios;"
        f" min {ratios[0]:.2f}x, max {ratios[-1]:.2f}x; target <= 3x)"
    )
    rm_work = median("at_branch") - median("floor_rpc")
    print(f"RM's own work (AT - floor with RPC): {rm_work * 1e3:.3f} ms/op wall,", end=" ")
    print(f"{(median('at_branch', 1) - median('floor_rpc', 1)) * 1e3:.3f} ms/op CPU")
    print(
        f"floor with RPC / plain (the bound for any AT client): {median('floor_rpc') / base:.2f}x"
    )
    multi = sorted(a[0] / p[0] for a, p in zip(results["at_multi"], results["plain"], strict=True))
    print(f"ratio AT multi-statements / plain: {statistics.median(multi):.2f}x")
    print(
        "floor with RPC, multi-statements / plain (the bound with 2 DB round trips):"
        f" {median('floor_multi_rpc') / base:.2f}x"
    )


if __name__ == "__main__":
    main()
