"""An RM process that exits right after phase two leaves no undo row behind.

A normal exit flushes the queued undo deletes (atexit); a process that dies
before it does leaves rows that the next RM's sweep deletes once the TC
reports their transactions over, within minutes rather than the save days.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import atx.rm as rm
from atx.rm.tc_client import TCClient
from atx.status import GlobalStatus
from tests.rm.conftest import Database, wait_until

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 3
PER_WORKER = 20


def _run_workers(db: Database, url: str, tc_address: str, mode: str) -> None:
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.rm.exit_worker",
                url,
                db.resource_id,
                tc_address,
                str(PER_WORKER),
                mode,
            ],
            cwd=ROOT,
        )
        for _ in range(WORKERS)
    ]
    assert [w.wait(120) for w in workers] == [0] * WORKERS


def _normal_undo_rows(db: Database) -> int:
    return int(db.query("SELECT COUNT(*) FROM undo_log WHERE log_status = 0")[0][0])


def _all_committed(tc: TCClient, db: Database) -> bool:
    xids = {row[0] for row in db.query("SELECT xid FROM undo_log")}
    return all(tc.get_status(x) in (GlobalStatus.COMMITTED, GlobalStatus.FINISHED) for x in xids)


def test_a_clean_exit_flushes_the_undo_deletes(mariadb_url: str, tc: TCClient) -> None:
    db = Database("mariadb", mariadb_url, f"maria-exit-{uuid.uuid4().hex[:6]}")
    db.setup_accounts(3)
    rm.shutdown()  # no RM in this process: only the workers may delete their rows
    _run_workers(db, mariadb_url, rm.get_config().tc_addresses[0], "clean")
    assert sum(balance for _, balance, _ in db.accounts()) == 300 + WORKERS * PER_WORKER
    # A branch whose commit the RM acknowledged before it exited has no undo row left.
    # (One whose BranchCommit came after the exit waits at the TC, AsyncCommitting,
    # for the next RM of this database: its row is still needed until then.)
    rows = db.query("SELECT xid FROM undo_log WHERE log_status = 0")
    done = (GlobalStatus.COMMITTED, GlobalStatus.FINISHED)
    assert [xid for (xid,) in rows if tc.get_status(xid) in done] == []


def test_undo_rows_left_by_a_dead_process_are_swept(mariadb_url: str, tc: TCClient) -> None:
    db = Database("mariadb", mariadb_url, f"maria-dead-{uuid.uuid4().hex[:6]}")
    db.setup_accounts(3)
    address = rm.get_config().tc_addresses[0]
    rm.shutdown()
    _run_workers(db, mariadb_url, address, "abrupt")
    assert _all_committed(tc, db)
    left = _normal_undo_rows(db)
    assert left == WORKERS * PER_WORKER  # acknowledged, never deleted
    # The next RM for this database sweeps them: the TC reports their transactions over.
    rm.configure(tc_addresses=[address], undo_log_sweep_interval=1, client_id=uuid.uuid4().hex)
    conn = db.connect()
    try:
        wait_until(lambda: _normal_undo_rows(db) == 0, 60, f"{left} left-behind undo rows swept")
    finally:
        conn.close()
