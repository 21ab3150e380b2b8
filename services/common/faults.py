"""Test-only fault injection, switched by environment variables.

``ATX_FAULT_<POINT>=1`` fails every call at that point;
``ATX_FAULT_<POINT>=file:/path`` fails while that file exists, so a test can
switch the fault off without restarting the process.

Points: ``reserve_stock``, ``release_reservation``, ``convert_reservation``
(before the collectible's writes), ``convert_reservation_after`` (after its
local commit: the branch exists and must be undone), ``create_order``,
``mark_paid``, ``pay_success`` (in the payment service, after its own branch).
"""

from __future__ import annotations

import os

from atx.shop.common.errors import InjectedFaultError

__all__ = ["check_fault"]


def check_fault(point: str) -> None:
    """Raise InjectedFaultError when the fault ``point`` is switched on."""
    value = os.environ.get(f"ATX_FAULT_{point.upper()}", "")
    if not value or value == "0":
        return
    if value.startswith("file:") and not os.path.exists(value[len("file:") :]):
        return
    raise InjectedFaultError(f"injected fault at {point}", point=point)
