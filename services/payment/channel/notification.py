"""Verification of a channel's asynchronous notification (Alipay order):
signature, timestamp window, app_id and seller_id, then the amount."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from atx.errors import AtxError, InvalidArgumentError
from atx.shop.payment.channel import protocol as p
from atx.shop.payment.channel.errors import (
    AmountMismatchError,
    SignatureError,
    UnknownAppError,
)
from atx.shop.payment.channel.signing import (
    DEFAULT_WINDOW_S,
    EncryptedResource,
    check_timestamp,
    decrypt_field,
    verify,
)

__all__ = ["Notification", "verify_notification"]


@dataclass(frozen=True)
class Notification:
    """A verified notification."""

    channel: str
    notify_id: str
    notify_time_ms: int
    out_trade_no: str
    trade_no: str
    trade_status: str
    #: Minor units.
    total_amount: int
    gmt_payment_ms: int | None
    #: Decrypted from the AES-GCM resource, when the channel sent one.
    buyer_logon_id: str | None

    @property
    def paid(self) -> bool:
        return self.trade_status in p.PAID_STATUSES


def _required(params: Mapping[str, str], key: str) -> str:
    value = params.get(key, "")
    if not value:
        raise InvalidArgumentError(f"notification has no {key}", field=key)
    return value


def verify_notification(
    params: Mapping[str, str],
    *,
    channel: str,
    platform_public: rsa.RSAPublicKey,
    expected_amount: int | None,
    app_id: str,
    seller_id: str,
    now_ms: int,
    window_s: float = DEFAULT_WINDOW_S,
    aes_key: bytes | None = None,
) -> Notification:
    """Check everything Alipay asks for, in its order; raises a typed error.

    ``expected_amount`` is the pay order's amount in minor units; pass None
    to check it yourself later (compare with ``Notification.total_amount``).
    """
    if not verify(params, platform_public):
        raise SignatureError(channel, "a notification")
    notify_time = check_timestamp(params.get("notify_time", ""), now_ms, window_s)
    for key, ours in (("app_id", app_id), ("seller_id", seller_id)):
        if params.get(key) != ours:
            raise UnknownAppError(key, params.get(key, ""))
    out_trade_no = _required(params, "out_trade_no")
    total = p.parse_amount(_required(params, "total_amount"))
    if expected_amount is not None and total != expected_amount:
        raise AmountMismatchError(out_trade_no, expected_amount, params["total_amount"])
    buyer = None
    if params.get("buyer_logon_id") and aes_key is not None:
        buyer = decrypt_field(aes_key, EncryptedResource.from_json(params["buyer_logon_id"]))
    gmt_payment = params.get("gmt_payment")
    try:
        paid_ms = p.parse_time(gmt_payment) if gmt_payment else None
    except AtxError:
        paid_ms = None
    return Notification(
        channel=channel,
        notify_id=_required(params, "notify_id"),
        notify_time_ms=notify_time,
        out_trade_no=out_trade_no,
        trade_no=params.get("trade_no", ""),
        trade_status=_required(params, "trade_status"),
        total_amount=total,
        gmt_payment_ms=paid_ms,
        buyer_logon_id=buyer,
    )
