"""An AT branch vs a plain local transaction on MariaDB (target: <= 3x).

The AT branch is a one-row UPDATE by primary key through the proxy inside a
global transaction: before image, UPDATE, after image, BranchRegister RPC to a
real TC, undo-log INSERT, local COMMIT. The baseline is the same UPDATE and
COMMIT on a raw PyMySQL connection. Global begin/commit are outside the timing
(they belong to the transaction, not to the branch); 50 branches per transaction.

Run: .venv/bin/python bench/bench_branch.py   (ATX_BENCH_N=2000 for more rounds)
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pymysql
from _common import scratch_database, tc_process

import rm
from atx.dsn import parse_mysql_url

N = int(os.environ.get("ATX_BENCH_N", "1000"))
PER_TRANSACTION = 50
ROWS = 1000
SQL = "UPDATE t SET v = v + 1 WHERE id = %s"


def plain(url: str) -> float:
    connection = pymysql.connect(**parse_mysql_url(url).connect_kwargs(), autocommit=False)
    cursor = connection.cursor()
    started = time.perf_counter()
    for i in range(N):
        cursor.execute(SQL, (i % ROWS + 1,))
        connection.commit()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed / N


def at_branch(url: str) -> float:
    proxy = rm.connect_mysql(url, resource_id="bench-branch", create_undo_table=True)
    channel = rm.ensure_channel()
    assert channel is not None and channel.wait_connected(10)
    cursor = proxy.cursor()
    tc = rm.get_tc_client()
    total = 0.0
    done = 0
    while done < N:
        xid = tc.begin("bench", 60_000)
        with rm.bind_xid(xid):
            started = time.perf_counter()
            for _ in range(min(PER_TRANSACTION, N - done)):
                cursor.execute(SQL, (done % ROWS + 1,))
                proxy.commit()
                done += 1
            total += time.perf_counter() - started
        tc.commit(xid)
    channel.drain(30)
    proxy.close()
    return total / N


def register_only() -> float:
    """The BranchRegister RPC alone (a real TC), for the breakdown."""
    tc = rm.get_tc_client()
    total = 0.0
    for start in range(0, N, PER_TRANSACTION):
        xid = tc.begin("bench-register", 60_000)
        started = time.perf_counter()
        for i in range(start, min(start + PER_TRANSACTION, N)):
            tc.branch_register(xid, "bench-register", f"t:{i % ROWS + 1}")
        total += time.perf_counter() - started
        tc.rollback(xid)
    return total / N


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    with scratch_database(ROWS) as url, tc_process() as tc:
        rm.configure(tc_addresses=[tc.address], application_id="bench")
        plain(url)  # warm-up
        base = plain(url)
        branch = at_branch(url)
        register = register_only()
        rm.shutdown()
    print(f"plain local transaction (UPDATE by pk + COMMIT): {base * 1e3:.3f} ms/op")
    print(f"AT branch (images + BranchRegister + undo log + COMMIT): {branch * 1e3:.3f} ms/op")
    print(f"  of which the BranchRegister RPC alone: {register * 1e3:.3f} ms/op")
    print(f"ratio: {branch / base:.2f}x (target <= 3x), N={N}")


if __name__ == "__main__":
    main()
