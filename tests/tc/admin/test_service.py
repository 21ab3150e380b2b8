"""Every AdminService RPC against a real TC process, on SQLite and on Redis."""

from __future__ import annotations

import time

import pytest

from atx.errors import (
    AtxError,
    GlobalTransactionNotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from atx.status import BranchStatus, GlobalStatus
from atx.tc.admin.client import AdminClient
from atx.tc.admin.errors import (
    ConfirmationRequiredError,
    DeleteRefusedError,
    InvalidFilterError,
    InvalidPageSizeError,
    ResumeRetryRefusedError,
    RetryRefusedError,
    RollbackRefusedError,
    StopRetryRefusedError,
)
from atx.testing import wait_until
from atx.v1 import admin_pb2
from tests.tc.admin.conftest import AdminTC
from tests.tc.rm_peer import ScriptedRM, succeed

G = GlobalStatus


def _list(tc: AdminTC, **fields: object) -> admin_pb2.ListGlobalSessionsResponse:
    return tc.admin.list_globals(admin_pb2.ListGlobalSessionsRequest(**fields))  # type: ignore[arg-type]


def _xids(response: admin_pb2.ListGlobalSessionsResponse) -> list[str]:
    return [s.xid for s in response.sessions]


def _raises(error_type: type[AtxError], call: object, *args: object) -> AtxError:
    with pytest.raises(error_type) as info:
        call(*args)  # type: ignore[operator]
    return info.value


def test_list_filters_and_stable_pagination(admin_tc: AdminTC) -> None:
    xids = []
    for i in range(5):
        xid = admin_tc.begin(name=f"name{i % 2}", app="shop" if i < 3 else "other")
        admin_tc.register(xid, keys=f"orders:{i}")
        xids.append(xid)
        time.sleep(0.005)  # distinct begin times
    admin_tc.rollback(xids[4])  # no RM attached: RollbackRetrying

    everything = _list(admin_tc)
    assert everything.total_size == 5
    assert _xids(everything) == list(reversed(xids))  # newest first

    seen: list[str] = []
    token = ""
    while True:
        page = _list(admin_tc, page_size=2, page_token=token)
        assert page.total_size == 5 and len(page.sessions) <= 2
        seen += _xids(page)
        token = page.next_page_token
        if not token:
            break
    assert seen == _xids(everything)

    assert _xids(_list(admin_tc, statuses=[G.ROLLBACK_RETRYING])) == [xids[4]]
    assert set(_xids(_list(admin_tc, statuses=[G.BEGIN]))) == set(xids[:4])
    assert set(_xids(_list(admin_tc, application_id="other"))) == {xids[3], xids[4]}
    assert set(_xids(_list(admin_tc, transaction_name="name1"))) == {xids[1], xids[3]}
    assert _xids(_list(admin_tc, xid=xids[2])) == [xids[2]]
    middle = _list(admin_tc, xid=xids[2]).sessions[0].begin_time_ms
    assert set(_xids(_list(admin_tc, begin_time_from_ms=middle))) == set(xids[2:])
    assert set(_xids(_list(admin_tc, begin_time_to_ms=middle))) == set(xids[:3])
    assert _list(admin_tc, application_id="nobody").total_size == 0

    _raises(InvalidPageSizeError, lambda: _list(admin_tc, page_size=-1))
    _raises(
        InvalidPageSizeError,
        admin_tc.admin.list_locks,
        admin_pb2.ListGlobalLocksRequest(page_size=5000),
    )
    error = _raises(
        InvalidFilterError, lambda: _list(admin_tc, begin_time_from_ms=10, begin_time_to_ms=5)
    )
    assert "range" in error.message


def test_get_session_with_branches_and_locks(admin_tc: AdminTC) -> None:
    xid = admin_tc.begin(name="buy", app="shop")
    first = admin_tc.register(xid, keys="orders:1,2", resource="db1", data='{"k": 1}')
    second = admin_tc.register(xid, keys="stock:9", resource="db2")

    detail = admin_tc.admin.get_global(xid)
    session = detail.session
    assert (session.xid, session.status) == (xid, G.BEGIN)
    assert (session.application_id, session.transaction_name) == ("shop", "buy")
    assert session.timeout_ms == 600_000 and session.begin_time_ms > 0
    assert [b.branch_id for b in session.branches] == [first, second]
    branch = session.branches[0]
    assert branch.resource_id == "db1" and branch.branch_type == 1
    assert branch.status == BranchStatus.REGISTERED
    assert branch.lock_keys == "orders:1,2" and branch.application_data == '{"k": 1}'
    assert branch.client_id == "admin-test-rm" and branch.begin_time_ms > 0
    assert sorted(lock.row_key for lock in detail.locks) == [
        "db1^^^orders^^^1",
        "db1^^^orders^^^2",
        "db2^^^stock^^^9",
    ]
    _raises(GlobalTransactionNotFoundError, admin_tc.admin.get_global, "127.0.0.1:1:404")
    _raises(AtxError, admin_tc.admin.get_global, "")


def test_list_locks_filters_and_pages(admin_tc: AdminTC) -> None:
    a = admin_tc.begin()
    admin_tc.register(a, keys="orders:1,2,3", resource="db1")
    b = admin_tc.begin()
    admin_tc.register(b, keys="stock:1", resource="db2")

    def locks(**fields: object) -> list[str]:
        request = admin_pb2.ListGlobalLocksRequest(**fields)  # type: ignore[arg-type]
        return [lock.row_key for lock in admin_tc.admin.list_locks(request).locks]

    assert len(locks()) == 4
    assert locks(xid=b) == ["db2^^^stock^^^1"]
    assert len(locks(resource_id="db1")) == 3
    assert locks(table_name="stock") == ["db2^^^stock^^^1"]
    assert locks(pk="2") == ["db1^^^orders^^^2"]
    assert locks(table_name="orders", pk="3") == ["db1^^^orders^^^3"]
    first = admin_tc.admin.list_locks(admin_pb2.ListGlobalLocksRequest(page_size=3))
    assert first.total_size == 4 and len(first.locks) == 3 and first.next_page_token
    rest = admin_tc.admin.list_locks(
        admin_pb2.ListGlobalLocksRequest(page_size=3, page_token=first.next_page_token)
    )
    assert len(rest.locks) == 1 and not rest.next_page_token
    all_keys = [lock.row_key for lock in [*first.locks, *rest.locks]]
    assert all_keys == sorted(all_keys) == sorted(locks())


def test_actions_refusals_and_audit_trail(admin_tc: AdminTC) -> None:
    client = admin_tc.admin
    xid = admin_tc.begin()
    admin_tc.register(xid, keys="orders:7")

    # Begin: only rollback fits, and only with confirm.
    assert _raises(RetryRefusedError, client.retry, xid, "alice").details["status"] == "Begin"
    _raises(StopRetryRefusedError, client.stop_retry, xid, "alice")
    _raises(ResumeRetryRefusedError, client.resume_retry, xid, "alice")
    _raises(DeleteRefusedError, client.delete, xid, True, "alice")
    error = _raises(ConfirmationRequiredError, client.rollback, xid, False, "alice")
    assert error.details["field"] == "confirm" and "confirm" in error.message
    _raises(ConfirmationRequiredError, client.delete, xid, False, "alice")

    # No RM is attached: the rollback stays in RollbackRetrying, locks held.
    session = client.rollback(xid, True, "alice").session
    assert session.status in (G.ROLLBACKING, G.ROLLBACK_RETRYING)
    assert _raises(RollbackRefusedError, client.rollback, xid, True, "alice").details["status"] in (
        "Rollbacking",
        "RollbackRetrying",
    )
    _raises(DeleteRefusedError, client.delete, xid, True, "alice")
    _raises(ResumeRetryRefusedError, client.resume_retry, xid, "alice")

    stopped = client.stop_retry(xid, "alice").session
    assert stopped.retry_stopped
    assert client.stop_retry(xid, "alice").session.retry_stopped  # idempotent
    resumed = client.resume_retry(xid, "bob").session
    assert not resumed.retry_stopped
    client.stop_retry(xid, "bob")
    retried = client.retry(xid, "bob").session  # still no RM: stays retrying
    assert retried.status == G.ROLLBACK_RETRYING

    # A paused session may be deleted; its locks go with it.
    client.delete(xid, True, "carol")
    _raises(GlobalTransactionNotFoundError, client.get_global, xid)
    locks = client.list_locks(admin_pb2.ListGlobalLocksRequest(xid=xid))
    assert locks.total_size == 0
    _raises(GlobalTransactionNotFoundError, client.retry, xid, "carol")

    entries = client.list_audit(admin_pb2.ListAuditLogRequest(xid=xid)).entries
    summary = [(e.action, e.result) for e in reversed(entries)]
    assert summary == [
        ("retry", "ADMIN_RETRY_REFUSED"),
        ("stop-retry", "ADMIN_STOP_RETRY_REFUSED"),
        ("resume-retry", "ADMIN_RESUME_RETRY_REFUSED"),
        ("delete", "ADMIN_DELETE_REFUSED"),
        ("rollback", "CONFIRMATION_REQUIRED"),
        ("delete", "CONFIRMATION_REQUIRED"),
        ("rollback", "ok"),
        ("rollback", "ADMIN_ROLLBACK_REFUSED"),
        ("delete", "ADMIN_DELETE_REFUSED"),
        ("resume-retry", "ADMIN_RESUME_RETRY_REFUSED"),
        ("stop-retry", "ok"),
        ("stop-retry", "ok"),
        ("resume-retry", "ok"),
        ("stop-retry", "ok"),
        ("retry", "ok"),
        ("delete", "ok"),
        ("retry", "GLOBAL_TRANSACTION_NOT_FOUND"),
    ]
    newest = entries[0]
    assert newest.operator.startswith("carol (token:") and newest.time_ms > 0
    assert entries[-1].operator.startswith("alice")
    assert all(e.xid == xid for e in entries)
    assert "Begin" in entries[-1].detail  # the refusal names the status

    # Pagination of the audit log, newest first.
    first = client.list_audit(admin_pb2.ListAuditLogRequest(page_size=10))
    rest = client.list_audit(
        admin_pb2.ListAuditLogRequest(page_size=10, page_token=first.next_page_token)
    )
    ids = [e.id for e in [*first.entries, *rest.entries]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 17


def test_rollback_failed_session_is_retried_and_deleted(admin_tc: AdminTC) -> None:
    def refuse(command: object) -> BranchStatus:
        return BranchStatus.PHASE_TWO_ROLLBACK_FAILED_UNRETRYABLE

    with ScriptedRM(admin_tc.address, ["db1"], answer=refuse) as rm:
        failed = admin_tc.begin(name="doomed")
        admin_tc.register(failed, keys="orders:1")
        admin_tc.rollback(failed)
        wait_until(lambda: admin_tc.status(failed) == str(G.ROLLBACK_FAILED), 20, "RollbackFailed")
        listed = _list(admin_tc, statuses=[G.ROLLBACK_FAILED])
        assert _xids(listed) == [failed]
        assert len(admin_tc.admin.get_global(failed).locks) == 1  # locks kept
        _raises(StopRetryRefusedError, admin_tc.admin.stop_retry, failed, "ops")

        # The RM is fixed: a retry revives the session and rolls it back.
        rm.answer = succeed
        after = admin_tc.admin.retry(failed, "ops").session
        assert after.status == G.ROLLBACKED
        assert (
            admin_tc.admin.list_locks(admin_pb2.ListGlobalLocksRequest(xid=failed)).total_size == 0
        )

        committed = admin_tc.begin(name="fine")
        admin_tc.register(committed, keys="orders:2")
        admin_tc.commit(committed)
        wait_until(
            lambda: (
                _list(admin_tc, xid=committed, include_history=True).sessions[0].status
                == G.COMMITTED
            ),
            20,
            "Committed",
        )
    assert _list(admin_tc, xid=committed).total_size == 0  # left the active set
    _raises(RetryRefusedError, admin_tc.admin.retry, committed, "ops")
    admin_tc.admin.delete(committed, True, "ops")
    assert _list(admin_tc, xid=committed, include_history=True).total_size == 0


def test_admin_token_is_required(admin_tc: AdminTC) -> None:
    xid = admin_tc.begin()
    for token in ("", "wrong"):
        with AdminClient(admin_tc.address, token) as anonymous:
            calls = [
                lambda: anonymous.list_globals(admin_pb2.ListGlobalSessionsRequest()),
                lambda: anonymous.get_global(xid),
                lambda: anonymous.list_locks(admin_pb2.ListGlobalLocksRequest()),
                lambda: anonymous.list_audit(admin_pb2.ListAuditLogRequest()),
                lambda: anonymous.retry(xid),
                lambda: anonymous.rollback(xid, True),
                lambda: anonymous.stop_retry(xid),
                lambda: anonymous.resume_retry(xid),
                lambda: anonymous.delete(xid, True),
            ]
            for call in calls:
                with pytest.raises((UnauthenticatedError, PermissionDeniedError)):
                    call()
    assert admin_tc.status(xid) == str(G.BEGIN)  # nothing happened
