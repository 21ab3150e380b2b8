"""The AT statement executors: one module per statement type, picked by type.

:class:`StatementExecutor` (one per data source) recognises a statement and
hands it, as a :class:`Statement`, to ``insert``, ``update``, ``delete``,
``upsert``, ``update_join`` or ``select_for_update``; ``multi`` runs
``;``-separated UPDATEs or DELETEs one by one.
"""

from atx.rm.exec.executor import StatementExecutor
from atx.rm.exec.statement import Statement, TableCache

__all__ = ["Statement", "StatementExecutor", "TableCache"]
