"""Reads and state changes of ``atx_outbox`` rows, on raw (non-proxy) connections.

Used by the dispatcher and the DeferredCallService. Every method opens its
own short local transaction on a fresh connection from the factory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from atx.clock import now_ms
from atx.dialect import Dialect
from atx.hooks.outbox import (
    OUTBOX_TABLE,
    STATE_DEAD,
    STATE_DONE,
    STATE_PENDING,
    ensure_outbox_table,
)

__all__ = ["OutboxRow", "OutboxStore"]

_COLUMNS = (
    "id, xid, target, payload, request_id, state, attempts, next_attempt_at,"
    " last_error, created_at, updated_at"
)


@dataclass(frozen=True)
class OutboxRow:
    id: str
    xid: str
    target: str
    payload: dict[str, Any]
    request_id: str
    state: str
    attempts: int
    next_attempt_at: int
    last_error: str
    created_at: int
    updated_at: int

    @classmethod
    def from_tuple(cls, row: tuple[Any, ...]) -> OutboxRow:
        payload = json.loads(row[3]) if row[3] else {}
        return cls(
            str(row[0]),
            str(row[1]),
            str(row[2]),
            payload if isinstance(payload, dict) else {"value": payload},
            str(row[4]),
            str(row[5]),
            int(row[6]),
            int(row[7]),
            str(row[8] or ""),
            int(row[9]),
            int(row[10]),
        )


class OutboxStore:
    """The outbox of one database, reached through ``connect`` (a raw connection factory)."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        probe = connect()
        try:
            self.dialect = Dialect.of(probe)
        finally:
            probe.close()
        self._mark = self.dialect.placeholder

    def _sql(self, text: str) -> str:
        return text.replace("?", self._mark)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        connection = self._connect()
        try:
            cursor = connection.cursor()
            cursor.execute(self._sql(sql), params)
            rows = [tuple(r) for r in cursor.fetchall()]
            cursor.close()
            connection.commit()
            return rows
        finally:
            connection.close()

    def _update(self, sql: str, params: tuple[Any, ...]) -> int:
        connection = self._connect()
        try:
            cursor = connection.cursor()
            cursor.execute(self._sql(sql), params)
            count = int(cursor.rowcount)
            cursor.close()
            connection.commit()
            return count
        finally:
            connection.close()

    def ensure_table(self) -> None:
        connection = self._connect()
        try:
            ensure_outbox_table(connection)
        finally:
            connection.close()

    def due(self, limit: int, now: int | None = None) -> list[OutboxRow]:
        """PENDING rows whose next attempt is due, oldest first."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM {OUTBOX_TABLE} WHERE state = ? AND next_attempt_at <= ?"
            f" ORDER BY next_attempt_at, created_at LIMIT {int(limit)}",
            (STATE_PENDING, now if now is not None else now_ms()),
        )
        return [OutboxRow.from_tuple(r) for r in rows]

    def get(self, row_id: str) -> OutboxRow | None:
        rows = self._query(f"SELECT {_COLUMNS} FROM {OUTBOX_TABLE} WHERE id = ?", (row_id,))
        return OutboxRow.from_tuple(rows[0]) if rows else None

    def list(self, state: str | None = None, limit: int = 100) -> list[OutboxRow]:
        where, params = ("WHERE state = ?", (state,)) if state else ("", ())
        rows = self._query(
            f"SELECT {_COLUMNS} FROM {OUTBOX_TABLE} {where}"
            f" ORDER BY created_at, id LIMIT {int(limit)}",
            params,
        )
        return [OutboxRow.from_tuple(r) for r in rows]

    def claim(self, row: OutboxRow, lease_ms: int) -> bool:
        """Push the row's due time past a lease; False if another dispatcher got it first."""
        stamp = now_ms()
        return (
            self._update(
                f"UPDATE {OUTBOX_TABLE} SET next_attempt_at = ?, updated_at = ?"
                " WHERE id = ? AND state = ? AND next_attempt_at = ?",
                (stamp + lease_ms, stamp, row.id, STATE_PENDING, row.next_attempt_at),
            )
            == 1
        )

    def mark_done(self, row: OutboxRow) -> None:
        stamp = now_ms()
        self._update(
            f"UPDATE {OUTBOX_TABLE} SET state = ?, attempts = attempts + 1, last_error = ?,"
            " updated_at = ? WHERE id = ?",
            (STATE_DONE, "", stamp, row.id),
        )

    def mark_failed(self, row: OutboxRow, error: str, next_attempt_at: int, dead: bool) -> None:
        self._update(
            f"UPDATE {OUTBOX_TABLE} SET state = ?, attempts = attempts + 1, last_error = ?,"
            " next_attempt_at = ?, updated_at = ? WHERE id = ?",
            (
                STATE_DEAD if dead else STATE_PENDING,
                error[:2000],
                next_attempt_at,
                now_ms(),
                row.id,
            ),
        )

    def mark_dead(self, row: OutboxRow, reason: str) -> None:
        """Dead-letter without counting an attempt (the call never ran)."""
        self._update(
            f"UPDATE {OUTBOX_TABLE} SET state = ?, last_error = ?, updated_at = ? WHERE id = ?",
            (STATE_DEAD, reason[:2000], now_ms(), row.id),
        )

    def retry(self, row_id: str) -> OutboxRow | None:
        """Put a DEAD (or PENDING) row back in line now with a fresh attempt budget."""
        stamp = now_ms()
        self._update(
            f"UPDATE {OUTBOX_TABLE} SET state = ?, attempts = 0, next_attempt_at = ?,"
            " updated_at = ? WHERE id = ? AND state <> ?",
            (STATE_PENDING, stamp, stamp, row_id, STATE_DONE),
        )
        return self.get(row_id)
