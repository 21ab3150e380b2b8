"""Run ``atx tc`` with tc.admin's AdminServicer (until tc/server.py wires it).

Usage: ``python -m tests.tc.admin.serve_tc --port P --store URL ...``
"""

from __future__ import annotations

import sys
from typing import Any

import tc.server
from atx.cli import main
from tc.admin import AdminServicer


def _full_admin(coordinator: Any) -> AdminServicer:
    return AdminServicer(coordinator.store, coordinator)


if tc.server.AdminServicer is not AdminServicer:  # the lead may have wired it already
    tc.server.AdminServicer = _full_admin  # type: ignore[assignment,misc]

if __name__ == "__main__":
    sys.exit(main(["tc", *sys.argv[1:]]))
