"""Store records to admin protobuf messages."""

from __future__ import annotations

from atx.tc.store.base import AuditRecord, BranchRecord, GlobalRecord, LockRecord
from atx.v1 import admin_pb2, types_pb2

__all__ = ["audit_message", "branch_message", "lock_message", "session_message"]


def branch_message(record: BranchRecord) -> types_pb2.BranchSession:
    return types_pb2.BranchSession(
        branch_id=record.branch_id,
        xid=record.xid,
        resource_id=record.resource_id,
        branch_type=types_pb2.BranchType.ValueType(int(record.branch_type)),
        status=types_pb2.BranchStatus.ValueType(int(record.status)),
        lock_keys=record.lock_keys,
        application_data=record.application_data,
        client_id=record.client_id,
        begin_time_ms=record.begin_time_ms,
        modified_time_ms=record.modified_time_ms,
    )


def session_message(record: GlobalRecord) -> types_pb2.GlobalSession:
    return types_pb2.GlobalSession(
        xid=record.xid,
        transaction_id=record.transaction_id,
        status=types_pb2.GlobalStatus.ValueType(int(record.status)),
        application_id=record.application_id,
        transaction_name=record.transaction_name,
        timeout_ms=record.timeout_ms,
        begin_time_ms=record.begin_time_ms,
        modified_time_ms=record.modified_time_ms,
        branches=[branch_message(b) for b in record.branches],
        retry_stopped=record.retry_stopped,
        retry_count=record.retry_count,
    )


def lock_message(record: LockRecord) -> types_pb2.GlobalLock:
    return types_pb2.GlobalLock(
        xid=record.xid,
        transaction_id=record.transaction_id,
        branch_id=record.branch_id,
        resource_id=record.resource_id,
        table_name=record.table_name,
        pk=record.pk,
        row_key=record.row_key,
        created_time_ms=record.created_time_ms,
    )


def audit_message(record: AuditRecord) -> admin_pb2.AuditEntry:
    return admin_pb2.AuditEntry(
        id=record.id,
        time_ms=record.time_ms,
        operator=record.operator,
        action=record.action,
        xid=record.xid,
        result=record.result,
        detail=record.detail,
    )
