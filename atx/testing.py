"""Helpers for tests: free ports, and real servers started as processes.

They ship with the package so that users can test their own services
against a real coordinator without standing up the world by hand.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["ManagedProcess", "free_port", "start_process", "wait_for_serving", "wait_until"]

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_serving(address: str, timeout: float = 20.0, service: str = "") -> None:
    """Block until the gRPC health check at ``address`` answers SERVING."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last_error = f"status {reply.status}"
            except grpc.RpcError as error:
                last_error = f"{error.code().name}"  # type: ignore[attr-defined]
            time.sleep(0.05)
    raise TimeoutError(f"{address} was not SERVING after {timeout:.0f} s ({last_error})")


class ManagedProcess:
    """A child process serving gRPC on ``port``; its output goes to ``log_path``."""

    def __init__(self, argv: Sequence[str], port: int, env: Mapping[str, str] | None = None):
        self.argv = list(argv)
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.env = {**os.environ, **(env or {})}
        handle, name = tempfile.mkstemp(prefix="atx-proc-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0, health_service: str = "") -> ManagedProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_serving(self.address, timeout, health_service)
        except TimeoutError as error:
            self.kill()
            raise TimeoutError(f"{error}\n--- output of {self.argv}:\n{self.output()}") from None
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """``kill -9``: no cleanup, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; returns the exit code (SIGKILL after ``timeout``)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def restart(self, timeout: float = 20.0) -> ManagedProcess:
        self.kill()
        return self.start(timeout)


def start_process(
    args: Sequence[str],
    port: int,
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
    health_service: str = "",
) -> ManagedProcess:
    """Run ``python -m atx.cli <args>`` (or a full argv starting with an
    executable path) and wait until its health check says SERVING."""
    argv = list(args)
    if not argv or not (argv[0].endswith("python") or os.path.isabs(argv[0])):
        argv = [sys.executable, "-m", "atx.cli", *argv]
    return ManagedProcess(argv, port, env).start(timeout, health_service)


def wait_until(
    predicate: Callable[[], T], timeout: float = 60.0, what: str = "", interval: float = 0.05
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Raises AssertionError naming ``what`` after ``timeout`` seconds (generous
    by default: tests share a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(interval)
