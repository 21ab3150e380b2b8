"""``atx admin``: JSON output for scripts, clear failures, deferred calls."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from atx.status import BranchStatus
from atx.testing import free_port, wait_until
from tests.tc.admin.conftest import ADMIN_TOKEN, AdminTC
from tests.tc.rm_peer import Received, ScriptedRM


def atx_admin(
    tc: AdminTC | str, *args: str, token: str | None = ADMIN_TOKEN
) -> tuple[int, str, str]:
    address = tc if isinstance(tc, str) else tc.address
    argv = [sys.executable, "-m", "atx.cli", "admin", "--tc", address]
    if token is not None:
        argv += ["--admin-token", token]
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    done = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60, env=env)
    return done.returncode, done.stdout, done.stderr


def json_of(tc: AdminTC, *args: str) -> Any:
    code, out, err = atx_admin(tc, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_json_for_live_committed_and_rollback_failed(sqlite_tc: AdminTC) -> None:
    tc = sqlite_tc
    live = tc.begin(name="live", app="shop")
    tc.register(live, keys="orders:1,2", data='{"n": 1}')

    def refuse(command: Received) -> BranchStatus:
        if command.rollback:
            return BranchStatus.PHASE_TWO_ROLLBACK_FAILED_UNRETRYABLE
        return BranchStatus.PHASE_TWO_COMMITTED

    with ScriptedRM(tc.address, ["db1"], answer=refuse):
        committed = tc.begin(name="done")
        tc.register(committed, keys="orders:3")
        tc.commit(committed)
        failed = tc.begin(name="failed")
        tc.register(failed, keys="orders:4")
        tc.rollback(failed)
        wait_until(lambda: json_of(tc, "show", failed)["session"]["status"] == "RollbackFailed", 20)
        wait_until(
            lambda: (
                json_of(tc, "globals", "--history", "--xid", committed)["sessions"][0]["status"]
                == "Committed"
            ),
            20,
        )

    shown = json_of(tc, "show", live)
    session = shown["session"]
    assert session["status"] == "Begin" and session["transaction_name"] == "live"
    assert isinstance(session["begin_time_ms"], int) and session["begin_time_ms"] > 0
    (branch,) = session["branches"]
    assert branch["status"] == "Registered" and branch["branch_type"] == "AT"
    assert branch["lock_keys"] == "orders:1,2" and branch["application_data"] == '{"n": 1}'
    assert sorted(lock["pk"] for lock in shown["locks"]) == ["1", "2"]

    listed = json_of(tc, "globals")  # active only: the committed one has left
    assert {s["xid"]: s["status"] for s in listed["sessions"]} == {
        live: "Begin",
        failed: "RollbackFailed",
    }
    everything = json_of(tc, "globals", "--history", "--page-size", "1", "--all")
    assert everything["total_size"] == 3 and everything["next_page_token"] == ""
    assert {s["status"] for s in everything["sessions"]} == {"Begin", "Committed", "RollbackFailed"}
    page = json_of(tc, "globals", "--history", "--page-size", "2")
    assert len(page["sessions"]) == 2 and page["next_page_token"]
    assert json_of(tc, "globals", "--status", "rollback-failed,Begin")["total_size"] == 2
    assert json_of(tc, "globals", "--name", "live")["sessions"][0]["xid"] == live

    failed_detail = json_of(tc, "show", failed)
    assert (
        failed_detail["session"]["branches"][0]["status"] == "PhaseTwo_RollbackFailed_Unretryable"
    )
    assert [lock["pk"] for lock in failed_detail["locks"]] == ["4"]  # kept
    assert json_of(tc, "show", committed)["session"]["status"] == "Committed"

    locks = json_of(tc, "locks", "--table", "orders")
    assert locks["total_size"] == 3
    assert [lock["pk"] for lock in json_of(tc, "locks", "--xid", failed)["locks"]] == ["4"]

    # Actions through the CLI, then the audit trail.
    code, _, err = atx_admin(tc, "rollback", live)
    assert code == 2 and "CONFIRMATION_REQUIRED" in err and "hint: pass --yes" in err
    code, _, err = atx_admin(tc, "stop-retry", live)
    assert code == 1 and err.startswith("error: [ADMIN_STOP_RETRY_REFUSED]") and "Begin" in err
    assert json_of(tc, "delete", committed, "--yes", "--operator", "dora") == {"deleted": committed}
    audit = json_of(tc, "audit")["entries"]
    assert [(e["action"], e["result"]) for e in audit] == [
        ("delete", "ok"),
        ("stop-retry", "ADMIN_STOP_RETRY_REFUSED"),
        ("rollback", "CONFIRMATION_REQUIRED"),
    ]
    assert audit[0]["operator"].startswith("dora") and isinstance(audit[0]["time_ms"], int)

    # The rich tables render too.
    code, out, _ = atx_admin(tc, "globals")
    assert code == 0 and "RollbackFailed" in out and live in out


def test_failures_exit_non_zero_with_one_line(sqlite_tc: AdminTC) -> None:
    code, out, err = atx_admin(sqlite_tc, "show", "127.0.0.1:1:999")
    assert code == 1 and out == ""
    assert (
        err.strip()
        == "error: [GLOBAL_TRANSACTION_NOT_FOUND] global transaction '127.0.0.1:1:999' not found"
    )
    code, out, err = atx_admin(sqlite_tc, "show", "127.0.0.1:1:999", "--json")
    assert code == 1 and out == ""  # stdout holds results only
    assert json.loads(err)["error"] == {
        "code": "GLOBAL_TRANSACTION_NOT_FOUND",
        "message": "global transaction '127.0.0.1:1:999' not found",
        "hint": "",
    }
    code, _, err = atx_admin(sqlite_tc, "globals", token=None)
    assert code == 1 and err.startswith("error: [UNAUTHENTICATED]")
    code, _, err = atx_admin(sqlite_tc, "globals", token="wrong")
    assert code == 1 and "UNAUTHENTICATED" in err
    code, _, err = atx_admin(sqlite_tc, "globals", "--status", "Bogus")
    assert code == 2 and "INVALID_ADMIN_FILTER" in err and "Bogus" in err  # a usage error
    code, _, err = atx_admin(f"127.0.0.1:{free_port()}", "globals")
    assert code == 1 and err.startswith("error: [UNAVAILABLE] cannot reach")


def test_deferred_list_and_retry(tmp_path: Path) -> None:
    from atx.hooks.service import add_deferred_call_service
    from atx.hooks.store import OutboxStore

    path = tmp_path / "outbox.db"
    store = OutboxStore(lambda: sqlite3.connect(path))
    store.ensure_table()
    with sqlite3.connect(path) as db:
        for call_id, state, created in (
            ("c1", "DEAD", 1000),
            ("c2", "DONE", 900),
            ("c3", "PENDING", 800),
        ):
            db.execute(
                "INSERT INTO atx_outbox (id, xid, target, payload, request_id, state, attempts,"
                " next_attempt_at, last_error, created_at, updated_at)"
                " VALUES (?, 'x:1', 'chain.mint', '{\"n\": 1}', ?, ?, 5, 0,"
                " 'chain down', ?, ?)",
                (call_id, f"r-{call_id}", state, created, created),
            )
    server = grpc.server(futures.ThreadPoolExecutor(4))
    add_deferred_call_service(server, store)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        address = f"127.0.0.1:{port}"

        def listed(*state: str) -> list[tuple[str, str]]:
            code, out, err = atx_admin(
                address, "deferred", "list", "--service", address, *state, "--json"
            )
            assert code == 0, err
            return [(c["id"], c["state"]) for c in json.loads(out)["calls"]]

        # By default the calls that need an eye: dead ones, then pending ones; not done ones.
        assert listed() == [("c1", "Dead"), ("c3", "Pending")]
        assert listed("--state", "done") == [("c2", "Done")]
        assert listed("--state", "dead,done") == [("c1", "Dead"), ("c2", "Done")]
        assert sorted(listed("--state", "all")) == [
            ("c1", "Dead"),
            ("c2", "Done"),
            ("c3", "Pending"),
        ]
        code, _, err = atx_admin(address, "deferred", "list", "--service", address, "--state", "x")
        assert code == 2 and "INVALID_ADMIN_FILTER" in err
        code, out, err = atx_admin(address, "deferred", "list", "--service", address, "--json")
        call = json.loads(out)["calls"][0]
        assert call["id"] == "c1" and call["state"] == "Dead" and call["target"] == "chain.mint"
        assert call["attempts"] == 5 and call["last_error"] == "chain down"
        code, out, err = atx_admin(
            address, "deferred", "retry", "c1", "--service", address, "--json"
        )
        assert code == 0, err
        assert json.loads(out)["call"]["state"] == "Pending"
        code, out, _ = atx_admin(
            address, "deferred", "list", "--service", address, "--state", "dead", "--json"
        )
        assert json.loads(out)["calls"] == []
        code, _, err = atx_admin(address, "deferred", "retry", "nope", "--service", address)
        assert code == 1 and "nope" in err
    finally:
        server.stop(None)


def test_globals_counts_branches_and_says_where_finished_ones_went(sqlite_tc: AdminTC) -> None:
    tc = sqlite_tc
    live = tc.begin(name="live")
    tc.register(live, keys="orders:1")
    tc.register(live, keys="orders:2")
    done = tc.begin(name="done")
    assert tc.commit(done).name == "COMMITTED"  # no branches: finished at once

    listed = json_of(tc, "globals")
    assert [(s["xid"], s["branch_count"]) for s in listed["sessions"]] == [(live, 2)]
    everything = json_of(tc, "globals", "--history")
    assert {s["xid"]: s["branch_count"] for s in everything["sessions"]} == {live: 2, done: 0}

    code, out, _ = atx_admin(tc, "globals", "--xid", done)
    assert code == 0 and "0 of 0" in out and "add --history for finished ones" in out
    code, out, _ = atx_admin(tc, "globals", "--history", "--xid", done)
    assert code == 0 and "1 of 1" in out and "--history for" not in out


def test_piped_tables_do_not_break_words(sqlite_tc: AdminTC) -> None:
    tc = sqlite_tc
    xids = [
        tc.begin(name="reserve-stock-and-place-the-order", app="collectible-shop-frontend")
        for _ in range(2)
    ]
    # Piped, as in `atx admin globals | grep ...`; no COLUMNS in the environment.
    argv = [sys.executable, "-m", "atx.cli", "admin", "--tc", tc.address, "globals"]
    env = {"PATH": "/usr/bin:/bin", "ATX_ADMIN_TOKEN": ADMIN_TOKEN}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    for xid in xids:
        (row,) = [line for line in done.stdout.splitlines() if xid in line]
        assert "reserve-stock-and-place-the-order" in row and "collectible-shop-frontend" in row
    header = next(line for line in done.stdout.splitlines() if "XID" in line)
    for column in ("Application", "Timeout ms", "Branches", "Retries"):
        assert column in header
