"""Errors of the shop services, each with a stable code."""

from __future__ import annotations

import grpc

from atx.errors import AtxError, UnavailableError, UnknownJobError

__all__ = [
    "ChainUnavailableError",
    "InjectedFaultError",
    "InvalidStateError",
    "NotificationRejectedError",
    "SettlementInProgressError",
    "ShopError",
    "SoldOutError",
    "SubmitTokenError",
    "UnknownJobError",
]


class ShopError(AtxError):
    code = "SHOP_ERROR"
    grpc_code = grpc.StatusCode.INTERNAL


class SoldOutError(ShopError):
    """Not enough stock for the requested quantity."""

    code = "SHOP_SOLD_OUT"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, collectible_id: str, quantity: int) -> None:
        super().__init__(
            f"collectible {collectible_id} is sold out (wanted {quantity})",
            collectible_id=collectible_id,
            quantity=quantity,
        )


class InvalidStateError(ShopError):
    """The entity is not in a state that allows the action."""

    code = "SHOP_INVALID_STATE"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, entity: str, key: str, state: str, action: str) -> None:
        super().__init__(
            f"{entity} {key} is {state}: cannot {action}",
            entity=entity,
            key=key,
            state=state,
            action=action,
        )


class ChainUnavailableError(UnavailableError):
    """The simulated chain platform is down."""

    code = "SHOP_CHAIN_UNAVAILABLE"
    grpc_code = grpc.StatusCode.UNAVAILABLE
    retryable = True


class InjectedFaultError(ShopError):
    """A test-only fault injected through ATX_FAULT_* environment variables."""

    code = "SHOP_INJECTED_FAULT"
    grpc_code = grpc.StatusCode.INTERNAL


class SettlementInProgressError(ShopError):
    """Another global transaction is settling this pay order right now."""

    code = "SHOP_SETTLEMENT_IN_PROGRESS"
    grpc_code = grpc.StatusCode.ABORTED
    retryable = True

    def __init__(self, pay_order_id: str, xid: str, status: str) -> None:
        super().__init__(
            f"pay order {pay_order_id} is being settled by {xid} ({status}); retry later",
            pay_order_id=pay_order_id,
            xid=xid,
            status=status,
        )


class SubmitTokenError(ShopError):
    """A submission token is unknown, in use, or reused with other parameters."""

    code = "SHOP_SUBMIT_TOKEN"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class NotificationRejectedError(ShopError):
    """A channel notification failed verification (signature, amount, app id)."""

    code = "SHOP_NOTIFICATION_REJECTED"
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
