"""A real TC process (SQLite or Redis store) serving tc.admin's AdminService
behind the admin token ``secret``, plus clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from atx.status import GlobalStatus
from atx.tc.admin.client import AdminClient
from atx.testing import ManagedProcess
from atx.v1 import resource_manager_pb2 as rm_pb2
from atx.v1 import resource_manager_pb2_grpc as rm_grpc
from atx.v1 import transaction_manager_pb2 as tm_pb2
from atx.v1 import transaction_manager_pb2_grpc as tm_grpc

ADMIN_TOKEN = "secret"
FAST = [
    "--job-interval-ms",
    "100",
    "--branch-timeout-ms",
    "2000",
    "--retry-backoff-ms",
    "200",
    "--retry-backoff-max-ms",
    "400",
    "--heartbeat-interval-ms",
    "1000",
]


@dataclass
class AdminTC:
    address: str
    process: ManagedProcess
    channel: grpc.Channel
    tm: tm_grpc.TransactionManagerServiceStub
    rm: rm_grpc.ResourceManagerServiceStub
    admin: AdminClient

    def begin(self, name: str = "buy", app: str = "shop", timeout_ms: int = 600_000) -> str:
        request = tm_pb2.BeginRequest(
            timeout_ms=timeout_ms, transaction_name=name, application_id=app
        )
        xid: str = self.tm.Begin(request).xid
        return xid

    def register(
        self, xid: str, keys: str = "orders:1", resource: str = "db1", data: str = ""
    ) -> int:
        request = rm_pb2.BranchRegisterRequest(
            xid=xid,
            resource_id=resource,
            branch_type=1,  # type: ignore[arg-type]
            lock_keys=keys,
            application_data=data,
            client_id="admin-test-rm",
        )
        branch_id: int = self.rm.BranchRegister(request).branch_id
        return branch_id

    def commit(self, xid: str) -> GlobalStatus:
        return GlobalStatus(self.tm.Commit(tm_pb2.CommitRequest(xid=xid)).status)

    def rollback(self, xid: str) -> GlobalStatus:
        return GlobalStatus(self.tm.Rollback(tm_pb2.RollbackRequest(xid=xid)).status)

    def status(self, xid: str) -> str:
        return str(self.admin.get_global(xid).session.status)


AdminTCFactory = Callable[[str], AdminTC]


@pytest.fixture
def admin_tc_factory(
    start_server: Callable[..., ManagedProcess], tmp_path: Path
) -> Iterator[AdminTCFactory]:
    made: list[AdminTC] = []

    def make(store_url: str) -> AdminTC:
        from atx.testing import free_port

        port = free_port()
        argv = ["tc", "--port", str(port), "--store", store_url, "--admin-token", ADMIN_TOKEN]
        process = start_server([*argv, *FAST], port=port)
        address = f"127.0.0.1:{port}"
        channel = grpc.insecure_channel(address)
        tc = AdminTC(
            address,
            process,
            channel,
            tm_grpc.TransactionManagerServiceStub(channel),
            rm_grpc.ResourceManagerServiceStub(channel),
            AdminClient(address, ADMIN_TOKEN),
        )
        made.append(tc)
        return tc

    yield make
    for tc in made:
        tc.admin.close()
        tc.channel.close()


@pytest.fixture(params=["sqlite", "redis"])
def admin_tc(request: pytest.FixtureRequest, admin_tc_factory: AdminTCFactory) -> AdminTC:
    """A TC on SQLite, then on Redis."""
    if request.param == "sqlite":
        tmp: Path = request.getfixturevalue("tmp_path")
        url = f"sqlite:///{tmp}/tc.db"
    else:
        url = request.getfixturevalue("redis_url")
    return admin_tc_factory(url)


@pytest.fixture
def sqlite_tc(admin_tc_factory: AdminTCFactory, tmp_path: Path) -> AdminTC:
    return admin_tc_factory(f"sqlite:///{tmp_path}/tc.db")
