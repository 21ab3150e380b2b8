"""Malformed requests get INVALID_ARGUMENT (or NOT_FOUND), never a crash."""

from __future__ import annotations

import grpc
import pytest

from atx.errors import BranchNotFoundError, GlobalTransactionNotFoundError, InvalidArgumentError
from atx.status import BranchStatus
from atx.status import GlobalStatus as G
from atx.v1 import resource_manager_pb2 as rm_pb2
from atx.v1 import transaction_manager_pb2 as tm_pb2
from tests.tc.conftest import RunningTC
from tests.tc.helpers import begin, commit, error_of, register, rollback, status


@pytest.mark.parametrize("xid", ["", "garbage", "host:port:x", "h:1:0", "h:99999:1", " : : "])
def test_garbage_xids(tc: RunningTC, xid: str) -> None:
    for call in (
        lambda: commit(tc, xid),
        lambda: rollback(tc, xid),
        lambda: status(tc, xid),
        lambda: register(tc, xid),
    ):
        error = error_of(call)
        assert isinstance(error, InvalidArgumentError), error
        assert repr(xid) in error.message


def test_unknown_xid_is_not_found_naming_it(tc: RunningTC) -> None:
    xid = "127.0.0.1:1:999999999"
    for call in (lambda: commit(tc, xid), lambda: status(tc, xid), lambda: register(tc, xid)):
        error = error_of(call)
        assert isinstance(error, GlobalTransactionNotFoundError)
        assert xid in error.message
        assert error.xid == xid


@pytest.mark.parametrize("keys", ["t", ":1", "t:", "t:1,,2", "t:1;u", "a^^^b:1"])
def test_malformed_lock_keys(tc: RunningTC, keys: str) -> None:
    xid = begin(tc)
    error = error_of(lambda: register(tc, xid, "db1", keys))
    assert isinstance(error, InvalidArgumentError)
    assert "lock keys" in error.message
    assert status(tc, xid) == G.BEGIN  # nothing stuck
    assert commit(tc, xid) == G.COMMITTED


@pytest.mark.parametrize("timeout_ms", [-1, 10**12])
def test_absurd_timeouts(tc: RunningTC, timeout_ms: int) -> None:
    error = error_of(lambda: tc.tm.Begin(tm_pb2.BeginRequest(timeout_ms=timeout_ms)))
    assert isinstance(error, InvalidArgumentError)
    assert str(timeout_ms) in error.message


def test_register_needs_a_resource_and_at(tc: RunningTC) -> None:
    xid = begin(tc)
    assert isinstance(error_of(lambda: register(tc, xid, "", "t:1")), InvalidArgumentError)
    request = rm_pb2.BranchRegisterRequest(xid=xid, resource_id="db", branch_type=2)
    assert isinstance(error_of(lambda: tc.rm.BranchRegister(request)), InvalidArgumentError)
    request = rm_pb2.BranchRegisterRequest(xid=xid, resource_id="db", branch_type=99)
    assert isinstance(error_of(lambda: tc.rm.BranchRegister(request)), InvalidArgumentError)


def test_branch_report(tc: RunningTC) -> None:
    xid = begin(tc)
    branch = register(tc, xid, "db1", "t:1")

    def report(branch_id: int, value: BranchStatus) -> None:
        tc.rm.BranchReport(rm_pb2.BranchReportRequest(xid=xid, branch_id=branch_id, status=value))

    report(branch, BranchStatus.PHASE_ONE_FAILED)
    assert isinstance(
        error_of(lambda: report(branch + 1000, BranchStatus.PHASE_ONE_FAILED)),
        BranchNotFoundError,
    )
    assert isinstance(
        error_of(lambda: report(branch, BranchStatus.PHASE_TWO_COMMITTED)), InvalidArgumentError
    )
    # A PhaseOne_Failed branch needs no rollback: none attached, yet it finishes.
    assert rollback(tc, xid) == G.ROLLBACKED


def test_server_survives_a_burst_of_bad_calls(tc: RunningTC) -> None:
    for _ in range(50):
        with pytest.raises(grpc.RpcError):
            tc.tm.Commit(tm_pb2.CommitRequest(xid="::"))
    assert commit(tc, begin(tc)) == G.COMMITTED
