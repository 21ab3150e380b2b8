"""Operations: health, reflection, metrics, authentication, graceful SIGTERM."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from atx.errors import PermissionDeniedError, UnauthenticatedError
from atx.metadata import bearer
from atx.status import GlobalStatus as G
from atx.testing import free_port, wait_until
from atx.v1 import admin_pb2, admin_pb2_grpc
from atx.v1 import transaction_manager_pb2 as tm_pb2
from atx.v1 import transaction_manager_pb2_grpc as tm_grpc
from tests.conftest import ProcessStarter
from tests.tc.conftest import RunningTC, TCFactory
from tests.tc.helpers import begin, commit, error_of, register
from tests.tc.scripted_rm import ScriptedRM


def test_health_and_reflection(tc: RunningTC) -> None:
    health = health_pb2_grpc.HealthStub(tc.channel)
    for service in ("", "atx.v1.TransactionManagerService", "atx.v1.ResourceManagerService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(tc.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    reply = next(iter(stub.ServerReflectionInfo(iter([request]))))
    names = {s.name for s in reply.list_services_response.service}
    assert {
        "atx.v1.TransactionManagerService",
        "atx.v1.ResourceManagerService",
        "atx.v1.AdminService",
        "grpc.health.v1.Health",
    } <= names


def test_metrics_endpoint(tc_factory: TCFactory) -> None:
    metrics_port = free_port()
    tc = tc_factory(metrics_port=metrics_port)
    xid = begin(tc)
    register(tc, xid, "db1", "t:1")
    other = begin(tc)
    error_of(lambda: register(tc, other, "db1", "t:1"))
    commit(tc, xid)
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    for name in (
        "atx_tc_transactions_begun_total 2.0",
        "atx_tc_branches_registered_total 1.0",
        "atx_tc_lock_conflicts_total 1.0",
        "atx_tc_transactions_committed_total",
        "atx_tc_transactions_rolled_back_total",
        "atx_tc_active_sessions",
        "atx_tc_phase_two_seconds",
    ):
        assert name in text, name


def test_authentication(tc_factory: TCFactory) -> None:
    tc = tc_factory(token="s3cret", admin_token="adm1n")
    stub = tm_grpc.TransactionManagerServiceStub(tc.channel)
    refused = error_of(lambda: stub.Begin(tm_pb2.BeginRequest()))
    assert isinstance(refused, UnauthenticatedError)
    wrong = error_of(lambda: stub.Begin(tm_pb2.BeginRequest(), metadata=[bearer("nope")]))
    assert isinstance(wrong, UnauthenticatedError)
    xid = stub.Begin(tm_pb2.BeginRequest(), metadata=[bearer("s3cret")]).xid
    assert xid
    admin = admin_pb2_grpc.AdminServiceStub(tc.channel)
    request = admin_pb2.ListGlobalSessionsRequest()
    assert isinstance(
        error_of(lambda: admin.ListGlobalSessions(request, metadata=[bearer("s3cret")])),
        (UnauthenticatedError, PermissionDeniedError),
    )
    listed = admin.ListGlobalSessions(request, metadata=[bearer("adm1n")])
    assert xid in {s.xid for s in listed.sessions}
    # Health stays open for probes.
    health = health_pb2_grpc.HealthStub(tc.channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == 1
    # The Attach stream is guarded too.
    rm = ScriptedRM(tc.address, ["db1"])
    try:
        rm.start(timeout=2)
        raise AssertionError("attached without a token")
    except TimeoutError:
        assert rm.error is not None and rm.error.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        rm.close()
    with ScriptedRM(tc.address, ["db1"], metadata=(bearer("s3cret"),)) as ok:
        assert ok.registered.is_set()


def test_sigterm_finishes_the_call_in_flight(
    start_server: ProcessStarter, port: int, tmp_path: Path
) -> None:
    tc = start_server(["tc", "--port", str(port), "--store", f"sqlite:///{tmp_path}/tc.db"], port)
    channel = grpc.insecure_channel(tc.address)
    stub = tm_grpc.TransactionManagerServiceStub(channel)
    from atx.v1 import resource_manager_pb2 as rm_pb2
    from atx.v1 import resource_manager_pb2_grpc as rm_grpc

    xid = stub.Begin(tm_pb2.BeginRequest()).xid
    rm_grpc.ResourceManagerServiceStub(channel).BranchRegister(
        rm_pb2.BranchRegisterRequest(xid=xid, resource_id="db1", branch_type=1, lock_keys="t:1")
    )
    result: list[int] = []
    with ScriptedRM(tc.address, ["db1"], delay_s=1.0) as rm:
        call = threading.Thread(
            target=lambda: result.append(
                stub.Rollback(tm_pb2.RollbackRequest(xid=xid), timeout=20).status
            )
        )
        call.start()
        wait_until(lambda: rm.received, what="the rollback waiting for the RM")
        assert tc.terminate(timeout=20) == 0
        call.join(20)
    assert result == [G.ROLLBACKED]
    channel.close()
    assert "stopped" in tc.output()
