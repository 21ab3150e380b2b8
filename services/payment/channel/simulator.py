"""A simulated Alipay-like payment channel: trades, refunds, notifications.

State lives in SQLite (a file, or memory for unit tests). Merchant requests
must carry our merchant signature; answers and notifications are signed
with the channel's platform key. Notifications go to the payment service's
``HandleNotification`` and are retried on Alipay's schedule (compressible)
until answered exactly ``success``. Fault knobs make merchant calls fail
(UNAVAILABLE), slow, or drop notifications.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from atx.clock import now_ms
from atx.errors import AtxError, IllegalStatusError, map_errors
from atx.shop.payment.channel import protocol as p
from atx.shop.payment.channel.errors import ChannelUnavailableError, TradeNotFoundError
from atx.shop.payment.channel.signing import ChannelKeys, encrypt_field, signed, verify
from atx.shop.v1 import payment_channel_pb2 as ch_pb2
from atx.shop.v1 import payment_channel_pb2_grpc as ch_grpc
from atx.shop.v1 import payment_pb2 as pay_pb2
from atx.shop.v1 import payment_pb2_grpc as pay_grpc

__all__ = ["ChannelSimulator", "SimulatorConfig"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trades (
    out_trade_no TEXT PRIMARY KEY, trade_no TEXT NOT NULL, total_amount TEXT NOT NULL,
    subject TEXT NOT NULL, status TEXT NOT NULL, time_expire_ms INTEGER NOT NULL,
    notify_address TEXT NOT NULL, created_ms INTEGER NOT NULL, paid_ms INTEGER,
    closed_ms INTEGER, refunded_minor INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS refunds (
    out_request_no TEXT PRIMARY KEY, out_trade_no TEXT NOT NULL,
    refund_amount TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS notifications (
    notify_id TEXT PRIMARY KEY, out_trade_no TEXT NOT NULL, notify_address TEXT NOT NULL,
    params TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_ms INTEGER NOT NULL,
    state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notify_attempts (
    notify_id TEXT NOT NULL, attempt INTEGER NOT NULL, at_ms INTEGER NOT NULL,
    answer TEXT NOT NULL, PRIMARY KEY (notify_id, attempt));
"""


@dataclass
class SimulatorConfig:
    name: str = "alipay_sim"
    #: SQLite file for the channel's state; ":memory:" keeps it in the process.
    db_path: str = ":memory:"
    app_id: str = p.DEFAULT_APP_ID
    seller_id: str = p.DEFAULT_SELLER_ID
    #: Retry intervals after an unacknowledged notification.
    notify_schedule_ms: Sequence[int] = p.ALIPAY_NOTIFY_SCHEDULE_MS
    #: How often the background loop sends due notifications and expires trades.
    tick_ms: int = 50
    notify_timeout_s: float = 5.0
    #: A buyer id, sent encrypted (AES-GCM) in notifications as ``buyer_logon_id``.
    buyer_logon_id: str = "buyer***@example.com"


@dataclass
class _Faults:
    failure_rate: float = 0.0
    latency_ms: int = 0
    drop_notifications: bool = False
    calls: int = 0


