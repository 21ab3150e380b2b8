"""Admin messages as stable JSON (for ``--json`` and the web console):
statuses by their Seata names, times in ms since the epoch."""

from __future__ import annotations

import re
from typing import Any

from atx.status import GlobalStatus
from atx.tc.admin.errors import InvalidFilterError
from atx.v1 import admin_pb2, deferred_call_pb2, types_pb2

__all__ = [
    "BRANCH_STATUS_NAMES",
    "BRANCH_TYPE_NAMES",
    "DEFERRED_STATE_NAMES",
    "audit_json",
    "branch_json",
    "deferred_json",
    "global_status_name",
    "lock_json",
    "parse_deferred_state",
    "parse_global_status",
    "session_json",
]

JSON = dict[str, Any]

#: Seata's spelling of BranchStatus.
BRANCH_STATUS_NAMES = {
    0: "Unknown",
    1: "Registered",
    2: "PhaseOne_Done",
    3: "PhaseOne_Failed",
    4: "PhaseOne_Timeout",
    5: "PhaseTwo_Committed",
    6: "PhaseTwo_CommitFailed_Retryable",
    7: "PhaseTwo_CommitFailed_Unretryable",
    8: "PhaseTwo_Rollbacked",
    9: "PhaseTwo_RollbackFailed_Retryable",
    10: "PhaseTwo_RollbackFailed_Unretryable",
}
BRANCH_TYPE_NAMES = {0: "Unspecified", 1: "AT", 2: "TCC", 3: "SAGA", 4: "XA"}
DEFERRED_STATE_NAMES = {0: "Unspecified", 1: "Pending", 2: "Done", 3: "Dead"}


def global_status_name(value: int) -> str:
    try:
        return GlobalStatus(value).seata_name
    except ValueError:
        return f"Unknown({value})"


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_STATUS_BY_KEY: dict[str, GlobalStatus] = {}
for _status in GlobalStatus:
    _STATUS_BY_KEY[_squash(_status.seata_name)] = _status
    _STATUS_BY_KEY[_squash(_status.name)] = _status
    _STATUS_BY_KEY[str(int(_status))] = _status


def parse_global_status(text: str) -> GlobalStatus:
    """``RollbackFailed``, ``ROLLBACK_FAILED``, ``rollback-failed`` or ``12``."""
    status = _STATUS_BY_KEY.get(_squash(text))
    if status is None:
        known = ", ".join(s.seata_name for s in GlobalStatus)
        raise InvalidFilterError("status", text, f"known statuses: {known}")
    return status


def parse_deferred_state(text: str) -> int:
    for value, name in DEFERRED_STATE_NAMES.items():
        if value and _squash(text) == _squash(name):
            return value
    raise InvalidFilterError("state", text, "known states: pending, done, dead")


def branch_json(branch: types_pb2.BranchSession) -> JSON:
    return {
        "branch_id": branch.branch_id,
        "xid": branch.xid,
        "resource_id": branch.resource_id,
        "branch_type": BRANCH_TYPE_NAMES.get(branch.branch_type, str(branch.branch_type)),
        "status": BRANCH_STATUS_NAMES.get(branch.status, str(branch.status)),
        "lock_keys": branch.lock_keys,
        "application_data": branch.application_data,
        "client_id": branch.client_id,
        "begin_time_ms": branch.begin_time_ms,
        "modified_time_ms": branch.modified_time_ms,
    }


def session_json(session: types_pb2.GlobalSession, with_branches: bool = True) -> JSON:
    out: JSON = {
        "xid": session.xid,
        "transaction_id": session.transaction_id,
        "status": global_status_name(session.status),
        "application_id": session.application_id,
        "transaction_name": session.transaction_name,
        "timeout_ms": session.timeout_ms,
        "begin_time_ms": session.begin_time_ms,
        "modified_time_ms": session.modified_time_ms,
        "retry_stopped": session.retry_stopped,
        "retry_count": session.retry_count,
    }
    if with_branches:
        out["branches"] = [branch_json(b) for b in session.branches]
    return out


def lock_json(lock: types_pb2.GlobalLock) -> JSON:
    return {
        "xid": lock.xid,
        "transaction_id": lock.transaction_id,
        "branch_id": lock.branch_id,
        "resource_id": lock.resource_id,
        "table_name": lock.table_name,
        "pk": lock.pk,
        "row_key": lock.row_key,
        "created_time_ms": lock.created_time_ms,
    }


def audit_json(entry: admin_pb2.AuditEntry) -> JSON:
    return {
        "id": entry.id,
        "time_ms": entry.time_ms,
        "operator": entry.operator,
        "action": entry.action,
        "xid": entry.xid,
        "result": entry.result,
        "detail": entry.detail,
    }


def deferred_json(call: deferred_call_pb2.DeferredCall) -> JSON:
    return {
        "id": call.id,
        "xid": call.xid,
        "target": call.target,
        "payload": call.payload,
        "state": DEFERRED_STATE_NAMES.get(call.state, str(call.state)),
        "attempts": call.attempts,
        "last_error": call.last_error,
        "next_attempt_ms": call.next_attempt_ms,
        "created_time_ms": call.created_time_ms,
    }
