"""Undo images, their serialisation, the undo_log table and its retention (names load lazily)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rm.undo.images import Field, RowImage, SQLUndoLog, TableImage
    from rm.undo.log import UndoLogManager
    from rm.undo.retention import (
        IsFinished,
        PurgeResult,
        TCFinishedCheck,
        purge_registered_resources,
        purge_undo_log,
    )

_EXPORTS = {
    "Field": "rm.undo.images",
    "RowImage": "rm.undo.images",
    "SQLUndoLog": "rm.undo.images",
    "TableImage": "rm.undo.images",
    "UndoLogManager": "rm.undo.log",
    "IsFinished": "rm.undo.retention",
    "PurgeResult": "rm.undo.retention",
    "TCFinishedCheck": "rm.undo.retention",
    "purge_registered_resources": "rm.undo.retention",
    "purge_undo_log": "rm.undo.retention",
}

__all__ = [
    "Field",
    "IsFinished",
    "PurgeResult",
    "RowImage",
    "SQLUndoLog",
    "TCFinishedCheck",
    "TableImage",
    "UndoLogManager",
    "purge_registered_resources",
    "purge_undo_log",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rm.undo' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