class ChannelSimulator(ch_grpc.PaymentChannelServiceServicer):
    """The servicer plus a background notifier; ``start()`` and ``stop()`` it."""

    def __init__(self, config: SimulatorConfig, keys: ChannelKeys) -> None:
        self.config = config
        self.keys = keys
        self._lock = threading.RLock()
        self._db = sqlite3.connect(config.db_path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)
        self._faults = _Faults()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._channels: dict[str, grpc.Channel] = {}

    # --- lifecycle --------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="channel-notifier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for channel in self._channels.values():
            channel.close()
        self._db.close()

    # --- merchant API -----------------------------------------------------

    def _merchant_call(self, params: Mapping[str, str], method: str) -> dict[str, str] | None:
        """Apply the fault knobs and check the request; an error answer or None."""
        with self._lock:
            faults = self._faults
            faults.calls += 1
            # Failures spread evenly: after n calls, floor(n * rate) have failed.
            fail = int(faults.calls * faults.failure_rate) > int(
                (faults.calls - 1) * faults.failure_rate
            )
            latency = faults.latency_ms
        if latency:
            time.sleep(latency / 1000)
        if fail:
            raise ChannelUnavailableError(self.config.name, "injected failure")
        app_id = params.get("app_id", "")
        if not app_id:  # first: an unsigned request without it would say "bad signature"
            return _error(
                p.CODE_MISSING_ARGUMENT,
                p.SUB_CODE_MISSING_APP_ID,
                "app_id is required in every request, QueryTrade too: the merchant's app id",
            )
        if not verify(params, self.keys.merchant_public):
            return _error(p.CODE_INVALID_SIGNATURE, p.SUB_CODE_INVALID_SIGNATURE, "bad signature")
        if app_id != self.config.app_id:
            return _error(
                p.CODE_INVALID_ARGUMENT,
                p.SUB_CODE_INVALID_APP_ID,
                f"app_id {app_id[:40]!r} is not the merchant of channel {self.config.name!r}",
            )
        missing = [k for k in _REQUIRED[method] if not params.get(k)]
        if missing:
            return _error("40002", "isv.missing-parameter", ",".join(missing))
        return None

    def _answer(self, body: Mapping[str, str]) -> dict[str, str]:
        return signed(body, self.keys.platform_private)

    @map_errors
    def Precreate(
        self, request: ch_pb2.PrecreateRequest, context: grpc.ServicerContext
    ) -> ch_pb2.PrecreateResponse:
        params = dict(request.params)
        body = self._merchant_call(params, "alipay.trade.precreate") or self._precreate(params)
        return ch_pb2.PrecreateResponse(params=self._answer(body))

    def _precreate(self, params: Mapping[str, str]) -> dict[str, str]:
        out_trade_no = params["out_trade_no"]
        try:
            amount = p.format_amount(p.parse_amount(params["total_amount"]))
            expire_ms = p.parse_time(params["time_expire"])
        except AtxError as error:
            return _error("40004", "ACQ.INVALID_PARAMETER", error.message)
        with self._lock:
            row = self._trade(out_trade_no)
            if row is not None and row["total_amount"] != amount:
                return _error("40004", "ACQ.CONTEXT_INCONSISTENT", "amount differs")
            if row is None:
                self._db.execute(
                    "INSERT INTO trades (out_trade_no, trade_no, total_amount, subject, status,"
                    " time_expire_ms, notify_address, created_ms) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        out_trade_no,
                        f"{time.strftime('%Y%m%d')}{uuid.uuid4().int % 10**18:018d}",
                        amount,
                        params.get("subject", ""),
                        p.WAIT_BUYER_PAY,
                        expire_ms,
                        params["notify_url"],
                        now_ms(),
                    ),
                )
        qr = f"https://qr.simulator.invalid/{self.config.name}/{out_trade_no}"
        return {**_ok(), "out_trade_no": out_trade_no, "qr_code": qr}

    @map_errors
    def QueryTrade(
        self, request: ch_pb2.QueryTradeRequest, context: grpc.ServicerContext
    ) -> ch_pb2.QueryTradeResponse:
        params = dict(request.params)
        body = self._merchant_call(params, "alipay.trade.query") or self._query(
            params["out_trade_no"]
        )
        return ch_pb2.QueryTradeResponse(params=self._answer(body))

    def _query(self, out_trade_no: str) -> dict[str, str]:
        with self._lock:
            self._expire_due()
            row = self._trade(out_trade_no)
            if row is None:
                return _error(p.CODE_BUSINESS_FAILED, p.SUB_CODE_TRADE_NOT_EXIST, "no such trade")
            count = self._db.execute(
                "SELECT COUNT(*) FROM refunds WHERE out_trade_no = ?", (out_trade_no,)
            ).fetchone()[0]
        body = {
            **_ok(),
            "out_trade_no": out_trade_no,
            "trade_no": row["trade_no"],
            "trade_status": row["status"],
            "total_amount": row["total_amount"],
            # Simulator extras, so that tests can count refunds through the API.
            "refund_count": str(count),
            "refunded_amount": p.format_amount(row["refunded_minor"]),
        }
        if row["paid_ms"] is not None:
            body["send_pay_date"] = p.format_time(row["paid_ms"])
        return body

    @map_errors
    def CloseTrade(
        self, request: ch_pb2.CloseTradeRequest, context: grpc.ServicerContext
    ) -> ch_pb2.CloseTradeResponse:
        params = dict(request.params)
        body = self._merchant_call(params, "alipay.trade.close") or self._close(
            params["out_trade_no"]
        )
        return ch_pb2.CloseTradeResponse(params=self._answer(body))

    def _close(self, out_trade_no: str) -> dict[str, str]:
        with self._lock:
            self._expire_due()
            row = self._trade(out_trade_no)
            if row is None:
                return _error(p.CODE_BUSINESS_FAILED, p.SUB_CODE_TRADE_NOT_EXIST, "no such trade")
            if row["status"] == p.WAIT_BUYER_PAY:
                self._set_status(out_trade_no, p.TRADE_CLOSED, closed_ms=now_ms())
            elif row["status"] != p.TRADE_CLOSED or row["paid_ms"] is not None:
                # Paid (or paid and refunded): a close is refused.
                return _error(p.CODE_BUSINESS_FAILED, p.SUB_CODE_TRADE_STATUS_ERROR, row["status"])
        return {**_ok(), "out_trade_no": out_trade_no, "trade_no": row["trade_no"]}

    @map_errors
    def Refund(
        self, request: ch_pb2.RefundRequest, context: grpc.ServicerContext
    ) -> ch_pb2.RefundResponse:
        params = dict(request.params)
        body = self._merchant_call(params, "alipay.trade.refund") or self._refund(params)
        return ch_pb2.RefundResponse(params=self._answer(body))

    def _refund(self, params: Mapping[str, str]) -> dict[str, str]:
        out_trade_no, request_no = params["out_trade_no"], params["out_request_no"]
        try:
            minor = p.parse_amount(params["refund_amount"])
        except AtxError as error:
            return _error("40004", "ACQ.INVALID_PARAMETER", error.message)
        with self._lock:
            row = self._trade(out_trade_no)
            if row is None:
                return _error(p.CODE_BUSINESS_FAILED, p.SUB_CODE_TRADE_NOT_EXIST, "no such trade")
            done = self._db.execute(
                "SELECT out_trade_no, refund_amount FROM refunds WHERE out_request_no = ?",
                (request_no,),
            ).fetchone()
            fund_change = "N"
            if done is not None:
                if done["out_trade_no"] != out_trade_no:
                    return _error("40004", "ACQ.CONTEXT_INCONSISTENT", "request_no reused")
            else:
                if row["paid_ms"] is None:
                    return _error(
                        p.CODE_BUSINESS_FAILED, p.SUB_CODE_TRADE_STATUS_ERROR, row["status"]
                    )
                total = p.parse_amount(row["total_amount"])
                if minor <= 0 or row["refunded_minor"] + minor > total:
                    return _error("40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "refund too large")
                self._db.execute(
                    "INSERT INTO refunds VALUES (?,?,?,?)",
                    (request_no, out_trade_no, p.format_amount(minor), now_ms()),
                )
                refunded = row["refunded_minor"] + minor
                self._db.execute(
                    "UPDATE trades SET refunded_minor = ? WHERE out_trade_no = ?",
                    (refunded, out_trade_no),
                )
                if refunded == total:  # a full refund closes the trade (Alipay)
                    self._set_status(out_trade_no, p.TRADE_CLOSED, closed_ms=now_ms())
                fund_change = "Y"
                logger.info("refund %s of trade %s: %s", request_no, out_trade_no, minor)
            row = self._trade(out_trade_no)
            assert row is not None
        return {
            **_ok(),
            "out_trade_no": out_trade_no,
            "trade_no": row["trade_no"],
            "out_request_no": request_no,
            "fund_change": fund_change,
            "refund_fee": p.format_amount(row["refunded_minor"]),
        }

    # --- simulator-only API -------------------------------------------------

    @map_errors
    def SimulatePay(
        self, request: ch_pb2.SimulatePayRequest, context: grpc.ServicerContext
    ) -> ch_pb2.SimulatePayResponse:
        return ch_pb2.SimulatePayResponse(trade_no=self.pay(request.out_trade_no))

    def pay(self, out_trade_no: str) -> str:
        """The buyer pays: TRADE_SUCCESS and a notification; returns the trade_no."""
        with self._lock:
            self._expire_due()
            row = self._trade(out_trade_no)
            if row is None:
                raise TradeNotFoundError(self.config.name, out_trade_no)
            if row["status"] != p.WAIT_BUYER_PAY:
                raise IllegalStatusError(out_trade_no, row["status"], "pay")
            now = now_ms()
            self._set_status(out_trade_no, p.TRADE_SUCCESS, paid_ms=now)
            self._enqueue(out_trade_no)
            trade_no: str = row["trade_no"]
        return trade_no

    @map_errors
    def SetFaults(
        self, request: ch_pb2.SetFaultsRequest, context: grpc.ServicerContext
    ) -> ch_pb2.SetFaultsResponse:
        self.set_faults(request.failure_rate, request.latency_ms, request.drop_notifications)
        return ch_pb2.SetFaultsResponse()

    def set_faults(
        self, failure_rate: float = 0.0, latency_ms: int = 0, drop_notifications: bool = False
    ) -> None:
        with self._lock:
            self._faults = _Faults(min(max(failure_rate, 0.0), 1.0), latency_ms, drop_notifications)

    def refunds(self, out_trade_no: str | None = None) -> list[dict[str, Any]]:
        """Every refund performed (optionally of one trade), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM refunds WHERE ? IS NULL OR out_trade_no = ? ORDER BY created_ms",
                (out_trade_no, out_trade_no),
            ).fetchall()
        return [dict(row) for row in rows]

    def notifications(self, out_trade_no: str) -> list[dict[str, Any]]:
        """The trade's notifications with their attempts (times and answers)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT notify_id, state, attempts FROM notifications WHERE out_trade_no = ?",
                (out_trade_no,),
            ).fetchall()
            out = []
            for row in rows:
                attempts = self._db.execute(
                    "SELECT at_ms, answer FROM notify_attempts WHERE notify_id = ?"
                    " ORDER BY attempt",
                    (row["notify_id"],),
                ).fetchall()
                out.append({**dict(row), "attempt_log": [dict(a) for a in attempts]})
        return out

    def trade_status(self, out_trade_no: str) -> str | None:
        with self._lock:
            self._expire_due()
            row = self._trade(out_trade_no)
        return None if row is None else str(row["status"])

    # --- state helpers (call with the lock held) ----------------------------

    def _trade(self, out_trade_no: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db.execute(
            "SELECT * FROM trades WHERE out_trade_no = ?", (out_trade_no,)
        ).fetchone()
        return row

    def _set_status(self, out_trade_no: str, status: str, **times: int) -> None:
        sets = ", ".join(["status = ?", *(f"{k} = ?" for k in times)])
        self._db.execute(
            f"UPDATE trades SET {sets} WHERE out_trade_no = ?",
            (status, *times.values(), out_trade_no),
        )

    def _expire_due(self) -> None:
        """Trades past time_expire close themselves and tell the merchant."""
        now = now_ms()
        due = self._db.execute(
            "SELECT out_trade_no FROM trades WHERE status = ? AND time_expire_ms <= ?",
            (p.WAIT_BUYER_PAY, now),
        ).fetchall()
        for row in due:
            self._set_status(row["out_trade_no"], p.TRADE_CLOSED, closed_ms=now)
            self._enqueue(row["out_trade_no"])

    def _enqueue(self, out_trade_no: str) -> None:
        row = self._trade(out_trade_no)
        assert row is not None
        params = {
            "notify_type": "trade_status_sync",
            "app_id": self.config.app_id,
            "seller_id": self.config.seller_id,
            "trade_no": row["trade_no"],
            "out_trade_no": out_trade_no,
            "trade_status": row["status"],
            "total_amount": row["total_amount"],
        }
        if row["paid_ms"] is not None:
            params["gmt_payment"] = p.format_time(row["paid_ms"])
            resource = encrypt_field(self.keys.aes_key, self.config.buyer_logon_id, out_trade_no)
            params["buyer_logon_id"] = resource.to_json()
        if row["closed_ms"] is not None:
            params["gmt_close"] = p.format_time(row["closed_ms"])
        notify_id = uuid.uuid4().hex
        state = "DROPPED" if self._faults.drop_notifications else "PENDING"
        self._db.execute(
            "INSERT INTO notifications (notify_id, out_trade_no, notify_address, params,"
            " next_ms, state) VALUES (?,?,?,?,?,?)",
            (notify_id, out_trade_no, row["notify_address"], json.dumps(params), 0, state),
        )

    # --- the notifier ---------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self.config.tick_ms / 1000):
            try:
                with self._lock:
                    self._expire_due()
                    due = self._db.execute(
                        "SELECT * FROM notifications WHERE state = 'PENDING' AND next_ms <= ?",
                        (now_ms(),),
                    ).fetchall()
                for row in due:
                    if self._stop.is_set():
                        return
                    self._deliver(row)
            except Exception:
                logger.exception("channel %s: notifier loop failed", self.config.name)

    def _deliver(self, row: sqlite3.Row) -> None:
        notify_id = row["notify_id"]
        params = json.loads(row["params"])
        now = now_ms()
        # Each attempt carries its own notify_time, so it is signed again.
        params.update(notify_id=notify_id, notify_time=p.format_time(now))
        message = signed(params, self.keys.platform_private)
        try:
            stub = pay_grpc.PaymentServiceStub(self._channel(row["notify_address"]))
            reply = stub.HandleNotification(
                pay_pb2.HandleNotificationRequest(channel=self.config.name, params=message),
                timeout=self.config.notify_timeout_s,
            )
            answer = reply.ack
        except grpc.RpcError as error:
            answer = f"rpc error {error.code().name}"  # type: ignore[attr-defined]
        attempt = row["attempts"] + 1
        schedule = list(self.config.notify_schedule_ms)
        with self._lock:
            self._db.execute(
                "INSERT INTO notify_attempts VALUES (?,?,?,?)", (notify_id, attempt, now, answer)
            )
            if answer == p.NOTIFY_ACK:
                state, next_ms = "ACKED", 0
            elif attempt <= len(schedule):
                state, next_ms = "PENDING", now + schedule[attempt - 1]
            else:
                state, next_ms = "GAVE_UP", 0
            self._db.execute(
                "UPDATE notifications SET attempts = ?, next_ms = ?, state = ? WHERE notify_id = ?",
                (attempt, next_ms, state, notify_id),
            )
        logger.info(
            "channel %s: notification %s for %s attempt %d answered %r",
            self.config.name,
            notify_id,
            row["out_trade_no"],
            attempt,
            answer,
        )

    def _channel(self, address: str) -> grpc.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.insecure_channel(address)
        return channel


_REQUIRED: dict[str, tuple[str, ...]] = {
    "alipay.trade.precreate": ("out_trade_no", "total_amount", "time_expire", "notify_url"),
    "alipay.trade.query": ("out_trade_no",),
    "alipay.trade.close": ("out_trade_no",),
    "alipay.trade.refund": ("out_trade_no", "refund_amount", "out_request_no"),
}


def _ok() -> dict[str, str]:
    return {"code": p.CODE_SUCCESS, "msg": "Success"}


def _error(code: str, sub_code: str, sub_msg: str) -> dict[str, str]:
    return {"code": code, "msg": "Business Failed", "sub_code": sub_code, "sub_msg": sub_msg}
