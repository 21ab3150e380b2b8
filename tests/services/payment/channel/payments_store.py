"""A small SQLite payment service state for the recovery tests: pay orders,
orders and stock, implementing PayOrderRepository and PaymentActions the way
the payment service must (state checks under one transaction)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from atx.shop.payment.channel import PayOrderRef, RefundResult, TradeInfo

SCHEMA = """
CREATE TABLE pay_orders (pay_order_id TEXT PRIMARY KEY, order_id TEXT, channel TEXT,
    amount INTEGER, state TEXT, created_ms INTEGER, expire_ms INTEGER, trade_no TEXT);
CREATE TABLE orders (order_id TEXT PRIMARY KEY, state TEXT, collectible_id TEXT);
CREATE TABLE stock (collectible_id TEXT PRIMARY KEY, available INTEGER);
"""


class SqlitePayments:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.executescript(SCHEMA)
        self.db.execute("INSERT INTO stock VALUES ('c-1', 10)")
        self.lock = threading.Lock()
        self.settle_calls = 0
        #: Make the next ``refunded`` call fail, as a crash after the refund would.
        self.fail_next_refunded = False

    def create_order(self, order_id: str) -> None:
        with self.lock:
            self.db.execute("INSERT INTO orders VALUES (?, 'CREATED', 'c-1')", (order_id,))
            self.db.execute("UPDATE stock SET available = available - 1")

    def add_pay_order(
        self, pay_order_id: str, order_id: str, channel: str, amount: int, created: int, expire: int
    ) -> PayOrderRef:
        with self.lock:
            self.db.execute(
                "INSERT INTO pay_orders VALUES (?,?,?,?,'PENDING',?,?,'')",
                (pay_order_id, order_id, channel, amount, created, expire),
            )
        return PayOrderRef(pay_order_id, order_id, channel, amount, created, expire)

    def pay_state(self, pay_order_id: str) -> str:
        row = self.db.execute(
            "SELECT state FROM pay_orders WHERE pay_order_id = ?", (pay_order_id,)
        ).fetchone()
        return str(row[0])

    def order_state(self, order_id: str) -> str:
        return str(
            self.db.execute("SELECT state FROM orders WHERE order_id = ?", (order_id,)).fetchone()[
                0
            ]
        )

    def stock(self) -> int:
        return int(self.db.execute("SELECT available FROM stock").fetchone()[0])

    # --- PayOrderRepository -----------------------------------------------------

    def _pending(self, where: str, value: int) -> Sequence[PayOrderRef]:
        rows = self.db.execute(
            "SELECT pay_order_id, order_id, channel, amount, created_ms, expire_ms"
            f" FROM pay_orders WHERE state = 'PENDING' AND {where}",
            (value,),
        ).fetchall()
        return [PayOrderRef(*row) for row in rows]

    def pending_older_than(self, age_ms: int, now_ms: int) -> Sequence[PayOrderRef]:
        return self._pending("created_ms <= ?", now_ms - age_ms)

    def expired_unpaid(self, now_ms: int) -> Sequence[PayOrderRef]:
        return self._pending("expire_ms <= ?", now_ms)

    # --- PaymentActions -----------------------------------------------------------

    def settle(self, pay_order: PayOrderRef, trade: TradeInfo) -> bool:
        with self.lock:
            self.settle_calls += 1
            state = self.pay_state(pay_order.pay_order_id)
            if state == "SUCCESS":
                return True
            if state != "PENDING" or self.order_state(pay_order.order_id) != "CREATED":
                return False  # closed, or paid through another pay order
            self.db.execute("BEGIN")
            self.db.execute(
                "UPDATE pay_orders SET state = 'SUCCESS', trade_no = ? WHERE pay_order_id = ?",
                (trade.trade_no, pay_order.pay_order_id),
            )
            self.db.execute(
                "UPDATE orders SET state = 'PAID' WHERE order_id = ?", (pay_order.order_id,)
            )
            self.db.execute("COMMIT")
            return True

    def close(self, pay_order: PayOrderRef) -> None:
        with self.lock:
            if self.pay_state(pay_order.pay_order_id) != "PENDING":
                return
            self.db.execute("BEGIN")
            self.db.execute(
                "UPDATE pay_orders SET state = 'CLOSED' WHERE pay_order_id = ?",
                (pay_order.pay_order_id,),
            )
            if self.order_state(pay_order.order_id) == "CREATED":
                self.db.execute(
                    "UPDATE orders SET state = 'CLOSED' WHERE order_id = ?", (pay_order.order_id,)
                )
                self.db.execute("UPDATE stock SET available = available + 1")
            self.db.execute("COMMIT")

    def refunded(self, pay_order: PayOrderRef, refund: RefundResult) -> None:
        with self.lock:
            if self.fail_next_refunded:
                self.fail_next_refunded = False
                raise RuntimeError("crash before recording the refund")
            self.db.execute(
                "UPDATE pay_orders SET state = 'REFUNDED' WHERE pay_order_id = ?",
                (pay_order.pay_order_id,),
            )
