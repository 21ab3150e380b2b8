"""Each package's public API: pinned, so that no name disappears by accident,
and every listed name resolves."""

from __future__ import annotations

import importlib

import pytest

PINNED = {
    "atx.tc": [
        "SessionStore", "TCConfig", "TCServer", "TransactionCoordinator", "create_store", "serve",
    ],
    "atx.rm": [
        "AioXidClientInterceptor", "AioXidServerInterceptor", "AsyncConnectionProxy",
        "AsyncCursorProxy", "Config", "ConnectionProxy", "connect_aiosqlite", "connect_asyncmy",
        "connect_psycopg_async", "wrap_async",
        "CursorProxy", "DDLInGlobalTransactionError", "Dialect", "DirtyWriteError",
        "GlobalLockWaitTimeout", "InvalidConfigurationError", "InvalidUsageError",
        "LockRetryPolicy", "NotInGlobalTransactionError", "Propagation",
        "PropagationError", "RMError", "Resource", "TCClient", "TransactionDefinition",
        "TransactionRolledBackError", "TransactionScope", "TransactionTimeoutError",
        "UnsupportedSQLError", "XidClientInterceptor", "XidServerInterceptor", "bind_xid",
        "configure", "connect_mysql", "connect_postgres", "connect_sqlite", "current_xid",
        "definition_of",
        "ensure_runtime", "get_config", "get_resource", "get_runtime", "get_tc_client", "RMRuntime",
        "global_lock", "global_lock_scope", "global_transaction", "global_transactional",
        "in_global_lock", "in_global_transaction", "pool", "register_resource", "require_xid",
        "shutdown", "unbind_xid", "wrap",
    ],
    "atx.hooks": [
        "Decision", "DeferredCallServicer", "Dispatcher", "DispatcherConfig", "OUTBOX_TABLE",
        "OutboxRow", "OutboxStore", "STATE_DEAD", "STATE_DONE", "STATE_PENDING",
        "TargetRegistry", "TransactionHook", "TransactionHookBase", "add_deferred_call_service",
        "after_commit", "default_registry", "defer", "ensure_outbox_table", "hook_scope",
        "register_hook", "register_target", "registered_hooks", "tc_status",
    ],
    "atx.rm.types": [
        "Dialect", "ExecutionResult", "Field", "InsertValue", "LockKey", "ParamSQL",
        "ParamStyle", "RowImage", "SQLRecognition", "SQLType", "SQLUndoLog", "StatementKind",
        "TableImage", "TableMeta", "UpdateTarget", "ValueKind", "format_lock_keys", "pk_string",
    ],
    "atx.rm.sql": ["Recognizer", "parse", "pk_condition"],
    "atx.rm.db": ["read_table_meta", "select_by_pks", "select_image", "select_join_image"],
    "atx.rm.exec": ["Statement", "StatementExecutor", "TableCache"],
    "atx.rm.undo": [
        "LOG_STATUS_GLOBAL_FINISHED", "LOG_STATUS_NORMAL", "UNDO_LOG_TABLE", "UndoLogManager",
        "apply_undo", "decode", "encode",
    ],
    "atx.rm.tm": [
        "GlobalTransaction", "NoTransactionForHookError", "Propagation", "TransactionDefinition",
        "TransactionHook", "TransactionHookBase", "TransactionScope", "definition_of",
        "fire_after", "fire_before", "global_transaction", "global_transactional", "hook_scope",
        "register_hook", "registered_hooks",
    ],
    "atx.rm.phase_two": [
        "IsFinished", "PhaseTwoHandler", "PurgeResult", "RetentionJob", "TCFinishedCheck",
        "UndoDeleter", "purge_registered_resources", "purge_undo_log",
    ],
    "atx.rm.proxy": [
        "ConnectionProxy", "CursorProxy", "GuardedCursorProxy", "connect_mysql", "connect_postgres",
        "connect_sqlite", "pool", "wrap",
    ],
    "atx.rm.aio": [
        "AioTCClient", "AsyncConnectionProxy", "AsyncCursorProxy", "await_only",
        "connect_aiosqlite", "connect_asyncmy", "connect_psycopg_async", "get_aio_tc_client",
        "spawn", "wrap_async",
    ],
    "atx.tc.testing": ["InProcessTC", "test_config"],
}  # fmt: skip

PACKAGES = [
    "atx", "atx.tc", "atx.tc.admin", "atx.tc.store", "atx.rm", "atx.rm.sql", "atx.rm.undo",
    "atx.rm.proxy", "atx.hooks", "atx.shop", "atx.shop.common", "atx.shop.order",
    "atx.shop.payment", "atx.shop.collectible", "atx.shop.chain", "atx.shop.payment.channel",
    "atx.rm.types", "atx.rm.sql", "atx.rm.db", "atx.rm.exec", "atx.rm.tm", "atx.rm.phase_two",
    "atx.rm.aio",
]  # fmt: skip


@pytest.mark.parametrize("package", sorted(PINNED))
def test_exports_are_pinned(package: str) -> None:
    assert sorted(importlib.import_module(package).__all__) == sorted(PINNED[package])


@pytest.mark.parametrize("package", PACKAGES)
def test_every_export_resolves(package: str) -> None:
    module = importlib.import_module(package)
    assert isinstance(module.__all__, list | tuple)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
