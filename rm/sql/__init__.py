"""SQL recognition and the AT statement executors.

Names load lazily (PEP 562) so that ``rm.sql`` and ``rm.undo`` can use each other's
leaf modules without an import cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rm.sql.dialect import Dialect
    from rm.sql.executor import (
        ExecutionResult,
        LockKey,
        StatementExecutor,
        StatementKind,
        format_lock_keys,
    )
    from rm.sql.recognizer import SQLRecognition, SQLType, UpdateTarget

_EXPORTS = {
    "Dialect": "rm.sql.dialect",
    "ExecutionResult": "rm.sql.executor",
    "LockKey": "rm.sql.executor",
    "StatementExecutor": "rm.sql.executor",
    "StatementKind": "rm.sql.executor",
    "format_lock_keys": "rm.sql.executor",
    "SQLRecognition": "rm.sql.recognizer",
    "SQLType": "rm.sql.recognizer",
    "UpdateTarget": "rm.sql.recognizer",
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
