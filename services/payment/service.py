"""PaymentService: pay orders, channel notifications and active queries.

A notification is verified (an unambiguous signed string, the signature, a
strict parse of every signed field, timestamp, app id, amount) by the
channel module, or refused with ``fail`` and logged; then checked against
the replay guard, then fulfilled (settled, or refunded when it can no
longer be: see recovery.py); the answer ``success`` is given only after
the global commit, anything else makes the channel retry. The deferred
mints run on this process's outbox dispatcher.

ListChannels leaves out channels whose breaker is open; AbandonPayOrder does
not count against the channel; RunJob runs a scheduled job now (under its
shared lock).
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

import grpc

from atx.clock import now_ms
from atx.errors import AtxError, InvalidArgumentError, NotFoundError, map_errors
from atx.shop.common.db import Database, execute
from atx.shop.common.errors import InvalidStateError
from atx.shop.common.rpc import call
from atx.shop.common.server import client_channel
from atx.shop.payment.channel import protocol as p
from atx.shop.payment.channel.errors import ChannelUnavailableError
from atx.shop.payment.channels import StreamRegistry
from atx.shop.payment.guards import Guards
from atx.shop.payment.processing import SuccessProcessor
from atx.shop.payment.recovery import Fulfilment
from atx.shop.payment.schema import PAY_ORDER_COLUMNS
from atx.shop.v1 import order_pb2, order_pb2_grpc
from atx.shop.v1 import payment_pb2 as pb
from atx.shop.v1 import payment_pb2_grpc as pb_grpc

__all__ = ["ACK_FAIL", "ACK_SUCCESS", "PaymentServicer"]

logger = logging.getLogger(__name__)

ACK_SUCCESS = "success"
ACK_FAIL = "fail"

_STATE = {
    "PENDING": pb.PAY_ORDER_STATE_PENDING,
    "SUCCESS": pb.PAY_ORDER_STATE_SUCCESS,
    "CLOSED": pb.PAY_ORDER_STATE_CLOSED,
    "REFUNDED": pb.PAY_ORDER_STATE_REFUNDED,
    "ABANDONED": pb.PAY_ORDER_STATE_ABANDONED,
}


def _log_refusal(
    channel: str, out_trade_no: str, row: tuple[Any, ...] | None, error: AtxError
) -> None:
    """Why a notification was answered ``fail``, with what we know of its pay order."""
    if row is None:
        logger.warning(
            "refused notification from %s for unknown pay order %r: %s %s",
            channel,
            out_trade_no[:80],
            error.code,
            error.message,
        )
        return
    logger.warning(
        "refused notification from %s for pay order %s (order %s, %s, xid %s): %s %s",
        channel,
        row[0],
        row[1],
        row[5],
        row[12] or "none",
        error.code,
        error.message,
        extra={"xid": row[12] or None},
    )


def crash_point(point: str) -> None:
    """Test-only: exit at once (like kill -9) at ``point`` while
    ``ATX_CRASH_<POINT>=file:/path`` names an existing file."""
    value = os.environ.get(f"ATX_CRASH_{point.upper()}", "")
    if value.startswith("file:") and os.path.exists(value[len("file:") :]):
        logger.error("injected crash at %s", point)
        os._exit(75)


def _pay_order(row: tuple[Any, ...]) -> pb.PayOrder:
    return pb.PayOrder(
        pay_order_id=row[0],
        order_id=row[1],
        channel=row[3],
        amount=row[4],
        state=_STATE.get(row[5], pb.PAY_ORDER_STATE_UNSPECIFIED),
        channel_trade_no=row[6],
        pay_url=row[7],
        created_time_ms=row[8],
        expire_time_ms=row[9],
        paid_time_ms=row[11],
    )


class PaymentServicer(pb_grpc.PaymentServiceServicer):
    def __init__(
        self,
        db: Database,
        channels: StreamRegistry,
        processor: SuccessProcessor,
        order_address: str,
        notify_address: str,
        pay_ttl: float = 900.0,
        channel_margin: float = 60.0,
        *,
        guards: Guards,
        fulfilment: Fulfilment,
    ) -> None:
        self.db = db
        self.channels = channels
        self.processor = processor
        self.guards = guards
        self.fulfilment = fulfilment
        self.orders = order_pb2_grpc.OrderServiceStub(client_channel(order_address))
        self.notify_address = notify_address
        self.pay_ttl = pay_ttl
        self.channel_margin = min(channel_margin, pay_ttl / 2)

    def get(self, pay_order_id: str) -> tuple[Any, ...]:
        rows = self.db.query(
            f"SELECT {PAY_ORDER_COLUMNS}, settled_xid FROM pay_orders WHERE pay_order_id = ?",
            (pay_order_id,),
        )
        if not rows:
            raise NotFoundError(f"no pay order {pay_order_id!r}", pay_order_id=pay_order_id)
        return rows[0]

    def committed_view(self, row: tuple[Any, ...]) -> pb.PayOrder:
        """The pay order as committed: a settlement still in flight shows PENDING."""
        message = _pay_order(row)
        if row[5] == "SUCCESS":
            try:
                in_flight = self.processor.settlement_status(str(row[12])) is not None
            except AtxError:
                in_flight = True  # TC unreachable: do not claim success yet
            if in_flight:
                message.state = pb.PAY_ORDER_STATE_PENDING
                message.channel_trade_no = ""
                message.paid_time_ms = 0
        return message

    @map_errors
    def ListChannels(
        self, request: pb.ListChannelsRequest, context: grpc.ServicerContext
    ) -> pb.ListChannelsResponse:
        names = self.channels.names()
        breaker = self.guards.breaker
        if breaker is not None:
            try:
                names = breaker.available_channels(names, request.user_id)
            except Exception:  # Redis down: better list every channel than none
                logger.exception("breaker unavailable: listing every channel")
        return pb.ListChannelsResponse(
            channels=[pb.PaymentChannel(name=n, display_name=n) for n in names]
        )

    def _allow(self, channel: str, user_id: str) -> None:
        """Refuse a pay order at a channel whose breaker is open (for this user)."""
        breaker = self.guards.breaker
        if breaker is None:
            return
        try:
            allowed = breaker.allow(channel, user_id)
        except Exception:
            logger.exception("breaker unavailable: allowing channel %s", channel)
            return
        if not allowed:
            raise ChannelUnavailableError(channel, "circuit open: choose another channel")

    @map_errors
    def CreatePayOrder(
        self, request: pb.CreatePayOrderRequest, context: grpc.ServicerContext
    ) -> pb.CreatePayOrderResponse:
        if not request.order_id or not request.channel:
            raise InvalidArgumentError("order_id and channel are required")
        client = self.channels.get(request.channel)
        existing = self.db.query(
            f"SELECT {PAY_ORDER_COLUMNS} FROM pay_orders"
            " WHERE order_id = ? AND channel = ? AND state = ?",
            (request.order_id, request.channel, "PENDING"),
        )
        if existing and existing[0][7]:
            return pb.CreatePayOrderResponse(pay_order=_pay_order(existing[0]))
        if existing:
            # A previous precreate failed; the channel's precreate is idempotent.
            pay_order_id, amount = str(existing[0][0]), int(existing[0][4])
            channel_expire_at, subject = int(existing[0][10]), str(existing[0][1])
            self._allow(request.channel, str(existing[0][2]))
        else:
            pay_order_id, amount, channel_expire_at, subject = self._insert(request)
        result = client.precreate(
            pay_order_id, amount, channel_expire_at, self.notify_address, subject=subject
        )
        with self.db.transaction(proxy=False) as connection:
            execute(
                connection,
                self.db,
                "UPDATE pay_orders SET pay_url = ?, updated_at = ? WHERE pay_order_id = ?",
                (result.qr_code, now_ms(), pay_order_id),
            ).close()
        return pb.CreatePayOrderResponse(pay_order=_pay_order(self.get(pay_order_id)))

    def _insert(self, request: pb.CreatePayOrderRequest) -> tuple[str, int, int, str]:
        """Insert a PENDING pay order for a CREATED order; returns what precreate needs."""
        order = call(
            self.orders.GetOrder, order_pb2.GetOrderRequest(order_id=request.order_id)
        ).order
        if order.state != order_pb2.ORDER_STATE_CREATED:
            raise InvalidStateError(
                "order", order.order_id, order_pb2.OrderState.Name(order.state), "pay"
            )
        now = now_ms()
        # Deadlines: channel < pay order <= order. The order's own timeout job
        # then never meets a pay order that could still be paid (docs/payment.md).
        expire_at = now + int(self.pay_ttl * 1000)
        if order.expire_time_ms:
            expire_at = min(expire_at, order.expire_time_ms)
        if expire_at <= now:
            raise InvalidStateError("order", order.order_id, "EXPIRED", "pay")
        self._allow(request.channel, order.user_id)
        pay_order_id = f"p-{uuid.uuid4().hex[:20]}"
        margin = min(int(self.channel_margin * 1000), (expire_at - now) // 2)
        channel_expire_at = expire_at - margin
        with self.db.transaction(proxy=False) as connection:
            execute(
                connection,
                self.db,
                f"INSERT INTO pay_orders ({PAY_ORDER_COLUMNS}, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pay_order_id,
                    order.order_id,
                    order.user_id,
                    request.channel,
                    order.amount,
                    "PENDING",
                    "",
                    "",
                    now,
                    expire_at,
                    channel_expire_at,
                    0,
                    now,
                ),
            ).close()
        return pay_order_id, order.amount, channel_expire_at, order.order_id

    @map_errors
    def GetPayOrder(
        self, request: pb.GetPayOrderRequest, context: grpc.ServicerContext
    ) -> pb.GetPayOrderResponse:
        return pb.GetPayOrderResponse(pay_order=self.committed_view(self.get(request.pay_order_id)))

    @map_errors
    def QueryPayOrder(
        self, request: pb.QueryPayOrderRequest, context: grpc.ServicerContext
    ) -> pb.QueryPayOrderResponse:
        row = self.get(request.pay_order_id)
        if row[5] in ("PENDING", "ABANDONED"):
            trade = self.channels.get(row[3]).query(row[0])
            if trade.paid and trade.total_amount == row[4]:
                self.fulfilment.fulfil(row[0], trade.trade_no, trade.paid_time_ms or now_ms())
        return pb.QueryPayOrderResponse(
            pay_order=self.committed_view(self.get(request.pay_order_id))
        )

    def HandleNotification(
        self, request: pb.HandleNotificationRequest, context: grpc.ServicerContext
    ) -> pb.HandleNotificationResponse:
        params = dict(request.params)
        out_trade_no = params.get("out_trade_no", "")
        row: tuple[Any, ...] | None = None
        try:
            client = self.channels.get(request.channel)
            row = self.get(out_trade_no)
            if row[3] != request.channel:
                raise InvalidArgumentError(
                    f"pay order {out_trade_no} is not at channel {request.channel!r}"
                )
            note = client.verify_notification(params, expected_amount=int(row[4]))
        except AtxError as error:
            _log_refusal(request.channel, out_trade_no, row, error)
            return pb.HandleNotificationResponse(ack=ACK_FAIL)
        replay = self.guards.replay
        if replay.seen(request.channel, note.notify_id):
            logger.info("notification %s replayed: ignored", note.notify_id)
            return pb.HandleNotificationResponse(ack=ACK_SUCCESS)
        if note.paid:
            try:
                outcome = self.fulfilment.fulfil(
                    note.out_trade_no,
                    note.trade_no,
                    note.gmt_payment_ms or now_ms(),
                    notify_id=note.notify_id,
                    status=note.trade_status,
                )
            except Exception as error:
                logger.warning(
                    "success processing of %s failed, channel will retry: %s", out_trade_no, error
                )
                return pb.HandleNotificationResponse(ack=ACK_FAIL)
            logger.info("notification %s for %s: %s", note.notify_id, out_trade_no, outcome)
        elif note.trade_status == p.TRADE_CLOSED:
            # The channel's earlier deadline passed and it tells us: close here
            # too, but only on what a query confirms (a payment may have raced it).
            try:
                outcome_text = self.fulfilment.reconcile(out_trade_no)
            except Exception as error:
                logger.warning(
                    "close of %s on TRADE_CLOSED failed, channel will retry: %s",
                    out_trade_no,
                    error,
                )
                return pb.HandleNotificationResponse(ack=ACK_FAIL)
            logger.info("notification %s for %s: %s", note.notify_id, out_trade_no, outcome_text)
        # No other status gets here: WAIT_BUYER_PAY and the rest are refused above.
        crash_point("notify_ack")  # committed, not yet acknowledged
        try:
            replay.remember(request.channel, note.notify_id)
        except Exception:  # the row lock and settled state still make a replay a no-op
            logger.exception("could not remember notification %s", note.notify_id)
        return pb.HandleNotificationResponse(ack=ACK_SUCCESS)

    @map_errors
    def AbandonPayOrder(
        self, request: pb.AbandonPayOrderRequest, context: grpc.ServicerContext
    ) -> pb.AbandonPayOrderResponse:
        with self.db.transaction(proxy=False) as connection:
            execute(
                connection,
                self.db,
                "UPDATE pay_orders SET state = ?, updated_at = ? WHERE pay_order_id = ?"
                " AND state = ?",
                ("ABANDONED", now_ms(), request.pay_order_id, "PENDING"),
            ).close()
        row = self.get(request.pay_order_id)
        if self.guards.breaker is not None:
            # Not the channel's fault: neither success nor failure; frees a held probe.
            self.guards.breaker.record_ignored(str(row[3]), str(row[2]))
        return pb.AbandonPayOrderResponse(pay_order=_pay_order(row))

    @map_errors
    def RunJob(self, request: pb.RunJobRequest, context: grpc.ServicerContext) -> pb.RunJobResponse:
        if not request.job:
            raise InvalidArgumentError("job is required (compensation or timeout_close)")
        run = self.guards.runner.run_now(request.job)
        return pb.RunJobResponse(ran=run.ran, processed=run.processed)

    @map_errors
    def ListPayOrders(
        self, request: pb.ListPayOrdersRequest, context: grpc.ServicerContext
    ) -> pb.ListPayOrdersResponse:
        if not request.order_id:
            raise InvalidArgumentError("order_id is required")
        rows = self.db.query(
            f"SELECT {PAY_ORDER_COLUMNS} FROM pay_orders WHERE order_id = ? ORDER BY created_at",
            (request.order_id,),
        )
        # As stored (not the committed view): a settlement in flight shows SUCCESS,
        # which keeps the order's timeout job away from it.
        return pb.ListPayOrdersResponse(pay_orders=[_pay_order(row) for row in rows])
