"""The atx error hierarchy and its one mapping to gRPC status and back.

Every error has a stable ``code`` (a string that never changes once
released), a gRPC status code, a message, and string ``details``. On the
wire an error travels as a gRPC status whose details hold a
``google.rpc.ErrorInfo`` with ``domain="atx"``, ``reason=code`` and
``metadata=details``; :func:`from_rpc_error` rebuilds the same type.

Errors of the coordinator protocol live here because both sides use them:
the TC raises them and the RM catches them. Each package adds its own in
its ``errors`` module; subclasses register themselves by code.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from atx.metadata import ERROR_DOMAIN

__all__ = [
    "AtxError",
    "BindError",
    "BranchNotFoundError",
    "ConfigurationError",
    "DatabaseAccessDeniedError",
    "DatabaseNotFoundError",
    "DatabaseUnreachableError",
    "DeadlineExceededError",
    "GlobalTransactionNotFoundError",
    "IllegalStatusError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidLockKeysError",
    "InvalidUrlOptionError",
    "LockConflictError",
    "NotFoundError",
    "PermissionDeniedError",
    "RemoteError",
    "SQLiteOpenError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnknownJobError",
    "UnsupportedDatabaseError",
    "UsageError",
    "abort",
    "abort_async",
    "error_class",
    "from_rpc_error",
    "map_errors",
    "to_status",
]

_REGISTRY: dict[str, type[AtxError]] = {}
E = TypeVar("E", bound="AtxError")


class AtxError(Exception):
    """Base of every atx error.

    Subclasses set ``code`` (stable, unique) and ``grpc_code``. ``retryable``
    tells callers that the same request may succeed later.
    """

    code: ClassVar[str] = "ATX_ERROR"
    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, str] = {k: str(v) for k, v in details.items() if v is not None}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            return  # an abstract grouping class: shares its parent's code
        existing = _REGISTRY.get(cls.code)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise TypeError(f"error code {cls.code!r} is taken by {existing.__qualname__}")
        _REGISTRY[cls.code] = cls

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, AtxError)
            and (other.code, other.message, other.details)
            == (self.code, self.message, self.details)
        )

    def __hash__(self) -> int:
        return hash((type(self), self.code, self.message))

    @classmethod
    def _rebuild(cls: type[E], message: str, details: Mapping[str, str]) -> E:
        """Rebuild from the wire without calling a subclass's own __init__."""
        error = cls.__new__(cls)
        AtxError.__init__(error, message, **details)
        return error


_REGISTRY[AtxError.code] = AtxError


# --- generic errors, one per gRPC status an edge may need -------------------


class InvalidArgumentError(AtxError):
    """A malformed request: refused before anything happens."""

    code = "INVALID_ARGUMENT"
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(AtxError):
    code = "NOT_FOUND"
    grpc_code = grpc.StatusCode.NOT_FOUND


class UnauthenticatedError(AtxError):
    code = "UNAUTHENTICATED"
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(AtxError):
    code = "PERMISSION_DENIED"
    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class UnavailableError(AtxError):
    code = "UNAVAILABLE"
    grpc_code = grpc.StatusCode.UNAVAILABLE
    retryable = True


class DeadlineExceededError(AtxError):
    code = "DEADLINE_EXCEEDED"
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    retryable = True


class InternalError(AtxError):
    code = "INTERNAL"
    grpc_code = grpc.StatusCode.INTERNAL


class RemoteError(AtxError):
    """A failure from a peer that sent no atx error details (or an unknown code)."""

    code = "REMOTE_ERROR"
    grpc_code = grpc.StatusCode.UNKNOWN


# --- errors of the coordinator protocol --------------------------------------


class UnknownJobError(NotFoundError):
    """``run_now`` of a job name no runner registered (atx.jobs)."""

    code = "JOB_UNKNOWN"

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"no job named {name!r}; known: {', '.join(sorted(known)) or 'none'}", job=name
        )


class GlobalTransactionNotFoundError(NotFoundError):
    """The XID names no global transaction the TC knows."""

    code = "GLOBAL_TRANSACTION_NOT_FOUND"

    def __init__(self, xid: str) -> None:
        super().__init__(f"global transaction {xid!r} not found", xid=xid)

    @property
    def xid(self) -> str:
        return self.details.get("xid", "")


class BranchNotFoundError(NotFoundError):
    code = "BRANCH_NOT_FOUND"

    def __init__(self, xid: str, branch_id: int) -> None:
        super().__init__(
            f"branch {branch_id} of global transaction {xid!r} not found",
            xid=xid,
            branch_id=branch_id,
        )


class IllegalStatusError(AtxError):
    """The request does not fit the global transaction's current status."""

    code = "ILLEGAL_STATUS"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, xid: str, status: str, action: str) -> None:
        super().__init__(
            f"cannot {action} global transaction {xid!r}: its status is {status}",
            xid=xid,
            status=status,
            action=action,
        )

    @property
    def xid(self) -> str:
        return self.details.get("xid", "")

    @property
    def status(self) -> str:
        return self.details.get("status", "")


