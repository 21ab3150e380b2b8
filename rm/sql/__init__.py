"""SQL recognition and the AT statement executors.

Names load lazily (PEP 562) so that ``rm.sql`` and ``rm.undo`` can use each other's
leaf modules without an import cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atx.rm.sql.dialect import Dialect
    from atx.rm.sql.executor import (
        ExecutionResult,
        LockKey,
        StatementExecutor,
        StatementKind,
        format_lock_keys,
    )
    from atx.rm.sql.recognizer import SQLRecognition, SQLType, UpdateTarget

_EXPORTS = {
    "Dialect": "atx.rm.sql.dialect",
    "ExecutionResult": "atx.rm.sql.executor",
    "LockKey": "atx.rm.sql.executor",
    "StatementExecutor": "atx.rm.sql.executor",
    "StatementKind": "atx.rm.sql.executor",
    "format_lock_keys": "atx.rm.sql.executor",
    "SQLRecognition": "atx.rm.sql.recognizer",
    "SQLType": "atx.rm.sql.recognizer",
    "UpdateTarget": "atx.rm.sql.recognizer",
}

__all__ = [
    "Dialect",
    "ExecutionResult",
    "LockKey",
    "SQLRecognition",
    "SQLType",
    "StatementExecutor",
    "StatementKind",
    "UpdateTarget",
    "format_lock_keys",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rm.sql' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
