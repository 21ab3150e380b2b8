"""Global and branch statuses, numbered as in Seata and in the proto enums."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["BranchStatus", "BranchType", "GlobalStatus"]


class GlobalStatus(IntEnum):
    UNKNOWN = 0
    BEGIN = 1
    COMMITTING = 2
    COMMIT_RETRYING = 3
    ROLLBACKING = 4
    ROLLBACK_RETRYING = 5
    TIMEOUT_ROLLBACKING = 6
    TIMEOUT_ROLLBACK_RETRYING = 7
    ASYNC_COMMITTING = 8
    COMMITTED = 9
    COMMIT_FAILED = 10
    ROLLBACKED = 11
    ROLLBACK_FAILED = 12
    TIMEOUT_ROLLBACKED = 13
    TIMEOUT_ROLLBACK_FAILED = 14
    FINISHED = 15
    COMMIT_RETRY_TIMEOUT = 16
    ROLLBACK_RETRY_TIMEOUT = 17

    @property
    def seata_name(self) -> str:
        """Seata's spelling, e.g. ``AsyncCommitting``; used in messages."""
        return _SEATA_GLOBAL[self]

    @property
    def is_rolling_back(self) -> bool:
        return self in _ROLLING_BACK

    @property
    def is_committing(self) -> bool:
        return self in _COMMITTING

    @property
    def is_final(self) -> bool:
        """No phase two work is left (successful or failed for good)."""
        return self in _FINAL


class BranchStatus(IntEnum):
    UNKNOWN = 0
    REGISTERED = 1
    PHASE_ONE_DONE = 2
    PHASE_ONE_FAILED = 3
    PHASE_ONE_TIMEOUT = 4
    PHASE_TWO_COMMITTED = 5
    PHASE_TWO_COMMIT_FAILED_RETRYABLE = 6
    PHASE_TWO_COMMIT_FAILED_UNRETRYABLE = 7
    PHASE_TWO_ROLLBACKED = 8
    PHASE_TWO_ROLLBACK_FAILED_RETRYABLE = 9
    PHASE_TWO_ROLLBACK_FAILED_UNRETRYABLE = 10


class BranchType(IntEnum):
    UNSPECIFIED = 0
    AT = 1
    TCC = 2
    SAGA = 3
    XA = 4


_SEATA_GLOBAL = {
    GlobalStatus.UNKNOWN: "UnKnown",
    GlobalStatus.BEGIN: "Begin",
    GlobalStatus.COMMITTING: "Committing",
    GlobalStatus.COMMIT_RETRYING: "CommitRetrying",
    GlobalStatus.ROLLBACKING: "Rollbacking",
    GlobalStatus.ROLLBACK_RETRYING: "RollbackRetrying",
    GlobalStatus.TIMEOUT_ROLLBACKING: "TimeoutRollbacking",
    GlobalStatus.TIMEOUT_ROLLBACK_RETRYING: "TimeoutRollbackRetrying",
    GlobalStatus.ASYNC_COMMITTING: "AsyncCommitting",
    GlobalStatus.COMMITTED: "Committed",
    GlobalStatus.COMMIT_FAILED: "CommitFailed",
    GlobalStatus.ROLLBACKED: "Rollbacked",
    GlobalStatus.ROLLBACK_FAILED: "RollbackFailed",
    GlobalStatus.TIMEOUT_ROLLBACKED: "TimeoutRollbacked",
    GlobalStatus.TIMEOUT_ROLLBACK_FAILED: "TimeoutRollbackFailed",
    GlobalStatus.FINISHED: "Finished",
    GlobalStatus.COMMIT_RETRY_TIMEOUT: "CommitRetryTimeout",
    GlobalStatus.ROLLBACK_RETRY_TIMEOUT: "RollbackRetryTimeout",
}
_ROLLING_BACK = frozenset(
    {
        GlobalStatus.ROLLBACKING,
        GlobalStatus.ROLLBACK_RETRYING,
        GlobalStatus.TIMEOUT_ROLLBACKING,
        GlobalStatus.TIMEOUT_ROLLBACK_RETRYING,
    }
)
_COMMITTING = frozenset(
    {GlobalStatus.COMMITTING, GlobalStatus.COMMIT_RETRYING, GlobalStatus.ASYNC_COMMITTING}
)
_FINAL = frozenset(
    {
        GlobalStatus.COMMITTED,
        GlobalStatus.COMMIT_FAILED,
        GlobalStatus.ROLLBACKED,
        GlobalStatus.ROLLBACK_FAILED,
        GlobalStatus.TIMEOUT_ROLLBACKED,
        GlobalStatus.TIMEOUT_ROLLBACK_FAILED,
        GlobalStatus.FINISHED,
        GlobalStatus.COMMIT_RETRY_TIMEOUT,
        GlobalStatus.ROLLBACK_RETRY_TIMEOUT,
    }
)
