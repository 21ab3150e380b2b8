"""A process killed between its first branch registration (which began the
transaction at the TC: the XID was made by the launcher) and the local commit: the
TC rolls the transaction back at its timeout, its locks go, and no data changed."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import atx.rm as rm
from atx.rm.tc_client import TCClient
from atx.status import GlobalStatus
from tests.rm.conftest import Database, wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_the_tc_rolls_back_a_transaction_whose_launcher_died(
    mariadb_url: str, tc: TCClient, tmp_path: Path
) -> None:
    db = Database("mariadb", mariadb_url, f"maria-crash-{uuid.uuid4().hex[:6]}")
    db.setup_accounts(1)
    rm.shutdown()  # no RM in this process: the next one to attach rolls the branch back
    xid_file = tmp_path / "xid"
    worker = subprocess.run(
        [sys.executable, "-m", "tests.rm.crash_worker", mariadb_url, db.resource_id,
         rm.get_config().tc_addresses[0], str(xid_file)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60, check=False,
    )  # fmt: skip
    assert worker.returncode == 9
    xid = xid_file.read_text()
    assert tc.get_status(xid) == GlobalStatus.BEGIN  # the registration began it
    # An RM for the database attaches again; the timeout job rolls the transaction back.
    db.connect().close()
    runtime = rm.ensure_runtime()
    assert runtime is not None and runtime.wait_connected(10)
    wait_until(
        lambda: tc.get_status(xid) == GlobalStatus.TIMEOUT_ROLLBACKED, 30, "the timeout rollback"
    )
    assert db.accounts() == [(1, 100, "a1")]
    # The undo found no undo row and left the anti-suspension placeholder.
    assert db.query("SELECT log_status FROM undo_log WHERE xid = %s", (xid,)) == [(1,)]
