"""Admin tools of the TC: the AdminService servicer, its actions, the
``atx admin`` command line and the web console (``atx console``)."""

from atx.tc.admin.actions import AdminActions, PhaseTwoDriver
from atx.tc.admin.errors import (
    ActionRefusedError,
    ConfirmationRequiredError,
    DeleteRefusedError,
    InvalidFilterError,
    InvalidPageSizeError,
    ResumeRetryRefusedError,
    RetryRefusedError,
    RollbackRefusedError,
    StopRetryRefusedError,
)
from atx.tc.admin.servicer import AdminServicer

__all__ = [
    "ActionRefusedError",
    "AdminActions",
    "AdminServicer",
    "ConfirmationRequiredError",
    "DeleteRefusedError",
    "InvalidFilterError",
    "InvalidPageSizeError",
    "PhaseTwoDriver",
    "ResumeRetryRefusedError",
    "RetryRefusedError",
    "RollbackRefusedError",
    "StopRetryRefusedError",
]
