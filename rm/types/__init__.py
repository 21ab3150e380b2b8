"""The resource manager's shared types: a leaf that every layer of ``atx.rm`` may import.

A statement's recognition (:mod:`.sql`), a table's metadata (:mod:`.meta`),
row images, undo items and execution results (:mod:`.image`), with the SQL
dialect and lock keys that atx shares with the TC and the hooks.
"""

from atx.dialect import Dialect
from atx.lock_keys import LockKey, format_lock_keys, pk_string
from atx.rm.types.image import ExecutionResult, Field, RowImage, SQLUndoLog, TableImage
from atx.rm.types.meta import TableMeta
from atx.rm.types.sql import (
    InsertValue,
    ParamSQL,
    ParamStyle,
    SQLRecognition,
    SQLType,
    StatementKind,
    UpdateTarget,
    ValueKind,
)

__all__ = [
    "Dialect",
    "ExecutionResult",
    "Field",
    "InsertValue",
    "LockKey",
    "ParamSQL",
    "ParamStyle",
    "RowImage",
    "SQLRecognition",
    "SQLType",
    "SQLUndoLog",
    "StatementKind",
    "TableImage",
    "TableMeta",
    "UpdateTarget",
    "ValueKind",
    "format_lock_keys",
    "pk_string",
]
