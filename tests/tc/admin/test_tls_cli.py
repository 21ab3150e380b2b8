"""``atx admin`` against a TC that serves TLS only: ``--tls-ca`` (or
$ATX_TC_TLS_CA) makes it work; without it the failure is one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from atx.tc.admin.client import AdminClient
from atx.testing import free_port, self_signed_cert, start_process
from tests.tc.admin.conftest import ADMIN_TOKEN


@pytest.fixture
def tls_tc(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    cert, key = self_signed_cert(tmp_path)
    port = free_port()
    argv = ["tc", "--port", str(port), "--store", f"sqlite:///{tmp_path}/tc.db"]
    argv += ["--admin-token", ADMIN_TOKEN, "--tls-cert", str(cert), "--tls-key", str(key)]
    process = start_process(argv, port, timeout=30, tls_ca=str(cert))
    try:
        yield process.address, cert
    finally:
        process.kill()


def atx_admin(address: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    argv = [sys.executable, "-m", "atx.cli", "admin", "--tc", address, "--admin-token", ADMIN_TOKEN]
    full_env = {"PATH": "/usr/bin:/bin", "COLUMNS": "200", **(env or {})}
    done = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60, env=full_env)
    return done.returncode, done.stdout, done.stderr


def test_globals_over_tls(tls_tc: tuple[str, Path]) -> None:
    address, ca = tls_tc
    code, out, err = atx_admin(address, "globals", "--json", "--tls-ca", str(ca))
    assert code == 0, err
    assert json.loads(out)["sessions"] == []
    code, out, err = atx_admin(address, "globals", "--json", env={"ATX_TC_TLS_CA": str(ca)})
    assert code == 0, err

    code, out, err = atx_admin(address, "globals", "--json")
    assert code == 1 and out == ""
    error = json.loads(err)["error"]
    assert error["code"] == "UNAVAILABLE"
    assert error["message"].startswith(f"cannot reach {address} (plaintext)")
    assert error["hint"].endswith("if it serves TLS, pass --tls-ca PATH")
    code, out, err = atx_admin(address, "globals")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 2, err
    assert lines[0].startswith(f"error: [UNAVAILABLE] cannot reach {address} (plaintext)")
    assert lines[1].startswith("hint: ") and lines[1].endswith("pass --tls-ca PATH")


def test_bad_ca_paths_fail_clearly(tls_tc: tuple[str, Path], tmp_path: Path) -> None:
    address, _ = tls_tc
    missing = tmp_path / "missing.pem"
    code, _, err = atx_admin(address, "globals", "--tls-ca", str(missing))
    # A bad flag value: a usage error, exit 2.
    assert code == 2 and err.startswith("error: [INVALID_ARGUMENT]") and "missing.pem" in err
    (tmp_path / "other").mkdir()
    wrong, _ = self_signed_cert(tmp_path / "other")
    code, _, err = atx_admin(address, "globals", "--tls-ca", str(wrong))
    # gRPC core may log the failed handshake first (it reads GRPC_VERBOSITY at import).
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 1 and line.startswith(f"error: [UNAVAILABLE] cannot reach {address} (TLS)")
    assert "CERTIFICATE_VERIFY_FAILED" in line


def test_admin_client_and_console_take_tls_ca(tls_tc: tuple[str, Path]) -> None:
    from atx.tc.admin.console import ConsoleServer

    address, ca = tls_tc
    with AdminClient(address, ADMIN_TOKEN, tls_ca=str(ca)) as client:
        assert client.list_globals(_request()).total_size == 0
    console = ConsoleServer(address, ADMIN_TOKEN, "127.0.0.1", 0, tls_ca=str(ca))
    try:
        assert console.client.list_globals(_request(), ADMIN_TOKEN).total_size == 0
    finally:
        console.close()


def _request() -> object:
    from atx.v1 import admin_pb2

    return admin_pb2.ListGlobalSessionsRequest()
