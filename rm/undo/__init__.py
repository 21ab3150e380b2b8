"""Undo images, their serialisation, and the undo_log table (names load lazily)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rm.undo.images import Field, RowImage, SQLUndoLog, TableImage
    from rm.undo.log import UndoLogManager

_EXPORTS = {
    "Field": "rm.undo.images",
    "RowImage": "rm.undo.images",
    "SQLUndoLog": "rm.undo.images",
    "TableImage": "rm.undo.images",
    "UndoLogManager": "rm.undo.log",
}

__all__ = ["Field", "RowImage", "SQLUndoLog", "TableImage", "UndoLogManager"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rm.undo' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
