"""Running ``atx tc`` as real processes on a shared store (Redis, MariaDB,
PostgreSQL) for the cluster and crash-recovery tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from atx.tc.store.base import LockFilter, create_store
from atx.testing import ManagedProcess, free_port

__all__ = ["FAST_FLAGS", "TCStarter", "locks_left", "shared_store_url", "start_tc"]


#: Short intervals so that retries, leases and takeovers happen within seconds.
FAST_FLAGS = [
    "--job-interval-ms",
    "100",
    "--branch-timeout-ms",
    "2000",
    "--retry-backoff-ms",
    "100",
    "--retry-backoff-max-ms",
    "300",
    "--heartbeat-interval-ms",
    "1000",
    "--job-lock-ttl-ms",
    "1500",
]

TCStarter = Callable[..., ManagedProcess]


@pytest.fixture(params=["redis", "mariadb", "postgres"])
def shared_store_url(request: pytest.FixtureRequest) -> str:
    """A fresh Redis prefix, MariaDB or PostgreSQL database that several TC nodes share."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def start_tc(start_server: Callable[..., ManagedProcess]) -> Iterator[TCStarter]:
    """``start_tc(store_url, node_id)``: one ``atx tc`` process, SERVING."""

    def start(store_url: str, node_id: str) -> ManagedProcess:
        port = free_port()
        args = ["tc", "--port", str(port), "--store", store_url, "--node-id", node_id]
        return start_server([*args, *FAST_FLAGS], port=port, timeout=60.0)

    yield start


def locks_left(store_url: str) -> int:
    """How many row locks the shared store holds, read directly."""
    store = create_store(store_url)
    try:
        return store.list_locks(LockFilter(), 1, "").total
    finally:
        store.close()
