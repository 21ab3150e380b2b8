"""Crash recovery on SQLite: kill -9 the TC in the middle of phase two, restart it."""

from __future__ import annotations

from pathlib import Path

import grpc

from atx.status import GlobalStatus as G
from atx.testing import ManagedProcess, wait_until
from atx.v1 import admin_pb2, admin_pb2_grpc
from atx.v1 import resource_manager_pb2 as rm_pb2
from atx.v1 import resource_manager_pb2_grpc as rm_grpc
from atx.v1 import transaction_manager_pb2 as tm_pb2
from atx.v1 import transaction_manager_pb2_grpc as tm_grpc
from tests.conftest import ProcessStarter
from tests.tc.scripted_rm import ScriptedRM

FAST = ["--job-interval-ms", "100", "--retry-backoff-ms", "100", "--retry-backoff-max-ms", "300"]


class Client:
    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.tm = tm_grpc.TransactionManagerServiceStub(self.channel)
        self.rm = rm_grpc.ResourceManagerServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)

    def begin_with_branches(self) -> tuple[str, list[int]]:
        xid = self.tm.Begin(tm_pb2.BeginRequest(timeout_ms=600_000)).xid
        ids = [
            self.rm.BranchRegister(
                rm_pb2.BranchRegisterRequest(
                    xid=xid, resource_id=resource, branch_type=1, lock_keys=keys
                )
            ).branch_id
            for resource, keys in (("db1", "t:1,2"), ("db2", "u:9"))
        ]
        return xid, ids

    def status(self, xid: str) -> G:
        return G(self.tm.GetStatus(tm_pb2.GetStatusRequest(xid=xid)).status)

    def lock_count(self) -> int:
        reply = self.admin.ListGlobalLocks(admin_pb2.ListGlobalLocksRequest(page_size=100))
        return len(reply.locks)


def _start(start_server: ProcessStarter, port: int, db: Path) -> ManagedProcess:
    return start_server(["tc", "--port", str(port), "--store", f"sqlite:///{db}", *FAST], port)


def test_commit_survives_kill_9(start_server: ProcessStarter, port: int, tmp_path: Path) -> None:
    tc = _start(start_server, port, tmp_path / "tc.db")
    client = Client(tc.address)
    xid, branches = client.begin_with_branches()
    # No RM attached: phase two cannot finish before the crash.
    assert client.tm.Commit(tm_pb2.CommitRequest(xid=xid)).status == G.COMMITTED
    tc.kill()
    tc.start()
    assert client.status(xid) in {G.ASYNC_COMMITTING, G.COMMIT_RETRYING}
    with ScriptedRM(tc.address, ["db1", "db2"]) as rm:
        wait_until(lambda: client.status(xid) == G.COMMITTED, what="commit after restart")
        assert {r.branch_id for r in rm.received if r.action == "commit"} == set(branches)
    assert client.lock_count() == 0


def test_rollback_survives_kill_9(start_server: ProcessStarter, port: int, tmp_path: Path) -> None:
    tc = _start(start_server, port, tmp_path / "tc.db")
    client = Client(tc.address)
    xid, branches = client.begin_with_branches()
    assert client.tm.Rollback(tm_pb2.RollbackRequest(xid=xid)).status == G.ROLLBACK_RETRYING
    tc.kill()
    tc.start()
    assert client.status(xid) == G.ROLLBACK_RETRYING
    assert client.lock_count() == 3  # still held across the crash
    with ScriptedRM(tc.address, ["db1", "db2"]) as rm:
        wait_until(lambda: client.status(xid) == G.ROLLBACKED, what="rollback after restart")
        assert [r.branch_id for r in rm.received] == list(reversed(branches))
    assert client.lock_count() == 0


def test_begun_transaction_survives_and_times_out_after_restart(
    start_server: ProcessStarter, port: int, tmp_path: Path
) -> None:
    tc = _start(start_server, port, tmp_path / "tc.db")
    client = Client(tc.address)
    xid = client.tm.Begin(tm_pb2.BeginRequest(timeout_ms=1500)).xid
    tc.kill()
    tc.start()
    wait_until(lambda: client.status(xid) == G.TIMEOUT_ROLLBACKED, what="timeout after restart")
