"""The strict parse of a notification's signed fields.

The signature says which bytes the channel signed; this module says what
they mean. Each field the payment service reads must be exactly in the form
the channel sends it, with nothing before or after: a timestamp with a
suffix, an amount with a sign, a status no notification carries or a
missing field is refused. Fields nobody reads (Alipay sends many) are only
held to :func:`~atx.shop.payment.channel.signing.check_unambiguous`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from atx.errors import AtxError
from atx.shop.payment.channel import protocol as p
from atx.shop.payment.channel.errors import NotificationFieldError
from atx.shop.payment.channel.signing import SIGN_TYPE, EncryptedResource

__all__ = [
    "ALIPAY_NOTIFICATION",
    "FIELD_PARSERS",
    "NotificationFields",
    "NotificationSchema",
    "parse_field",
    "parse_notification",
]

# Alipay: out_trade_no and trade_no up to 64 characters, notify_id up to 128.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NOTIFY_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
T = TypeVar("T")


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"is not {what}")
        return value

    return parse


def _one_of(allowed: frozenset[str], what: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"is not {what} ({', '.join(sorted(allowed))})")
        return value

    return parse


def _time(value: str) -> int:
    try:
        return p.parse_time(value)
    except AtxError:
        raise ValueError("is not a time 'yyyy-MM-dd HH:mm:ss[.SSS]' (UTC)") from None


def _amount(value: str) -> int:
    try:
        return p.parse_amount(value)
    except AtxError:
        raise ValueError("is not an amount in yuan like '88.88'") from None


def _resource(value: str) -> EncryptedResource:
    try:
        resource = EncryptedResource.from_json(value)
    except AtxError:
        raise ValueError("is not an encrypted resource") from None
    if resource.to_json() != value:  # the simulator's exact form, nothing added
        raise ValueError("is not an encrypted resource in canonical JSON")
    return resource


#: The parser of every field the payment service reads; each raises ValueError.
FIELD_PARSERS: Mapping[str, Callable[[str], object]] = {
    "notify_id": _matching(_NOTIFY_ID, "a notification id"),
    "notify_time": _time,
    "notify_type": _one_of(frozenset({p.NOTIFY_TYPE_TRADE_STATUS_SYNC}), "a notification type"),
    "app_id": _matching(_ID, "an app id"),
    "seller_id": _matching(_ID, "a seller id"),
    "out_trade_no": _matching(_ID, "a pay order id"),
    "trade_no": _matching(_ID, "a channel trade number"),
    "trade_status": _one_of(p.TRADE_STATUSES, "a trade status"),
    "total_amount": _amount,
    "gmt_payment": _time,
    "gmt_close": _time,
    "buyer_logon_id": _resource,
    "sign_type": _one_of(frozenset({SIGN_TYPE}), "a supported sign type"),
}


def parse_field(key: str, value: str) -> object:
    """``value`` parsed as field ``key``; NotificationFieldError if it is not
    exactly in that field's form."""
    return _checked(key, FIELD_PARSERS[key], value)


@dataclass(frozen=True)
class NotificationSchema:
    """What one channel's notifications carry."""

    #: notify_type -> the fields every notification of that type carries.
    required: Mapping[str, frozenset[str]]
    #: trade_status -> the fields it adds (gmt_payment for a payment).
    by_status: Mapping[str, frozenset[str]]


_ALWAYS = frozenset(
    {
        "notify_id",
        "notify_time",
        "notify_type",
        "app_id",
        "seller_id",
        "trade_no",
        "out_trade_no",
        "trade_status",
        "total_amount",
        "sign_type",
        "sign",
    }
)
_PAID = frozenset({"gmt_payment"})

#: Alipay's trade_status_sync. gmt_close is parsed when sent, never required:
#: a TRADE_CLOSED is confirmed by a query before anything is closed.
ALIPAY_NOTIFICATION = NotificationSchema(
    required={p.NOTIFY_TYPE_TRADE_STATUS_SYNC: _ALWAYS},
    by_status={p.TRADE_SUCCESS: _PAID, p.TRADE_FINISHED: _PAID, p.TRADE_CLOSED: frozenset()},
)


@dataclass(frozen=True)
class NotificationFields:
    """A notification's fields, each parsed strictly."""

    notify_id: str
    notify_time_ms: int
    notify_type: str
    app_id: str
    seller_id: str
    out_trade_no: str
    trade_no: str
    trade_status: str
    #: Minor units.
    total_amount: int
    gmt_payment_ms: int | None
    gmt_close_ms: int | None
    #: Still encrypted: whoever holds the channel's key decrypts it.
    buyer_logon_id: EncryptedResource | None


def _checked(key: str, parse: Callable[[str], T], value: str) -> T:
    try:
        return parse(value)
    except ValueError as error:
        raise NotificationFieldError(key, str(error), value) from None


def _status_reason(status: str, schema: NotificationSchema) -> str:
    if status in p.TRADE_STATUSES:
        return "is not final: a notification carries " + ", ".join(sorted(schema.by_status))
    return "is not a trade status"


def parse_notification(
    params: Mapping[str, str], schema: NotificationSchema = ALIPAY_NOTIFICATION
) -> NotificationFields:
    """Every field the service reads, parsed strictly; the required ones must
    be there. An empty value counts as absent (it is not signed)."""
    notify_type = params.get("notify_type", "")
    if notify_type not in schema.required:
        reason = "is required" if not notify_type else "is not a notification type we handle"
        raise NotificationFieldError("notify_type", reason, notify_type or None)
    status = params.get("trade_status", "")
    if status and status not in schema.by_status:
        raise NotificationFieldError("trade_status", _status_reason(status, schema), status)
    needed = schema.required[notify_type] | schema.by_status.get(status, frozenset())
    for key in sorted(needed):
        if params.get(key, "") == "":
            raise NotificationFieldError(
                key, f"is required in a {status or notify_type} notification"
            )
    for key, value in params.items():  # every known field, read below or not
        if key in FIELD_PARSERS and value != "":
            parse_field(key, value)

    def optional_time(key: str) -> int | None:
        value = params.get(key, "")
        return _checked(key, _time, value) if value else None

    out_trade_no = params["out_trade_no"]
    resource = None
    if params.get("buyer_logon_id", ""):
        resource = _checked("buyer_logon_id", _resource, params["buyer_logon_id"])
        if resource.associated_data != out_trade_no:
            raise NotificationFieldError("buyer_logon_id", "is bound to another trade")
    return NotificationFields(
        notify_id=params["notify_id"],
        notify_time_ms=_checked("notify_time", _time, params["notify_time"]),
        notify_type=notify_type,
        app_id=params["app_id"],
        seller_id=params["seller_id"],
        out_trade_no=out_trade_no,
        trade_no=params["trade_no"],
        trade_status=status,
        total_amount=_checked("total_amount", _amount, params["total_amount"]),
        gmt_payment_ms=optional_time("gmt_payment"),
        gmt_close_ms=optional_time("gmt_close"),
        buyer_logon_id=resource,
    )
