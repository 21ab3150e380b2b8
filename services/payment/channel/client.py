"""The merchant side of a payment channel: what the payment service calls.

``ChannelClient`` signs each request with our merchant key, verifies each
answer with the channel's platform key, and turns failures into typed
errors. When given a breaker it records each call's outcome: transport
failures and bad answer signatures count against the channel; business
answers (trade not found, wrong status) count as the channel working.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from atx import clock
from atx.errors import AtxError, from_rpc_error
from atx.shop.payment.channel import protocol as p
from atx.shop.payment.channel.breaker import ChannelBreaker
from atx.shop.payment.channel.errors import (
    AppIdRejectedError,
    ChannelRejectedError,
    ChannelUnavailableError,
    SignatureError,
    TradeNotFoundError,
    TradeStatusError,
)
from atx.shop.payment.channel.notification import Notification, verify_notification
from atx.shop.payment.channel.notify_fields import ALIPAY_NOTIFICATION, NotificationSchema
from atx.shop.payment.channel.signing import DEFAULT_WINDOW_S, ChannelKeys, signed, verify
from atx.shop.v1 import payment_channel_pb2 as ch_pb2
from atx.shop.v1 import payment_channel_pb2_grpc as ch_grpc

__all__ = ["ChannelClient", "PrecreateResult", "RefundResult", "TradeInfo"]

logger = logging.getLogger(__name__)

_RETRYABLE_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)


@dataclass(frozen=True)
class PrecreateResult:
    out_trade_no: str
    #: Where the user pays (our PayOrder.pay_url).
    qr_code: str


@dataclass(frozen=True)
class TradeInfo:
    out_trade_no: str
    trade_no: str
    trade_status: str
    #: Minor units.
    total_amount: int
    paid_time_ms: int | None
    refund_count: int
    refunded_amount: int

    @property
    def paid(self) -> bool:
        """Paid now (TRADE_SUCCESS or TRADE_FINISHED): run the success processing."""
        return self.trade_status in p.PAID_STATUSES

    @property
    def was_paid(self) -> bool:
        """Paid at some point, e.g. paid and then refunded in full (TRADE_CLOSED)."""
        return self.paid or self.paid_time_ms is not None


@dataclass(frozen=True)
class RefundResult:
    out_request_no: str
    #: False when this request number had refunded before (nothing moved now).
    fund_change: bool
    #: Minor units refunded on the trade so far.
    refund_fee: int


class ChannelClient:
    """One channel, one gRPC target. Thread-safe; ``close()`` when done."""

    def __init__(
        self,
        name: str,
        target: str | grpc.Channel,
        keys: ChannelKeys,
        *,
        app_id: str = p.DEFAULT_APP_ID,
        seller_id: str = p.DEFAULT_SELLER_ID,
        timeout_s: float = 5.0,
        breaker: ChannelBreaker | None = None,
        notify_window_s: float = DEFAULT_WINDOW_S,
        notification_schema: NotificationSchema = ALIPAY_NOTIFICATION,
    ) -> None:
        self.name = name
        self.keys = keys
        self.app_id = app_id
        self.seller_id = seller_id
        self.timeout_s = timeout_s
        self.breaker = breaker
        self.notify_window_s = notify_window_s
        #: The fields this channel's notifications carry (see notify_fields.py).
        self.notification_schema = notification_schema
        self._owns_channel = isinstance(target, str)
        self._channel = grpc.insecure_channel(target) if isinstance(target, str) else target
        self._stub = ch_grpc.PaymentChannelServiceStub(self._channel)

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    # --- the API --------------------------------------------------------------

    def precreate(
        self,
        out_trade_no: str,
        total_amount: int,
        time_expire_ms: int,
        notify_address: str,
        subject: str = "",
    ) -> PrecreateResult:
        """Create the trade; ``time_expire_ms`` is the channel's (earlier) deadline
        and ``notify_address`` the payment service's gRPC address."""
        answer = self._call(
            self._stub.Precreate,
            ch_pb2.PrecreateRequest,
            "alipay.trade.precreate",
            {
                "out_trade_no": out_trade_no,
                "total_amount": p.format_amount(total_amount),
                "time_expire": p.format_time(time_expire_ms),
                "notify_url": notify_address,
                "subject": subject,
            },
        )
        return PrecreateResult(out_trade_no, answer.get("qr_code", ""))

    def query(self, out_trade_no: str) -> TradeInfo:
        """The trade as the channel knows it; TradeNotFoundError if it has none."""
        answer = self._call(
            self._stub.QueryTrade,
            ch_pb2.QueryTradeRequest,
            "alipay.trade.query",
            {"out_trade_no": out_trade_no},
        )
        paid = answer.get("send_pay_date")
        return TradeInfo(
            out_trade_no=out_trade_no,
            trade_no=answer.get("trade_no", ""),
            trade_status=answer.get("trade_status", ""),
            total_amount=p.parse_amount(answer.get("total_amount", "0")),
            paid_time_ms=p.parse_time(paid) if paid else None,
            refund_count=int(answer.get("refund_count", "0") or 0),
            refunded_amount=p.parse_amount(answer.get("refunded_amount", "0") or "0"),
        )

    def close_trade(self, out_trade_no: str) -> None:
        """Close an unpaid trade (closing a closed one is fine).
        TradeStatusError when it was paid; TradeNotFoundError when unknown."""
        self._call(
            self._stub.CloseTrade,
            ch_pb2.CloseTradeRequest,
            "alipay.trade.close",
            {"out_trade_no": out_trade_no},
        )

    def refund(self, out_trade_no: str, refund_amount: int, out_request_no: str) -> RefundResult:
        """Refund, idempotent by ``out_request_no``: the same number refunds once."""
        answer = self._call(
            self._stub.Refund,
            ch_pb2.RefundRequest,
            "alipay.trade.refund",
            {
                "out_trade_no": out_trade_no,
                "refund_amount": p.format_amount(refund_amount),
                "out_request_no": out_request_no,
            },
        )
        return RefundResult(
            out_request_no=out_request_no,
            fund_change=answer.get("fund_change") == "Y",
            refund_fee=p.parse_amount(answer.get("refund_fee", "0") or "0"),
        )

    def verify_notification(
        self,
        params: Mapping[str, str],
        expected_amount: int | None,
        *,
        app_id: str | None = None,
        seller_id: str | None = None,
        now_ms: int | None = None,
    ) -> Notification:
        """Verify a notification of this channel (see notification.verify_notification)."""
        return verify_notification(
            params,
            channel=self.name,
            platform_public=self.keys.platform_public,
            expected_amount=expected_amount,
            app_id=app_id or self.app_id,
            seller_id=seller_id or self.seller_id,
            now_ms=clock.now_ms() if now_ms is None else now_ms,
            window_s=self.notify_window_s,
            aes_key=self.keys.aes_key,
            schema=self.notification_schema,
        )

    # --- plumbing ---------------------------------------------------------------

    def _call(
        self,
        method: Callable[..., Any],
        request_type: Callable[..., Any],
        api: str,
        biz: Mapping[str, str],
    ) -> dict[str, str]:
        params = {
            "app_id": self.app_id,
            "method": api,
            "charset": "utf-8",
            "timestamp": p.format_time(clock.now_ms()),
            "version": "1.0",
            **biz,
        }
        request = request_type(params=signed(params, self.keys.merchant_private))
        try:
            reply = method(request, timeout=self.timeout_s)
        except grpc.RpcError as error:
            self._record(False)
            code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
            if code in _RETRYABLE_CODES:
                raise ChannelUnavailableError(self.name, f"{api}: {code.name}") from None
            converted: AtxError = from_rpc_error(error)
            raise converted from None
        answer = dict(reply.params)
        if not verify(answer, self.keys.platform_public):
            self._record(False)
            raise SignatureError(self.name, f"the answer to {api}")
        self._record(True)
        if answer.get("code") != p.CODE_SUCCESS:
            sub_code, sub_msg = answer.get("sub_code", ""), answer.get("sub_msg", "")
            if sub_code == p.SUB_CODE_TRADE_NOT_EXIST:
                raise TradeNotFoundError(self.name, biz.get("out_trade_no", ""))
            if sub_code in (p.SUB_CODE_MISSING_APP_ID, p.SUB_CODE_INVALID_APP_ID):
                raise AppIdRejectedError(self.name, sub_code, self.app_id, sub_msg)
            if sub_code == p.SUB_CODE_TRADE_STATUS_ERROR:
                raise TradeStatusError(self.name, sub_code, sub_msg)
            raise ChannelRejectedError(self.name, sub_code or answer.get("code", ""), sub_msg)
        return answer

    def _record(self, ok: bool) -> None:
        if self.breaker is None:
            return
        try:
            if ok:
                self.breaker.record_success(self.name)
            else:
                self.breaker.record_failure(self.name)
        except Exception:  # the breaker must never break a payment call
            logger.exception("breaker of channel %s could not record", self.name)
