"""``;``-separated UPDATEs or DELETEs in one execute (Seata's MultiExecutor), MySQL only.

Each statement runs on its own through the executor of its type, with its share
of the caller's parameters, imaged one by one: a later statement's before image
sees what an earlier one did, and rollback undoes them in reverse. So the
connection needs no ``CLIENT.MULTI_STATEMENTS`` flag inside a global
transaction. The statements run under a savepoint: when one fails (or is
refused), the earlier ones are rolled back to it before the error propagates,
so the local transaction holds no change the branch has not imaged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from atx.dialect import Dialect
from atx.lock_keys import LockKey
from atx.rm.types.image import ExecutionResult, SQLUndoLog
from atx.rm.types.sql import ParamStyle, SQLRecognition

__all__ = ["execute", "merge", "shares"]

logger = logging.getLogger(__name__)

_SAVEPOINT = "atx_multi_statement"

RunOne = Callable[[Any, SQLRecognition, Any], ExecutionResult]


def shares(rec: SQLRecognition, params: Any) -> list[Any]:
    """Each statement's parameters: positional ones cut in order by each statement's
    placeholder count; named ones (a mapping) go whole to every statement."""
    if params is None:
        return [None] * len(rec.statements)
    if rec.param_style is ParamStyle.NAMED or isinstance(params, Mapping):
        return [params] * len(rec.statements)
    if len(params) != rec.param_count:
        raise TypeError(
            f"{len(params)} parameters for the {rec.param_count} placeholders of"
            f" {len(rec.statements)} statements"
        )
    out: list[Any] = []
    start = 0
    for sub in rec.statements:
        out.append(params[start : start + sub.param_count])
        start += sub.param_count
    return out


def merge(results: Iterable[ExecutionResult]) -> ExecutionResult:
    """One result for several statements: rows summed, undo items and lock keys in order."""
    rowcount = 0
    lastrowid: int | None = None
    items: list[SQLUndoLog] = []
    keys: list[LockKey] = []
    for result in results:
        rowcount += max(result.rowcount, 0)
        lastrowid = result.lastrowid if result.lastrowid else lastrowid
        items.extend(result.undo_items)
        keys.extend(result.lock_keys)
    return ExecutionResult(rowcount, lastrowid, items, keys)


def execute(
    cursor: Any, rec: SQLRecognition, params: Any, dialect: Dialect, run_one: RunOne
) -> ExecutionResult:
    """Run ``rec.statements`` one by one through ``run_one``; one merged result."""
    parts = shares(rec, params)  # a parameter mismatch raises before anything runs
    aux = dialect.plain_cursor(cursor.connection)
    try:
        aux.execute(f"SAVEPOINT {_SAVEPOINT}")
        results: list[ExecutionResult] = []
        try:
            for sub, part in zip(rec.statements, parts, strict=True):
                results.append(run_one(cursor, sub, part))
        except BaseException:
            try:
                aux.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            except Exception:  # e.g. a deadlock already rolled the transaction back
                logger.warning("rolling back to the multi-statement savepoint failed")
            raise
        aux.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
    finally:
        aux.close()
    return merge(results)
