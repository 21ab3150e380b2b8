"""The TC's storage contract: one interface, four implementations.

Every method is atomic on its own and durable before it returns: once the
TC has acknowledged a change to a client, a ``kill -9`` does not lose it.
Several TC nodes may share one store (Redis, MySQL, PostgreSQL); the methods that
decide something (status changes, branch registration, lock acquisition,
job locks) are therefore compare-and-set operations inside the store, never
read-then-write in the TC process.

Stores are created by URL through a registry (``sqlite:///path``,
``redis://host:port/db?key_prefix=p:``, ``mysql://user@host:port/db``,
``postgresql://user@host:port/db``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

from atx.errors import InvalidArgumentError, LockConflictError
from atx.status import BranchStatus, BranchType, GlobalStatus

__all__ = [
    "AuditRecord",
    "BranchRecord",
    "GlobalRecord",
    "GlobalSessionFilter",
    "LockFilter",
    "LockRecord",
    "Page",
    "RowLock",
    "SessionStore",
    "create_store",
    "decode_page_token",
    "encode_page_token",
    "history_branch_status",
    "invalid_page_token",
    "lock_conflict",
    "register_store",
]


@dataclass
class GlobalRecord:
    xid: str
    transaction_id: int
    status: GlobalStatus
    application_id: str
    transaction_name: str
    timeout_ms: int
    begin_time_ms: int
    modified_time_ms: int
    retry_stopped: bool = False
    retry_count: int = 0
    #: When the next background phase-two attempt is due (ms since epoch).
    next_retry_ms: int = 0
    #: Filled only by the methods that say so.
    branches: list[BranchRecord] = field(default_factory=list)


@dataclass
class BranchRecord:
    branch_id: int
    xid: str
    transaction_id: int
    resource_id: str
    branch_type: BranchType
    status: BranchStatus
    lock_keys: str
    application_data: str
    client_id: str
    begin_time_ms: int
    modified_time_ms: int


@dataclass(frozen=True)
class RowLock:
    """One row to lock. ``row_key`` is ``resourceId^^^table^^^pk``."""

    resource_id: str
    table_name: str
    pk: str

    @property
    def row_key(self) -> str:
        return f"{self.resource_id}^^^{self.table_name}^^^{self.pk}"


@dataclass
class LockRecord:
    row_key: str
    xid: str
    transaction_id: int
    branch_id: int
    resource_id: str
    table_name: str
    pk: str
    created_time_ms: int


@dataclass
class AuditRecord:
    id: int
    time_ms: int
    operator: str
    action: str
    xid: str
    result: str
    detail: str


@dataclass(frozen=True)
class GlobalSessionFilter:
    statuses: frozenset[GlobalStatus] = frozenset()
    application_id: str = ""
    transaction_name: str = ""
    xid: str = ""
    begin_time_from_ms: int = 0
    begin_time_to_ms: int = 0
    include_history: bool = False


@dataclass(frozen=True)
class LockFilter:
    xid: str = ""
    resource_id: str = ""
    table_name: str = ""
    pk: str = ""


T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    #: Opaque; empty when there is no next page.
    next_token: str
    total: int


@runtime_checkable
class SessionStore(Protocol):
    """Durable state of one TC or a cluster of TC nodes."""

    # --- identity -------------------------------------------------------------
    def next_id(self) -> int:
        """A positive id unique across every node sharing this store
        (transaction ids and branch ids share the sequence)."""
        ...

    def reserve_ids(self, count: int) -> tuple[int, int]:
        """A block of fresh ids from the same sequence, for a TM to make XIDs
        with: ``(first, how_many)``. ``how_many`` is ``count`` where the store
        can (a PostgreSQL sequence gives its fixed block)."""
        ...

    # --- global sessions ------------------------------------------------------
    def insert_global(self, record: GlobalRecord) -> None: ...

    def get_global(self, xid: str, with_branches: bool = True) -> GlobalRecord | None:
        """The active or historical session, or None. Branches come in
        registration order (phase-two rollback walks them in reverse)."""
        ...

    def change_status(
        self,
        xid: str,
        expected: Collection[GlobalStatus],
        new: GlobalStatus,
        *,
        release_locks: bool = False,
        next_retry_ms: int | None = None,
        retry_count: int | None = None,
    ) -> GlobalRecord | None:
        """Compare-and-set: move ``xid`` to ``new`` if its status is in
        ``expected``; optionally release all its locks in the same atomic
        step. Returns the updated record (without branches), or None when the
        status did not match or the session does not exist."""
        ...

    def update_global(
        self,
        xid: str,
        *,
        retry_stopped: bool | None = None,
        next_retry_ms: int | None = None,
        retry_count: int | None = None,
    ) -> GlobalRecord | None:
        """Change the bookkeeping fields that are not the status."""
        ...

    def find_globals(
        self,
        statuses: Collection[GlobalStatus],
        *,
        due_before_ms: int | None = None,
        limit: int = 100,
    ) -> list[GlobalRecord]:
        """Active sessions in ``statuses`` (oldest first, with branches in
        registration order) whose
        ``next_retry_ms`` is at most ``due_before_ms`` when given. Sessions
        with ``retry_stopped`` are included; the caller decides."""
        ...

    def finish_global(self, xid: str, final_status: GlobalStatus) -> None:
        """Remove the session, its branches and its locks from the active set
        and keep it in the bounded history (for admins). With COMMITTED, the
        history shows its branches as PHASE_TWO_COMMITTED (except those
        PHASE_ONE_FAILED, which phase two skips): see
        :func:`history_branch_status`."""
        ...

    def delete_global(self, xid: str) -> bool:
        """Remove the session everywhere (active and history), its branches
        and its locks. Returns False if it did not exist."""
        ...

    def list_globals(
        self, flt: GlobalSessionFilter, page_size: int, page_token: str
    ) -> Page[GlobalRecord]:
        """Newest first (begin time, then xid), without branches."""
        ...

    # --- branches and locks -------------------------------------------------
    def register_branch(self, branch: BranchRecord, rows: Sequence[RowLock]) -> None:
        """Atomically: check that the session is in BEGIN (else raise
        ``IllegalStatusError(xid, status.name, "register a branch in")``;
        GlobalTransactionNotFoundError if unknown), acquire every row lock
        (all or nothing; rows already held by the same xid are fine; a row
        held by another xid raises
        LockConflictError naming the holder, with fail_fast when the holder is
        rolling back), and insert the branch."""
        ...

    def update_branch_status(self, xid: str, branch_id: int, status: BranchStatus) -> bool:
        """False when the branch does not exist."""
        ...

    def release_locks(self, xid: str, branch_id: int | None = None) -> int:
        """Release the locks of a session (or one branch); returns how many."""
        ...

    def query_locks(self, rows: Sequence[RowLock], xid: str = "") -> str | None:
        """The XID of another transaction holding one of ``rows``, or None."""
        ...

    def list_locks(self, flt: LockFilter, page_size: int, page_token: str) -> Page[LockRecord]:
        """Ordered by row key."""
        ...

    # --- cluster --------------------------------------------------------------
    def try_job_lock(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Take or renew the distributed lock ``name`` for ``owner``; it
        expires after ``ttl_ms`` unless renewed."""
        ...

    def release_job_lock(self, name: str, owner: str) -> None: ...

    # --- audit ----------------------------------------------------------------
    def append_audit(self, record: AuditRecord) -> AuditRecord:
        """Stores the entry with a new id and returns it."""
        ...

    def list_audit(self, xid: str, page_size: int, page_token: str) -> Page[AuditRecord]:
        """Newest first."""
        ...

    def close(self) -> None: ...


