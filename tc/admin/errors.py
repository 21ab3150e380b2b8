"""Errors of the admin service: refused actions and bad admin requests.

A refused action is FAILED_PRECONDITION and names the session's current
status (Seata's spelling) and why the action does not fit it; each action
has its own stable code so that scripts can tell them apart.
"""

from __future__ import annotations

from typing import ClassVar

import grpc

from atx.errors import AtxError, InvalidArgumentError

__all__ = [
    "ActionRefusedError",
    "ConfirmationRequiredError",
    "DeleteRefusedError",
    "InvalidFilterError",
    "InvalidPageSizeError",
    "ResumeRetryRefusedError",
    "RetryRefusedError",
    "RollbackRefusedError",
    "StopRetryRefusedError",
]


class ActionRefusedError(AtxError):
    """An admin action that does not fit the session's current status."""

    code = "ADMIN_ACTION_REFUSED"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    action: ClassVar[str] = "act on"

    def __init__(self, xid: str, status: str, reason: str) -> None:
        super().__init__(
            f"cannot {self.action} global transaction {xid!r} (status {status}): {reason}",
            xid=xid,
            status=status,
            action=self.action,
            reason=reason,
        )

    @property
    def xid(self) -> str:
        return self.details.get("xid", "")

    @property
    def status(self) -> str:
        return self.details.get("status", "")


class RetryRefusedError(ActionRefusedError):
    code = "ADMIN_RETRY_REFUSED"
    action = "retry phase two of"


class RollbackRefusedError(ActionRefusedError):
    code = "ADMIN_ROLLBACK_REFUSED"
    action = "roll back"


class StopRetryRefusedError(ActionRefusedError):
    code = "ADMIN_STOP_RETRY_REFUSED"
    action = "stop retrying"


class ResumeRetryRefusedError(ActionRefusedError):
    code = "ADMIN_RESUME_RETRY_REFUSED"
    action = "resume retrying"


class DeleteRefusedError(ActionRefusedError):
    code = "ADMIN_DELETE_REFUSED"
    action = "delete"


class ConfirmationRequiredError(InvalidArgumentError):
    """A destructive action sent without ``confirm = true``."""

    code = "CONFIRMATION_REQUIRED"

    def __init__(self, action: str, xid: str) -> None:
        super().__init__(
            f"{action} of global transaction {xid!r} is destructive: "
            "set the field 'confirm' to true to go ahead",
            field="confirm",
            action=action,
            xid=xid,
        )


class InvalidPageSizeError(InvalidArgumentError):
    code = "INVALID_PAGE_SIZE"

    def __init__(self, page_size: int, max_size: int) -> None:
        super().__init__(
            f"page_size {page_size} is out of range (0 for the default, 1..{max_size})",
            field="page_size",
            page_size=page_size,
        )


class InvalidFilterError(InvalidArgumentError):
    """A filter field that cannot match anything sensible (bad enum, reversed range)."""

    code = "INVALID_ADMIN_FILTER"

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"invalid {field} {value!r}: {reason}", field=field, value=value)
