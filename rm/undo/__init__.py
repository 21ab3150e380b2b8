"""The undo log: serialise a branch's undo items, keep them in ``undo_log``, replay them.

:mod:`.serialize` encodes the images; :mod:`.log` writes, reads and deletes the
rows (:class:`UndoLogManager`); :mod:`.apply` restores a before image after
the dirty-write check.
"""

from atx.rm.undo.apply import apply_undo
from atx.rm.undo.log import (
    LOG_STATUS_GLOBAL_FINISHED,
    LOG_STATUS_NORMAL,
    UNDO_LOG_TABLE,
    UndoLogManager,
)
from atx.rm.undo.serialize import decode, encode

__all__ = [
    "LOG_STATUS_GLOBAL_FINISHED",
    "LOG_STATUS_NORMAL",
    "UNDO_LOG_TABLE",
    "UndoLogManager",
    "apply_undo",
    "decode",
    "encode",
]
