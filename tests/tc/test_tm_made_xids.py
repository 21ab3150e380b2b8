"""XIDs a TM makes itself (ReserveXids), begun by their first registration or by a
Begin naming them, and commits that leave the caller's branches' phase two to it.
Through a real TC on every store."""

from __future__ import annotations

import time

import pytest

from atx.errors import GlobalTransactionNotFoundError, IllegalStatusError
from atx.status import GlobalStatus as G
from atx.tc.xid import parse_xid
from atx.v1 import resource_manager_pb2 as rm_pb2
from atx.v1 import transaction_manager_pb2 as tm_pb2
from tests.tc.conftest import RunningTC, TCFactory
from tests.tc.helpers import error_of, locks, register, rollback, session, status
from tests.tc.scripted_rm import ScriptedRM


@pytest.fixture(params=["sqlite", "redis", "mariadb", "postgres"])
def store_tc(request: pytest.FixtureRequest) -> RunningTC:
    # The store's URL first: its database then outlives the TC at teardown.
    url = "" if request.param == "sqlite" else request.getfixturevalue(f"{request.param}_url")
    tc_factory: TCFactory = request.getfixturevalue("tc_factory")
    return tc_factory(store_url=url) if url else tc_factory()


def made_xids(tc: RunningTC) -> list[str]:
    block = tc.tm.ReserveXids(tm_pb2.ReserveXidsRequest())
    assert block.count >= 1
    first = block.first_transaction_id
    return [f"{block.xid_prefix}{first + i}" for i in range(block.count)]


def begin_spec(timeout_ms: int = 60_000, elapsed_ms: int = 0) -> tm_pb2.BeginRequest:
    return tm_pb2.BeginRequest(
        timeout_ms=timeout_ms, transaction_name="made", application_id="app", elapsed_ms=elapsed_ms
    )


def register_first(
    tc: RunningTC, xid: str, resource: str = "db1", keys: str = "t:1", **spec: int
) -> int:
    request = rm_pb2.BranchRegisterRequest(
        xid=xid,
        resource_id=resource,
        branch_type=1,
        lock_keys=keys,
        client_id="test-rm",
        begin=begin_spec(**spec),
    )
    branch_id: int = tc.rm.BranchRegister(request).branch_id
    return branch_id


def commit_as_caller(tc: RunningTC, xid: str, mine: list[int]) -> tuple[G, list[int]]:
    reply = tc.tm.Commit(tm_pb2.CommitRequest(xid=xid, caller_branch_ids=mine))
    return G(reply.status), list(reply.caller_phase_two)


def test_reserved_blocks_are_disjoint_and_make_valid_xids(store_tc: RunningTC) -> None:
    a, b = made_xids(store_tc), made_xids(store_tc)
    assert not set(a) & set(b)
    ordinary = store_tc.tm.Begin(tm_pb2.BeginRequest()).xid
    assert ordinary not in a + b
    for xid in (a[0], a[-1], b[0]):
        parse_xid(xid)
    # An XID of a block is unknown to the TC until it is begun.
    assert isinstance(error_of(lambda: status(store_tc, a[0])), GlobalTransactionNotFoundError)


def test_first_registration_begins_the_session(store_tc: RunningTC) -> None:
    tc = store_tc
    xid = made_xids(tc)[0]
    before = int(time.time() * 1000)
    first = register_first(tc, xid, "db1", "t:1", timeout_ms=30_000, elapsed_ms=5_000)
    assert status(tc, xid) == G.BEGIN
    shown = session(tc, xid)
    assert shown.transaction_name == "made" and shown.application_id == "app"
    # Its timeout counts from the TM's begin, 5 s before the registration.
    assert before - 6_000 <= shown.begin_time_ms <= before - 4_000
    # A second registration with the settings (a retry, another thread) joins it.
    second = register_first(tc, xid, "db2", "u:1")
    assert [b.branch_id for b in session(tc, xid).branches] == [first, second]
    assert sorted(locks(tc, xid)) == ["db1^^^t^^^1", "db2^^^u^^^1"]


def test_a_registration_with_settings_cannot_revive_a_finished_session(
    store_tc: RunningTC,
) -> None:
    tc = store_tc
    xid = made_xids(tc)[0]
    tc.tm.Begin(tm_pb2.BeginRequest(xid=xid, timeout_ms=60_000))
    assert rollback(tc, xid) == G.ROLLBACKED
    refused = error_of(lambda: register_first(tc, xid))
    assert isinstance(refused, IllegalStatusError | GlobalTransactionNotFoundError)
    assert xid in refused.message


def test_begin_naming_an_xid_is_idempotent_and_validated(store_tc: RunningTC) -> None:
    tc = store_tc
    xid = made_xids(tc)[0]
    for _ in range(2):
        assert tc.tm.Begin(tm_pb2.BeginRequest(xid=xid, timeout_ms=60_000)).xid == xid
    assert status(tc, xid) == G.BEGIN
    bad = error_of(lambda: tc.tm.Begin(tm_pb2.BeginRequest(xid="not an xid")))
    assert bad.grpc_code.name == "INVALID_ARGUMENT"
    negative = error_of(lambda: tc.tm.Begin(tm_pb2.BeginRequest(xid=xid, elapsed_ms=-1)))
    assert negative.grpc_code.name == "INVALID_ARGUMENT"


def test_commit_of_only_the_callers_branches_finishes_at_once(store_tc: RunningTC) -> None:
    tc = store_tc
    # Past the TC's start-up recovery run: it ignores due times, so it could send a
    # (harmless) BranchCommit between a shared store's two steps of this Commit.
    time.sleep(0.5)
    with ScriptedRM(tc.address, ["db1", "db2"]) as rm:
        xid = made_xids(tc)[0]
        b1 = register_first(tc, xid, "db1", "t:1")
        b2 = register(tc, xid, "db2", "u:1")
        assert commit_as_caller(tc, xid, [b1, b2]) == (G.COMMITTED, [b1, b2])
        # Finished by the Commit itself: no phase two to wait for, no BranchCommit sent.
        assert status(tc, xid) == G.COMMITTED
        assert locks(tc, xid) == []
        time.sleep(0.2)
        assert rm.received == []
        # Repeated: the same answer, nothing left to the caller any more.
        assert commit_as_caller(tc, xid, [b1, b2]) == (G.COMMITTED, [])


def test_commit_sends_branch_commit_only_to_the_other_branches(store_tc: RunningTC) -> None:
    tc = store_tc
    with ScriptedRM(tc.address, ["db1", "db2"]) as rm:
        xid = made_xids(tc)[0]
        mine = register_first(tc, xid, "db1", "t:1")
        theirs = register(tc, xid, "db2", "u:1")
        assert commit_as_caller(tc, xid, [mine, 424242]) == (G.COMMITTED, [mine])
        deadline = time.monotonic() + 10
        while status(tc, xid) != G.COMMITTED and time.monotonic() < deadline:
            time.sleep(0.02)
        assert status(tc, xid) == G.COMMITTED
        assert [(r.action, r.branch_id) for r in rm.received] == [("commit", theirs)]
