"""Verification of a channel's asynchronous notification (Alipay order):
an unambiguous signed string, the signature, the strict parse of every field
it signed (notify_fields.py), the timestamp window, app_id and seller_id,
then the amount."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from atx.shop.payment.channel import protocol as p
from atx.shop.payment.channel.errors import (
    AmountMismatchError,
    SignatureError,
    StaleTimestampError,
    UnknownAppError,
)
from atx.shop.payment.channel.notify_fields import (
    ALIPAY_NOTIFICATION,
    NotificationSchema,
    parse_notification,
)
from atx.shop.payment.channel.signing import (
    DEFAULT_WINDOW_S,
    check_unambiguous,
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
    schema: NotificationSchema = ALIPAY_NOTIFICATION,
) -> Notification:
    """Check everything Alipay asks for, in its order; raises a typed error.

    The signed string must read as one message only (AmbiguousMessageError)
    and every signed field must be exactly in its form (NotificationFieldError):
    a moved boundary or a suffix keeps the signature valid, so the signature
    alone proves nothing about what the fields mean.

    ``expected_amount`` is the pay order's amount in minor units; pass None
    to check it yourself later (compare with ``Notification.total_amount``).
    """
    check_unambiguous(params)
    if not verify(params, platform_public):
        raise SignatureError(channel, "a notification")
    fields = parse_notification(params, schema)
    if abs(now_ms - fields.notify_time_ms) > window_s * 1000:
        raise StaleTimestampError(params["notify_time"], window_s)
    for key, ours, theirs in (
        ("app_id", app_id, fields.app_id),
        ("seller_id", seller_id, fields.seller_id),
    ):
        if theirs != ours:
            raise UnknownAppError(key, theirs)
    if expected_amount is not None and fields.total_amount != expected_amount:
        raise AmountMismatchError(fields.out_trade_no, expected_amount, params["total_amount"])
    buyer = None
    if fields.buyer_logon_id is not None and aes_key is not None:
        buyer = decrypt_field(aes_key, fields.buyer_logon_id)
    return Notification(
        channel=channel,
        notify_id=fields.notify_id,
        notify_time_ms=fields.notify_time_ms,
        out_trade_no=fields.out_trade_no,
        trade_no=fields.trade_no,
        trade_status=fields.trade_status,
        total_amount=fields.total_amount,
        gmt_payment_ms=fields.gmt_payment_ms,
        buyer_logon_id=buyer,
    )
