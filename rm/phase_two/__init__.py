"""Phase two on the RM: the inbound handler and its background jobs.

:class:`PhaseTwoHandler` applies BranchCommit and BranchRollback;
:class:`UndoDeleter` deletes committed branches' undo rows in batches;
:mod:`.retention` purges old undo rows (Seata's ``logSaveDays``).
"""

from atx.rm.phase_two.handler import PhaseTwoHandler
from atx.rm.phase_two.retention import (
    IsFinished,
    PurgeResult,
    RetentionJob,
    TCFinishedCheck,
    purge_registered_resources,
    purge_undo_log,
)
from atx.rm.phase_two.undo_deleter import UndoDeleter

__all__ = [
    "IsFinished",
    "PhaseTwoHandler",
    "PurgeResult",
    "RetentionJob",
    "TCFinishedCheck",
    "UndoDeleter",
    "purge_registered_resources",
    "purge_undo_log",
]
