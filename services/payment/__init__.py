"""The payment service: pay orders, channels and their guards.

The channel adapter, the simulator and the guards live in
``services.payment.channel``; this package wires them into the service.
Its names load lazily: ``services.common`` and the channel package import
submodules of this package, and an eager import here would be circular.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["PaymentServicer", "PaymentSettings", "SuccessProcessor", "serve"]

_HOMES = {
    "PaymentServicer": "atx.shop.payment.service",
    "PaymentSettings": "atx.shop.payment.settings",
    "SuccessProcessor": "atx.shop.payment.processing",
    "serve": "atx.shop.payment.server",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
