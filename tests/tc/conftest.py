"""An in-process TC on a free port (SQLite in the test's tmp dir), plus stubs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from atx.tc.config import TCConfig
from atx.tc.server import TCServer
from atx.tc.testing import InProcessTC, test_config
from atx.v1 import admin_pb2_grpc
from atx.v1 import resource_manager_pb2_grpc as rm_grpc
from atx.v1 import transaction_manager_pb2_grpc as tm_grpc


@dataclass
class RunningTC:
    address: str
    config: TCConfig
    server: TCServer
    loop: asyncio.AbstractEventLoop
    channel: grpc.Channel
    tm: tm_grpc.TransactionManagerServiceStub
    rm: rm_grpc.ResourceManagerServiceStub
    admin: admin_pb2_grpc.AdminServiceStub
    process: InProcessTC

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the TC's loop (e.g. a coordinator method)."""
        return self.process.call(coro)


def fast_config(tmp_path: Path, **overrides: Any) -> TCConfig:
    overrides.setdefault("store_url", f"sqlite:///{tmp_path}/tc-{time.monotonic_ns()}.db")
    return test_config(tmp_path, **overrides)


TCFactory = Callable[..., RunningTC]


@pytest.fixture
def tc_factory(tmp_path: Path) -> Iterator[TCFactory]:
    started: list[RunningTC] = []

    def start(**overrides: Any) -> RunningTC:
        process = InProcessTC(fast_config(tmp_path, **overrides)).start()
        channel = grpc.insecure_channel(process.address)
        running = RunningTC(
            process.address,
            process.config,
            process.server,
            process.loop,
            channel,
            tm_grpc.TransactionManagerServiceStub(channel),
            rm_grpc.ResourceManagerServiceStub(channel),
            admin_pb2_grpc.AdminServiceStub(channel),
            process,
        )
        started.append(running)
        return running

    yield start
    for running in started:
        running.channel.close()
        running.process.stop()


@pytest.fixture
def tc(tc_factory: TCFactory) -> RunningTC:
    return tc_factory()
