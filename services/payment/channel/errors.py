"""Errors of the payment-channel layer: the channel adapter and its guards.

Each has a stable code. ``ChannelUnavailableError`` is the only retryable
one: the channel (or the network to it) failed, and the breaker counts it.
"""

from __future__ import annotations

import grpc

from atx.errors import (
    AtxError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
)
from atx.shop.common.errors import UnknownJobError  # the job runner's, shared with orders

__all__ = [
    "AmbiguousMessageError",
    "AmountMismatchError",
    "AppIdRejectedError",
    "ChannelRejectedError",
    "ChannelUnavailableError",
    "DecryptionError",
    "DuplicateSubmissionInProgressError",
    "IdempotencyMismatchError",
    "NotificationFieldError",
    "SignatureError",
    "StaleTimestampError",
    "SubmissionTokenNotFoundError",
    "TradeNotFoundError",
    "TradeStatusError",
    "UnknownAppError",
    "UnknownChannelError",
    "UnknownJobError",
]


class ChannelUnavailableError(UnavailableError):
    """The channel did not answer (or answered UNAVAILABLE); try again later."""

    code = "CHANNEL_UNAVAILABLE"

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(f"payment channel {channel!r} is unavailable: {reason}", channel=channel)


class SignatureError(UnauthenticatedError):
    """A signature is missing or does not verify (a forged or tampered message)."""

    code = "CHANNEL_SIGNATURE_INVALID"

    def __init__(self, channel: str, what: str) -> None:
        super().__init__(f"bad signature on {what} of channel {channel!r}", channel=channel)


class ChannelRejectedError(AtxError):
    """The channel answered, and refused the request (its business error)."""

    code = "CHANNEL_REJECTED"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, channel: str, sub_code: str, sub_msg: str = "") -> None:
        super().__init__(
            f"payment channel {channel!r} refused the request: {sub_code} {sub_msg}".rstrip(),
            channel=channel,
            sub_code=sub_code,
        )

    @property
    def sub_code(self) -> str:
        return self.details.get("sub_code", "")


class AppIdRejectedError(ChannelRejectedError):
    """The channel does not know our app_id (isv.missing-app-id or
    isv.invalid-app-id): every request, QueryTrade too, carries the merchant's
    app id, and it must be the one the channel was set up with."""

    code = "CHANNEL_APP_ID_REJECTED"

    def __init__(self, channel: str, sub_code: str, app_id: str, sub_msg: str = "") -> None:
        AtxError.__init__(
            self,
            f"payment channel {channel!r} refused our app_id {app_id!r} ({sub_code}"
            f"{': ' + sub_msg if sub_msg else ''}); the payment service and the channel "
            "must be set up with the same app id",
            channel=channel,
            sub_code=sub_code,
            app_id=app_id,
        )


class TradeNotFoundError(NotFoundError):
    """The channel knows no trade with this out_trade_no (ACQ.TRADE_NOT_EXIST)."""

    code = "CHANNEL_TRADE_NOT_FOUND"

    def __init__(self, channel: str, out_trade_no: str) -> None:
        super().__init__(
            f"payment channel {channel!r} has no trade {out_trade_no!r}",
            channel=channel,
            out_trade_no=out_trade_no,
        )


class TradeStatusError(ChannelRejectedError):
    """The trade's status does not allow the action (ACQ.TRADE_STATUS_ERROR),
    e.g. closing a trade that was paid."""

    code = "CHANNEL_TRADE_STATUS_ERROR"


class AmountMismatchError(InvalidArgumentError):
    """A notification's total_amount differs from the pay order's amount."""

    code = "CHANNEL_AMOUNT_MISMATCH"

    def __init__(self, out_trade_no: str, expected: int, actual: str) -> None:
        super().__init__(
            f"notification for {out_trade_no!r} says total_amount={actual!r}, "
            f"the pay order's amount is {expected} (minor units)",
            out_trade_no=out_trade_no,
            expected=expected,
            actual=actual,
        )


class AmbiguousMessageError(InvalidArgumentError):
    """A key or value would move a field boundary in the signed ``k=v&k=v``
    string: the same signature would cover another message."""

    code = "CHANNEL_MESSAGE_AMBIGUOUS"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(
            f"field {_shown(field)} {reason}: the signed string would be ambiguous",
            field=_shown(field),
            reason=reason,
        )


class NotificationFieldError(InvalidArgumentError):
    """A signed field of a notification is missing, or not exactly in the
    form the channel sends (a suffix, another format, an unknown value)."""

    code = "CHANNEL_NOTIFICATION_FIELD_INVALID"

    def __init__(self, field: str, reason: str, value: str | None = None) -> None:
        shown = "" if value is None else f" ({_shown(value)})"
        super().__init__(f"notification field {field}{shown} {reason}", field=field, reason=reason)


def _shown(text: str, limit: int = 80) -> str:
    """Attacker-supplied text for a message: quoted, escaped, cut short."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


class StaleTimestampError(InvalidArgumentError):
    """A timestamp outside the accepted window (a replay or a wrong clock)."""

    code = "CHANNEL_STALE_TIMESTAMP"

    def __init__(self, value: str, window_s: float) -> None:
        super().__init__(
            f"timestamp {value!r} is missing or more than {window_s:.0f} s away from now",
            timestamp=value,
        )


class UnknownAppError(PermissionDeniedError):
    """A notification names an app_id or seller_id that is not ours."""

    code = "CHANNEL_UNKNOWN_APP"

    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"notification {field}={value!r} is not ours", field=field, value=value)


class DecryptionError(InvalidArgumentError):
    """An AES-GCM resource does not decrypt (wrong key, tampered data or nonce)."""

    code = "CHANNEL_DECRYPTION_FAILED"

    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot decrypt the resource: {reason}")


class UnknownChannelError(NotFoundError):
    code = "CHANNEL_UNKNOWN"

    def __init__(self, channel: str) -> None:
        super().__init__(f"no payment channel named {channel!r}", channel=channel)


# --- submission tokens (Stripe Idempotency-Key semantics) ----------------------


class SubmissionTokenNotFoundError(NotFoundError):
    """The token was never issued, has expired, or belongs to another user."""

    code = "SUBMISSION_TOKEN_NOT_FOUND"

    def __init__(self, token: str) -> None:
        super().__init__(f"submission token {token!r} is unknown or expired", token=token)


class DuplicateSubmissionInProgressError(AtxError):
    """The same token is being processed by another request right now (HTTP 409)."""

    code = "SUBMISSION_IN_PROGRESS"
    grpc_code = grpc.StatusCode.ABORTED

    def __init__(self, token: str) -> None:
        super().__init__(
            f"a submission with token {token!r} is already in progress; "
            "this duplicate was refused, wait for the first one's result",
            token=token,
        )


class IdempotencyMismatchError(InvalidArgumentError):
    """The token was used before with different parameters."""

    code = "IDEMPOTENCY_MISMATCH"

    def __init__(self, token: str) -> None:
        super().__init__(
            f"submission token {token!r} was already used with different parameters",
            token=token,
        )
