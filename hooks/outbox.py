"""Deferred external calls: an outbox row written inside the global transaction.

:func:`defer` (user-facing name :func:`after_commit`) inserts one row into the
``atx_outbox`` table through the caller's connection. Inside a global
transaction that connection is an ``rm`` proxy, so the insert belongs to the
resource's AT branch: the row survives iff the global transaction commits
(a rollback's undo deletes it). The dispatcher (:mod:`atx.hooks.dispatcher`)
runs the row's target after the commit.

Table ``atx_outbox`` (same columns on MySQL/MariaDB and SQLite):

==================  ===============================================================
id                  primary key (hex uuid)
xid                 global transaction that wrote the row ('' = a plain local one)
target              registered handler name, e.g. ``chain.mint``
payload             JSON object
request_id          stable id handed to the target for idempotency
state               PENDING, DONE or DEAD
attempts            calls made so far
next_attempt_at     epoch ms when the row is due
last_error          text of the last failure
created_at          epoch ms
updated_at          epoch ms
==================  ===============================================================
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from atx import tracing
from atx.clock import now_ms
from atx.dialect import Column, Dialect, Index, TableSpec
from atx.errors import InvalidArgumentError
from atx.rm.context import current_xid
from atx.rm.metrics import get_metrics
from atx.rm.tm.hooks import (
    NoTransactionForHookError,
    TransactionHookBase,
    register_hook,
    registered_hooks,
)

__all__ = [
    "OUTBOX_SPEC",
    "OUTBOX_TABLE",
    "STATE_DEAD",
    "STATE_DONE",
    "STATE_PENDING",
    "after_commit",
    "defer",
    "ensure_outbox_table",
    "on_deferred",
]

logger = logging.getLogger(__name__)

OUTBOX_TABLE = "atx_outbox"
STATE_PENDING = "PENDING"
STATE_DONE = "DONE"
STATE_DEAD = "DEAD"

#: The transactional outbox: one row per deferred call, written in the caller's
#: local transaction; the dispatcher finds due rows by (state, next_attempt_at).
OUTBOX_SPEC = TableSpec(
    OUTBOX_TABLE,
    (
        Column("id", "varchar(64)"),
        Column("xid", "varchar(128)"),
        Column("target", "varchar(128)"),
        Column("payload", "text"),
        Column("request_id", "varchar(255)"),
        Column("state", "varchar(16)"),
        Column("attempts", "int", default="0"),
        Column("next_attempt_at", "bigint"),
        Column("last_error", "text", nullable=True),
        Column("created_at", "bigint"),
        Column("updated_at", "bigint"),
    ),
    primary_key=("id",),
    indexes=(Index("idx_{table}_due", ("state", "next_attempt_at")),),
)


def ensure_outbox_table(raw_connection: Any) -> None:
    """Create ``atx_outbox`` if it is missing (DDL: use a raw connection, not a proxy)."""
    cursor = raw_connection.cursor()
    try:
        for statement in Dialect.of(raw_connection).create_table(OUTBOX_SPEC):
            cursor.execute(statement)
    finally:
        cursor.close()
    raw_connection.commit()


# Per-xid sequence numbers for default request ids. Bounded: old xids are dropped.
_sequences: dict[str, itertools.count[int]] = {}
_sequences_lock = threading.Lock()
_MAX_TRACKED_XIDS = 10_000

# Called with the xid after each defer (the dispatcher registers a wake-up hook).
_listeners: list[Callable[[str], None]] = []


def on_deferred(listener: Callable[[str], None]) -> None:
    """Call ``listener(xid)`` after every :func:`defer` in this process."""
    _listeners.append(listener)


def _next_request_id(xid: str, target: str) -> str:
    with _sequences_lock:
        counter = _sequences.get(xid)
        if counter is None:
            if len(_sequences) >= _MAX_TRACKED_XIDS:
                _sequences.pop(next(iter(_sequences)))
            counter = _sequences[xid] = itertools.count(1)
        return f"{xid}:{target}:{next(counter)}"


def defer(
    connection: Any,
    target: str,
    payload: Mapping[str, Any],
    request_id: str | None = None,
) -> str:
    """Record a call to ``target`` that runs only after the current transaction commits.

    The row is inserted through ``connection`` and is committed (or undone)
    with the caller's local transaction; the caller commits as usual.

    Args:
        connection: the rm proxy connection of the resource (or a raw one
            outside a global transaction: the row then runs after the local commit).
        target: a handler name registered with :func:`atx.hooks.register_target`.
        payload: JSON-serialisable arguments.
        request_id: stable idempotency key for the target; default
            ``"<xid>:<target>:<n>"``. Pass a business key (e.g. ``mint:<holding>``)
            when the transaction body may be retried under a new xid.

    Returns:
        The request id.

    Raises:
        InvalidArgumentError: empty target, or a payload that is not JSON.
    """
    if not target:
        raise InvalidArgumentError("deferred call target must not be empty", target=target)
    try:
        body = json.dumps(dict(payload), sort_keys=True)
    except (TypeError, ValueError) as error:
        raise InvalidArgumentError(
            f"payload for {target!r} is not JSON-serialisable: {error}", target=target
        ) from None
    xid = current_xid() or ""
    rid = request_id or _next_request_id(xid or uuid.uuid4().hex, target)
    stamp = now_ms()
    sql = (
        f"INSERT INTO {OUTBOX_TABLE} (id, xid, target, payload, request_id, state, attempts,"
        f" next_attempt_at, last_error, created_at, updated_at)"
        f" VALUES ({Dialect.of(connection).marks(11)})"
    )
    params = (uuid.uuid4().hex, xid, target, body, rid, STATE_PENDING, 0, stamp, "", stamp, stamp)
    cursor = connection.cursor()
    try:
        cursor.execute(sql, params)
    finally:
        cursor.close()
    logger.info(
        "deferred %s (request %s) in %s", target, rid, xid or "local tx", extra={"xid": xid}
    )
    tracing.remember(xid)  # the dispatcher's span joins this transaction's trace
    get_metrics().deferred_call("deferred")
    if not xid or not _wake_after_commit(xid):
        _notify(xid)
    return rid


def _notify(xid: str) -> None:
    for listener in list(_listeners):
        try:
            listener(xid)
        except Exception:
            logger.exception("outbox listener failed for %s", xid, extra={"xid": xid})


class _WakeAfterCommit(TransactionHookBase):
    """Wakes this process's dispatchers once the launcher committed."""

    def after_commit(self, xid: str) -> None:
        _notify(xid)


def _wake_after_commit(xid: str) -> bool:
    """Register the wake-up hook when this context launched the transaction."""
    if any(isinstance(h, _WakeAfterCommit) for h in registered_hooks()):
        return True
    try:
        register_hook(_WakeAfterCommit())
    except NoTransactionForHookError:
        return False  # a participant: its launcher is elsewhere; polling finds the row
    return True


def after_commit(
    connection: Any,
    target: str,
    payload: Mapping[str, Any],
    request_id: str | None = None,
) -> str:
    """The user-facing name of :func:`defer`: run ``target(payload)`` after commit."""
    return defer(connection, target, payload, request_id)