def encode_page_token(kind: str, value: str) -> str:
    """An opaque page token carrying a listing's cursor (``kind`` names the listing)."""
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def decode_page_token(token: str, kind: str) -> str:
    """The cursor inside a page token made for ``kind`` listings; anything else is
    INVALID_ARGUMENT."""
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    found, sep, value = text.partition(":")
    if found != kind or not sep:
        raise invalid_page_token(token)
    return value


def invalid_page_token(token: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"invalid page token {token!r}", page_token=token)


def history_branch_status(final_status: GlobalStatus, status: BranchStatus) -> BranchStatus:
    """A branch's status in the history of a session finished with ``final_status``.

    Phase two of a commit does not write each branch's PHASE_TWO_COMMITTED
    (the hot path would pay a write per branch); finishing with COMMITTED
    means every branch it sent was committed, so the history says so."""
    if final_status == GlobalStatus.COMMITTED and status != BranchStatus.PHASE_ONE_FAILED:
        return BranchStatus.PHASE_TWO_COMMITTED
    return status


def lock_conflict(
    holder: str, row_key: str, holder_status: GlobalStatus | None
) -> LockConflictError:
    """The error for ``row_key`` held by ``holder``: fail fast when the holder
    is rolling back (or failed to), since waiting for it is pointless."""
    fail_fast = holder_status is not None and (
        holder_status.is_rolling_back or holder_status == GlobalStatus.ROLLBACK_FAILED
    )
    return LockConflictError(holder, row_key, fail_fast=fail_fast)


StoreFactory = Callable[[str, int], SessionStore]
"""Builds a store from its URL and the history size to keep."""

_FACTORIES: dict[str, StoreFactory] = {}


def register_store(scheme: str, factory: StoreFactory) -> None:
    """Make ``create_store`` build ``scheme://...`` URLs with ``factory``."""
    _FACTORIES[scheme] = factory


def create_store(url: str, history_size: int = 1000) -> SessionStore:
    """Open the store a URL names; an unknown scheme is a clear error."""
    scheme = urlsplit(url).scheme
    if scheme not in _FACTORIES:
        _load_builtin(scheme)
    factory = _FACTORIES.get(scheme)
    if factory is None:
        known = ", ".join(sorted({"sqlite", "redis", "mysql", "postgresql", *_FACTORIES}))
        raise InvalidArgumentError(
            f"unknown store URL scheme {scheme!r} in {url!r}; known: {known}", url=url
        )
    return factory(url, history_size)


def _load_builtin(scheme: str) -> None:
    # Importing a built-in store module registers it; optional drivers load lazily.
    modules = {
        "sqlite": "atx.tc.store.sqlite",
        "redis": "atx.tc.store.redis",
        "mysql": "atx.tc.store.mysql",
        "postgresql": "atx.tc.store.postgres",
    }
    modules["mariadb"] = modules["mysql"]
    modules["rediss"] = modules["redis"]
    modules["postgres"] = modules["postgresql"]
    if scheme in modules:
        __import__(modules[scheme])
