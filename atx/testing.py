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

__all__ = [
    "ManagedProcess",
    "free_port",
    "self_signed_cert",
    "start_process",
    "wait_for_serving",
    "wait_until",
]

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_serving(
    address: str, timeout: float = 20.0, service: str = "", tls_ca: str = ""
) -> None:
    """Block until the gRPC health check at ``address`` answers SERVING
    (over TLS trusting the CA bundle ``tls_ca`` when set)."""
    from atx.grpc_channels import open_channel

    deadline = time.monotonic() + timeout
    last_error = "no answer"
    with open_channel(address, tls_ca=tls_ca) as channel:
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

    def __init__(
        self,
        argv: Sequence[str],
        port: int,
        env: Mapping[str, str] | None = None,
        tls_ca: str = "",
    ):
        self.argv = list(argv)
        self.tls_ca = tls_ca
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
            wait_for_serving(self.address, timeout, health_service, self.tls_ca)
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
    tls_ca: str = "",
) -> ManagedProcess:
    """Run ``python -m atx.cli <args>`` (or a full argv starting with an
    executable path) and wait until its health check says SERVING (a TLS
    server: pass the CA bundle that signed its certificate as ``tls_ca``)."""
    argv = list(args)
    if not argv or not (argv[0].endswith("python") or os.path.isabs(argv[0])):
        argv = [sys.executable, "-m", "atx.cli", *argv]
    return ManagedProcess(argv, port, env, tls_ca).start(timeout, health_service)


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


def self_signed_cert(directory: Path | str) -> tuple[Path, Path]:
    """Write a self-signed certificate for ``localhost`` and ``127.0.0.1`` (valid
    a day; it is its own CA) and its key into ``directory``: ``(cert, key)``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = Path(directory)
    cert_path, key_path = directory / "tc.crt", directory / "tc.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
