"""Wire conventions of the Alipay-like channel: statuses, answer codes,
amounts and timestamps. Both the simulator and the merchant client use them,
so a real adapter later changes one module.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from atx.errors import InvalidArgumentError

__all__ = [
    "ALIPAY_NOTIFY_SCHEDULE_MS",
    "CODE_BUSINESS_FAILED",
    "CODE_INVALID_ARGUMENT",
    "CODE_INVALID_SIGNATURE",
    "CODE_MISSING_ARGUMENT",
    "CODE_SUCCESS",
    "DEFAULT_APP_ID",
    "DEFAULT_SELLER_ID",
    "NOTIFIED_STATUSES",
    "NOTIFY_ACK",
    "NOTIFY_TYPE_TRADE_STATUS_SYNC",
    "PAID_STATUSES",
    "SUB_CODE_INVALID_APP_ID",
    "SUB_CODE_INVALID_SIGNATURE",
    "SUB_CODE_MISSING_APP_ID",
    "SUB_CODE_TRADE_NOT_EXIST",
    "SUB_CODE_TRADE_STATUS_ERROR",
    "TRADE_CLOSED",
    "TRADE_FINISHED",
    "TRADE_STATUSES",
    "TRADE_SUCCESS",
    "WAIT_BUYER_PAY",
    "channel_expire_ms",
    "format_amount",
    "format_time",
    "parse_amount",
    "parse_time",
]

WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
TRADE_SUCCESS = "TRADE_SUCCESS"
TRADE_FINISHED = "TRADE_FINISHED"
TRADE_CLOSED = "TRADE_CLOSED"
#: Every status an Alipay trade can have.
TRADE_STATUSES = frozenset({WAIT_BUYER_PAY, TRADE_SUCCESS, TRADE_FINISHED, TRADE_CLOSED})
#: Only these mean paid (Alipay).
PAID_STATUSES = frozenset({TRADE_SUCCESS, TRADE_FINISHED})
#: The statuses a notification may carry: final ones. WAIT_BUYER_PAY is sent
#: only to merchants who subscribe to it, which we do not (docs/payment.md).
NOTIFIED_STATUSES = frozenset({TRADE_SUCCESS, TRADE_FINISHED, TRADE_CLOSED})
#: The notification type of trade status changes (Alipay's only one for trades).
NOTIFY_TYPE_TRADE_STATUS_SYNC = "trade_status_sync"

CODE_SUCCESS = "10000"
CODE_BUSINESS_FAILED = "40004"
CODE_INVALID_SIGNATURE = "40002"
#: Alipay's public-parameter answers: 40001 missing, 40002 invalid.
CODE_MISSING_ARGUMENT = "40001"
CODE_INVALID_ARGUMENT = "40002"
SUB_CODE_MISSING_APP_ID = "isv.missing-app-id"
SUB_CODE_INVALID_APP_ID = "isv.invalid-app-id"
SUB_CODE_TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
SUB_CODE_TRADE_STATUS_ERROR = "ACQ.TRADE_STATUS_ERROR"
SUB_CODE_INVALID_SIGNATURE = "isv.invalid-signature"

#: The exact answer that acknowledges a notification.
NOTIFY_ACK = "success"

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# ASCII digits only ("\d" takes any Unicode digit); nothing before or after.
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{3})?")
_AMOUNT = re.compile(r"(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,2})?")
_CENT = Decimal("0.01")


def format_amount(minor: int) -> str:
    """Minor units to the channel's yuan string: 8888 -> "88.88"."""
    return str((Decimal(minor) / 100).quantize(_CENT))


def parse_amount(value: str) -> int:
    """The channel's yuan string ("88.88", "1", "0.5") to minor units.

    Plain decimal digits only: no sign, exponent, blanks, underscores or
    leading zeros, which ``Decimal`` alone would accept.
    """
    if not _AMOUNT.fullmatch(value):
        raise InvalidArgumentError(f"not an amount: {value!r}", amount=value)
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise InvalidArgumentError(f"not an amount: {value!r}", amount=value) from None
    return int((amount * 100).to_integral_value(ROUND_HALF_UP))


def format_time(ms: int) -> str:
    """Epoch milliseconds to "yyyy-MM-dd HH:mm:ss.SSS" (UTC).

    Alipay uses whole seconds; the milliseconds keep compressed test
    deadlines exact and parse back either way.
    """
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return f"{moment.strftime(_TIME_FORMAT)}.{ms % 1000:03d}"


def parse_time(value: str) -> int:
    """ "yyyy-MM-dd HH:mm:ss" or "yyyy-MM-dd HH:mm:ss.SSS" (UTC) to epoch
    milliseconds; anything else (other digits, a suffix) is refused."""
    if not _TIME.fullmatch(value):
        raise InvalidArgumentError(f"not a timestamp: {value!r}", timestamp=value)
    head, _, fraction = value.partition(".")
    try:
        moment = datetime.strptime(head, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:  # e.g. month 13
        raise InvalidArgumentError(f"not a timestamp: {value!r}", timestamp=value) from None
    return int(moment.timestamp()) * 1000 + (int(fraction) if fraction else 0)


#: The simulator's and the client's default merchant identity.
DEFAULT_APP_ID = "2021000000000001"
DEFAULT_SELLER_ID = "2088000000000001"
#: Alipay's retry intervals after an unacknowledged notification (8 tries in 25 h).
ALIPAY_NOTIFY_SCHEDULE_MS = (
    4 * 60_000,
    10 * 60_000,
    10 * 60_000,
    3_600_000,
    2 * 3_600_000,
    6 * 3_600_000,
    15 * 3_600_000,
)


def channel_expire_ms(created_ms: int, our_expire_ms: int, margin_ms: int = 60_000) -> int:
    """The deadline to give the channel: earlier than ours, so that it
    expires first (by ``margin_ms``, or a tenth of the lifetime if shorter)."""
    lifetime = max(our_expire_ms - created_ms, 0)
    return our_expire_ms - min(margin_ms, lifetime // 10)
