"""Errors of the transaction coordinator (protocol errors live in atx.errors)."""

from __future__ import annotations

import grpc

from atx.errors import AtxError, InvalidArgumentError, InvalidLockKeysError, UnavailableError

__all__ = [
    "BranchDispatchError",
    "InvalidLockKeysError",
    "InvalidTimeoutError",
    "InvalidXidError",
    "NoRMAttachedError",
    "TCError",
]


class TCError(AtxError):
    """Base of the errors only the TC raises."""

    code = "TC_ERROR"
    grpc_code = grpc.StatusCode.INTERNAL


class InvalidXidError(InvalidArgumentError):
    code = "INVALID_XID"

    def __init__(self, xid: str, reason: str) -> None:
        super().__init__(f"invalid XID {xid!r}: {reason}", xid=xid)


class InvalidTimeoutError(InvalidArgumentError):
    code = "INVALID_TIMEOUT"

    def __init__(self, timeout_ms: int, max_ms: int) -> None:
        super().__init__(
            f"timeout {timeout_ms} ms is out of range (1..{max_ms} ms, 0 for the default)",
            timeout_ms=timeout_ms,
            max_timeout_ms=max_ms,
        )


class NoRMAttachedError(UnavailableError):
    """No live RM Attach stream serves the branch's resource: phase two waits."""

    code = "NO_RM_ATTACHED"

    def __init__(self, resource_id: str) -> None:
        super().__init__(
            f"no resource manager attached for resource {resource_id!r}", resource_id=resource_id
        )


class BranchDispatchError(UnavailableError):
    """A phase-two command got no answer (channel closed or timed out)."""

    code = "BRANCH_DISPATCH_FAILED"