class LockConflictError(AtxError):
    """Rows are locked by another global transaction; retry later.

    ``fail_fast`` is set when the holder is already rolling back, so that
    waiting is pointless (Seata's LockKeyConflictFailFast).
    """

    code = "LOCK_CONFLICT"
    grpc_code = grpc.StatusCode.ABORTED
    retryable = True

    def __init__(self, holder_xid: str, row_key: str, *, fail_fast: bool = False) -> None:
        super().__init__(
            f"row {row_key!r} is locked by global transaction {holder_xid!r}"
            + (", which is rolling back" if fail_fast else ""),
            holder_xid=holder_xid,
            row_key=row_key,
            fail_fast="true" if fail_fast else "false",
        )

    @property
    def holder_xid(self) -> str:
        return self.details.get("holder_xid", "")

    @property
    def fail_fast(self) -> bool:
        return self.details.get("fail_fast") == "true"


class InvalidLockKeysError(InvalidArgumentError):
    code = "INVALID_LOCK_KEYS"

    def __init__(self, lock_keys: str, reason: str) -> None:
        super().__init__(f"malformed lock keys {lock_keys!r}: {reason}", lock_keys=lock_keys)


# --- start-up errors: a command's flags, URLs and the stores they name ------------
# The CLI prints these as one line plus ``details["hint"]`` and exits 2.


class UsageError(InvalidArgumentError):
    """Bad flags: a wrong value, a missing partner flag."""

    code = "USAGE_ERROR"


class InvalidUrlOptionError(InvalidArgumentError):
    """A database URL carries a query option atx does not know or cannot use."""

    code = "INVALID_URL_OPTION"


class UnsupportedDatabaseError(InvalidArgumentError):
    """A database URL names a kind of database atx does not support (yet)."""

    code = "UNSUPPORTED_DATABASE"


class ConfigurationError(AtxError):
    """The environment a command starts in is wrong: a database that does not
    exist or refuses us, a port taken. Raised with ``hint=`` in details."""

    code = "CONFIGURATION_ERROR"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class DatabaseNotFoundError(ConfigurationError):
    code = "DATABASE_NOT_FOUND"


class DatabaseAccessDeniedError(ConfigurationError):
    code = "DATABASE_ACCESS_DENIED"


class DatabaseUnreachableError(ConfigurationError):
    code = "DATABASE_UNREACHABLE"


class SQLiteOpenError(ConfigurationError):
    code = "SQLITE_CANNOT_OPEN"


class BindError(ConfigurationError):
    """A server cannot listen on its address (taken, or not this host's)."""

    code = "CANNOT_BIND"


# --- the mapping --------------------------------------------------------------


def error_class(code: str) -> type[AtxError] | None:
    """The registered error type for a stable code, if any."""
    return _REGISTRY.get(code)


def to_status(error: AtxError) -> grpc.Status:
    """The gRPC status that carries ``error``."""
    info = error_details_pb2.ErrorInfo(
        reason=error.code, domain=ERROR_DOMAIN, metadata=error.details
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=error.grpc_code.value[0], message=error.message, details=[detail]
    )
    return rpc_status.to_status(status)


_GENERIC_BY_GRPC: dict[grpc.StatusCode, type[AtxError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.INTERNAL: InternalError,
}


_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _status_of(error: grpc.RpcError) -> status_pb2.Status | None:
    """The rich status a peer attached, for sync calls and grpc.aio errors alike."""
    trailing = getattr(error, "trailing_metadata", None)
    for key, value in (trailing() if callable(trailing) else None) or ():
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status()
            status.ParseFromString(value)
            return status
    return None


def from_rpc_error(error: grpc.RpcError) -> AtxError:
    """Rebuild the atx error a peer sent, or a generic one for its status."""
    status = _status_of(error)
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                if info.domain != ERROR_DOMAIN:
                    continue
                cls = _REGISTRY.get(info.reason)
                if cls is None:
                    rebuilt = RemoteError._rebuild(status.message, dict(info.metadata))
                    rebuilt.details["remote_code"] = info.reason
                    return rebuilt
                return cls._rebuild(status.message, dict(info.metadata))
    code_of = getattr(error, "code", None)
    code = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
    details_of = getattr(error, "details", None)
    message = (details_of() if callable(details_of) else None) or str(error)
    return _GENERIC_BY_GRPC.get(code, RemoteError)._rebuild(message, {"grpc_code": code.name})


def abort(context: grpc.ServicerContext, error: AtxError) -> NoReturn:
    """End a sync handler's call with ``error``."""
    context.abort_with_status(to_status(error))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


async def abort_async(context: grpc.aio.ServicerContext[Any, Any], error: AtxError) -> NoReturn:
    """End a grpc.aio handler's call with ``error``."""
    status = to_status(error)
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("abort returned")  # pragma: no cover


F = TypeVar("F", bound=Callable[..., Any])


def map_errors(handler: F) -> F:
    """Decorate a servicer method so an AtxError it raises becomes its status.

    Works for sync and ``async def`` handlers.
    """
    if inspect.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def async_wrapper(self: Any, request: Any, context: Any) -> Any:
            try:
                return await handler(self, request, context)
            except AtxError as error:
                await abort_async(context, error)

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(handler)
    def wrapper(self: Any, request: Any, context: Any) -> Any:
        try:
            return handler(self, request, context)
        except AtxError as error:
            abort(context, error)

    return wrapper  # type: ignore[return-value]
