"""pytest fixtures for testing your own services against a real coordinator.

Enable with ``pytest_plugins = ["atx.tc.pytest_plugin"]`` in your conftest.py:

    def test_order(atx_tc):
        rm.configure(tc_addresses=[atx_tc.address])
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from atx.tc.testing import InProcessTC, test_config

__all__ = ["atx_tc"]


@pytest.fixture
def atx_tc(tmp_path: Path) -> Iterator[InProcessTC]:
    """A TC on a free port with a SQLite store in the test's tmp_path, stopped after."""
    with InProcessTC(test_config(tmp_path)) as tc:
        yield tc
