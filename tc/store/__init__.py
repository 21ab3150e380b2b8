"""Session stores: the contract and the URL registry (``create_store``)."""

from atx.tc.store.base import (
    AuditRecord,
    BranchRecord,
    GlobalRecord,
    GlobalSessionFilter,
    LockFilter,
    LockRecord,
    Page,
    RowLock,
    SessionStore,
    create_store,
    register_store,
)

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
    "register_store",
]
