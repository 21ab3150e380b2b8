"""Errors of the resource manager (``rm``) package.

Each has a stable ``code``; the base :class:`RMError` groups them.
"""

from __future__ import annotations

import grpc

from atx.errors import AtxError

__all__ = [
    "DDLInGlobalTransactionError",
    "DirtyWriteError",
    "GlobalLockWaitTimeout",
    "InvalidConfigurationError",
    "InvalidUsageError",
    "NotInGlobalTransactionError",
    "PropagationError",
    "RMError",
    "ResourceNotFoundError",
    "TableMetaError",
    "TransactionRolledBackError",
    "TransactionTimeoutError",
    "UndoLogError",
    "UnsupportedSQLError",
]


class RMError(AtxError):
    """Base of every error raised by the resource manager."""

    code = "RM_ERROR"
    grpc_code = grpc.StatusCode.INTERNAL


class UnsupportedSQLError(RMError):
    """A statement AT mode cannot run safely; raised before anything executes.

    ``construct`` names what was refused (e.g. ``"REPLACE"``, ``"IN subquery"``).
    """

    code = "RM_UNSUPPORTED_SQL"
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, construct: str, sql: str, message: str | None = None) -> None:
        super().__init__(
            message or f"unsupported in a global transaction: {construct}: {sql!r}",
            construct=construct,
            sql=sql,
        )
        self.construct = construct
        self.sql = sql


class DirtyWriteError(RMError):
    """A row changed outside the global transaction after phase one; undo refused.

    Unretryable: the rows are left as they are and the branch needs a human.
    """

    code = "RM_DIRTY_WRITE"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    retryable = False

    def __init__(
        self,
        xid: str,
        branch_id: int,
        table: str,
        pk: str,
        message: str | None = None,
    ) -> None:
        super().__init__(
            message or f"dirty write on {table} row {pk} (xid {xid}, branch {branch_id})",
            xid=xid,
            branch_id=branch_id,
            table=table,
            pk=pk,
        )
        self.xid = xid
        self.branch_id = branch_id
        self.table = table
        self.pk = pk


class TableMetaError(RMError):
    """Table metadata could not be read (e.g. the table does not exist)."""

    code = "RM_TABLE_META"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, table: str, message: str | None = None) -> None:
        super().__init__(message or f"cannot read metadata of table {table!r}", table=table)
        self.table = table


class UndoLogError(RMError):
    """An undo log row cannot be decoded (unknown serializer, corrupt data)."""

    code = "RM_UNDO_LOG"
    grpc_code = grpc.StatusCode.DATA_LOSS


# --- runtime errors (RM-RUNTIME: TM, proxy, global lock, propagation) ----------


class GlobalLockWaitTimeout(RMError):
    """Global row locks stayed held by another transaction through every retry.

    The local transaction was rolled back: nothing of it is left.
    """

    code = "RM_GLOBAL_LOCK_WAIT_TIMEOUT"
    grpc_code = grpc.StatusCode.ABORTED
    retryable = False

    def __init__(
        self, resource_id: str, lock_keys: str, holder_xid: str = "", xid: str = ""
    ) -> None:
        super().__init__(
            f"global lock wait timeout on {resource_id} rows {lock_keys!r}"
            + (f" held by {holder_xid}" if holder_xid else "")
            + (f" (xid {xid})" if xid else ""),
            resource_id=resource_id,
            lock_keys=lock_keys,
            holder_xid=holder_xid,
            xid=xid,
        )


class TransactionTimeoutError(RMError):
    """The global transaction's body outlived its timeout; it was rolled back."""

    code = "RM_TRANSACTION_TIMEOUT"
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED

    def __init__(self, xid: str, timeout: float) -> None:
        super().__init__(
            f"global transaction {xid} exceeded its timeout of {timeout:g} s and was rolled back",
            xid=xid,
            timeout=timeout,
        )


class TransactionRolledBackError(RMError):
    """The TC ended a transaction the TM asked to commit in a rollback status."""

    code = "RM_TRANSACTION_ROLLED_BACK"
    grpc_code = grpc.StatusCode.ABORTED

    def __init__(self, xid: str, status: str) -> None:
        super().__init__(
            f"global transaction {xid} could not commit: its status is {status}",
            xid=xid,
            status=status,
        )


class PropagationError(RMError):
    """A propagation rule was broken (NEVER inside a transaction, MANDATORY outside)."""

    code = "RM_PROPAGATION"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class NotInGlobalTransactionError(PropagationError):
    """An operation needs a global transaction and there is none."""

    code = "RM_NOT_IN_GLOBAL_TRANSACTION"


class DDLInGlobalTransactionError(UnsupportedSQLError):
    """DDL cannot be undone, so it is refused inside a global transaction."""

    code = "RM_DDL_IN_GLOBAL_TRANSACTION"

    def __init__(self, sql: str) -> None:
        super().__init__("DDL", sql, f"DDL is refused inside a global transaction: {sql!r}")


class ResourceNotFoundError(RMError):
    """No resource with this id is registered in this process."""

    code = "RM_RESOURCE_NOT_FOUND"
    grpc_code = grpc.StatusCode.NOT_FOUND

    def __init__(self, resource_id: str) -> None:
        super().__init__(f"resource {resource_id!r} is not registered", resource_id=resource_id)


class InvalidConfigurationError(RMError, ValueError):
    """A bad value given to ``configure``, a decorator or a resource.

    Also a ``ValueError``, as Python callers expect of a bad argument.
    """

    code = "RM_INVALID_CONFIGURATION"
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class InvalidUsageError(RMError, TypeError):
    """An API used with the wrong kind of object (also a ``TypeError``)."""

    code = "RM_INVALID_USAGE"
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
