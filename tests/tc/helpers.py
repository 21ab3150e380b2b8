"""Small client helpers for TC tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from atx.errors import AtxError, from_rpc_error
from atx.status import GlobalStatus
from atx.v1 import admin_pb2
from atx.v1 import resource_manager_pb2 as rm_pb2
from atx.v1 import transaction_manager_pb2 as tm_pb2
from tests.tc.conftest import RunningTC


def begin(tc: RunningTC, timeout_ms: int = 0, name: str = "t") -> str:
    xid: str = tc.tm.Begin(tm_pb2.BeginRequest(timeout_ms=timeout_ms, transaction_name=name)).xid
    return xid


def register(
    tc: RunningTC,
    xid: str,
    resource: str = "db1",
    keys: str = "t:1",
    client_id: str = "test-rm",
    lock_wait_ms: int = 0,
) -> int:
    branch_id: int = tc.rm.BranchRegister(
        rm_pb2.BranchRegisterRequest(
            xid=xid,
            resource_id=resource,
            branch_type=1,
            lock_keys=keys,
            client_id=client_id,
            lock_wait_ms=lock_wait_ms,
        )
    ).branch_id
    return branch_id


def status(tc: RunningTC, xid: str) -> GlobalStatus:
    return GlobalStatus(tc.tm.GetStatus(tm_pb2.GetStatusRequest(xid=xid)).status)


def commit(tc: RunningTC, xid: str) -> GlobalStatus:
    return GlobalStatus(tc.tm.Commit(tm_pb2.CommitRequest(xid=xid)).status)


def rollback(tc: RunningTC, xid: str) -> GlobalStatus:
    return GlobalStatus(tc.tm.Rollback(tm_pb2.RollbackRequest(xid=xid)).status)


def locks(tc: RunningTC, xid: str = "") -> list[str]:
    reply = tc.admin.ListGlobalLocks(admin_pb2.ListGlobalLocksRequest(xid=xid, page_size=1000))
    return [lock.row_key for lock in reply.locks]


def session(tc: RunningTC, xid: str) -> Any:
    return tc.admin.GetGlobalSession(admin_pb2.GetGlobalSessionRequest(xid=xid)).session


def error_of(call: Callable[[], Any]) -> AtxError:
    try:
        call()
    except grpc.RpcError as error:
        return from_rpc_error(error)
    raise AssertionError("the call did not fail")
