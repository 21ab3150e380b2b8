"""Wire conventions of the Alipay-like channel: statuses, answer codes,
amounts and timestamps. Both the simulator and the merchant client use them,
so a real adapter later changes one module.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from atx.errors import InvalidArgumentError

__all__ = [
    "ALIPAY_NOTIFY_SCHEDULE_MS",
    "CODE_BUSINESS_FAILED",
    "CODE_INVALID_SIGNATURE",
    "CODE_SUCCESS",
    "DEFAULT_APP_ID",
    "DEFAULT_SELLER_ID",
    "NOTIFY_ACK",
    "PAID_STATUSES",
    "SUB_CODE_INVALID_SIGNATURE",
    "SUB_CODE_TRADE_NOT_EXIST",
    "SUB_CODE_TRADE_STATUS_ERROR",
    "TRADE_CLOSED",
    "TRADE_FINISHED",
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
#: Only these mean paid (Alipay).
PAID_STATUSES = frozenset({TRADE_SUCCESS, TRADE_FINISHED})

CODE_SUCCESS = "10000"
CODE_BUSINESS_FAILED = "40004"
CODE_INVALID_SIGNATURE = "40002"
SUB_CODE_TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
SUB_CODE_TRADE_STATUS_ERROR = "ACQ.TRADE_STATUS_ERROR"
SUB_CODE_INVALID_SIGNATURE = "isv.invalid-signature"

#: The exact answer that acknowledges a notification.
NOTIFY_ACK = "success"

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_CENT = Decimal("0.01")


def format_amount(minor: int) -> str:
    """Minor units to the channel's yuan string: 8888 -> "88.88"."""
    return str((Decimal(minor) / 100).quantize(_CENT))


def parse_amount(value: str) -> int:
    """The channel's yuan string to minor units; refuses anything else."""
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise InvalidArgumentError(f"not an amount: {value!r}", amount=value) from None
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(_CENT):
        raise InvalidArgumentError(f"not an amount: {value!r}", amount=value)
    return int((amount * 100).to_integral_value(ROUND_HALF_UP))


def format_time(ms: int) -> str:
    """Epoch milliseconds to "yyyy-MM-dd HH:mm:ss.SSS" (UTC).

    Alipay uses whole seconds; the milliseconds keep compressed test
    deadlines exact and parse back either way.
    """
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return f"{moment.strftime(_TIME_FORMAT)}.{ms % 1000:03d}"


def parse_time(value: str) -> int:
    """ "yyyy-MM-dd HH:mm:ss[.SSS]" (UTC) to epoch milliseconds."""
    head, _, fraction = value.partition(".")
    try:
        moment = datetime.strptime(head, _TIME_FORMAT).replace(tzinfo=UTC)
        millis = int(fraction.ljust(3, "0")[:3]) if fraction else 0
    except ValueError:
        raise InvalidArgumentError(f"not a timestamp: {value!r}", timestamp=value) from None
    return int(moment.timestamp()) * 1000 + millis


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
