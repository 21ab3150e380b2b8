"""A worker process: N global transactions, then it exits at once (tests/rm/test_clean_exit.py).

python -m tests.rm.exit_worker MYSQL_URL RESOURCE_ID TC_ADDRESS N clean|abrupt

``clean`` returns from main (atexit runs: queued undo deletes are flushed);
``abrupt`` acknowledges phase two but never deletes, waits until the TC reports
every transaction committed, then ends with os._exit(0): a process killed after
it answered BranchCommit and before its delete loop ran.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

import atx.rm as rm
from atx.status import GlobalStatus


def main(url: str, resource_id: str, tc: str, count: int, mode: str) -> None:
    rm.configure(tc_addresses=[tc], application_id="exit-worker", client_id=uuid.uuid4().hex)
    conn = rm.connect_mysql(url, resource_id=resource_id)
    runtime = rm.ensure_runtime()
    assert runtime is not None and runtime.wait_connected(20)

    xids: list[str] = []
    if mode == "abrupt":
        runtime.deleter.add = lambda *_: None  # type: ignore[method-assign]  # the crash point

    @rm.global_transactional(name="exit-worker")
    def bump(row: int) -> None:
        with conn.cursor() as cur:
            cur.execute("UPDATE account SET balance = balance + 1 WHERE id = %s", (row,))
        conn.commit()
        xids.append(rm.require_xid())

    for n in range(count):
        bump(n % 3 + 1)
    if mode == "abrupt":
        tc = rm.get_tc_client()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(
                tc.get_status(x) in (GlobalStatus.COMMITTED, GlobalStatus.FINISHED) for x in xids
            ):
                break
            time.sleep(0.1)
        os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
