"""`atx demo` runs the whole shop from the installed package and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_atx_demo_exits_zero(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "atx.cli", "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    assert "1. a normal purchase" in out
    assert "2. a sold-out collectible" in out
    assert "3. a purchase while the chain is down" in out
    assert "all three purchases ended as expected" in out
    assert "Rollbacked" in out and "pay_success" in out
    assert "SHOP_SOLD_OUT" in out
    assert "TC metrics (http://127.0.0.1:" in out  # the TC's endpoint is on in the demo
