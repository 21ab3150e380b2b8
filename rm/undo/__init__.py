"""Undo images, their serialisation, the undo_log table and its retention (names load lazily)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atx.rm.undo.images import Field, RowImage, SQLUndoLog, TableImage
    from atx.rm.undo.log import UndoLogManager
    from atx.rm.undo.retention import (
        IsFinished,
        PurgeResult,
        TCFinishedCheck,
        purge_registered_resources,
        purge_undo_log,
    )

_EXPORTS = {
    "Field": "atx.rm.undo.images",
    "RowImage": "atx.rm.undo.images",
    "SQLUndoLog": "atx.rm.undo.images",
    "TableImage": "atx.rm.undo.images",
    "UndoLogManager": "atx.rm.undo.log",
    "IsFinished": "atx.rm.undo.retention",
    "PurgeResult": "atx.rm.undo.retention",
    "TCFinishedCheck": "atx.rm.undo.retention",
    "purge_registered_resources": "atx.rm.undo.retention",
    "purge_undo_log": "atx.rm.undo.retention",
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
