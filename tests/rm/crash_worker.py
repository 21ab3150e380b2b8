"""A worker process that dies between a branch's registration and its local commit
(tests/rm/test_crash_after_register.py).

python -m tests.rm.crash_worker MYSQL_URL RESOURCE_ID TC_ADDRESS XID_FILE

Its global transaction (1 s timeout) updates row 1; the branch's registration, the
transaction's first, begins it at the TC; the process writes the XID to XID_FILE
and ends with os._exit(9) before the undo INSERT and the local COMMIT.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

import atx.rm as rm
from atx.rm.branch import Branch


def main(url: str, resource_id: str, tc: str, xid_file: str) -> None:
    rm.configure(tc_addresses=[tc], application_id="crash-worker", client_id=uuid.uuid4().hex)
    conn = rm.connect_mysql(url, resource_id=resource_id)
    register = Branch._register

    def register_then_die(self: Branch, xid: str, *args: Any) -> int:
        register(self, xid, *args)
        Path(xid_file).write_text(xid)
        os._exit(9)  # the crash point: registered, not committed locally

    Branch._register = register_then_die  # type: ignore[method-assign]

    @rm.global_transactional(name="crash-worker", timeout=1.0)
    def bump() -> None:
        with conn.cursor() as cur:
            cur.execute("UPDATE account SET balance = 0 WHERE id = %s", (1,))
        conn.commit()

    bump()


if __name__ == "__main__":
    main(*sys.argv[1:5])
