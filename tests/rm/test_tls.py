"""rm against a TC that serves TLS only: TM/RM calls and the Attach stream
trust the CA given by ``configure(tls_ca=...)``; a wrong CA fails fast and typed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import atx.rm as rm
from atx.errors import UnavailableError
from atx.status import GlobalStatus
from atx.testing import ManagedProcess, free_port, self_signed_cert, start_process
from tests.rm.conftest import Database, wait_final, wait_until


class Boom(Exception):
    pass


@pytest.fixture
def tls_tc(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A TC process serving TLS only: (address, CA bundle = its certificate)."""
    (tmp_path / "tls").mkdir()
    cert, key = self_signed_cert(tmp_path / "tls")
    port = free_port()
    argv = ["tc", "--port", str(port), "--store", f"sqlite:///{tmp_path}/tc.db"]
    argv += ["--tls-cert", str(cert), "--tls-key", str(key), "--heartbeat-interval-ms", "1000"]
    process: ManagedProcess = start_process(argv, port, timeout=30, tls_ca=str(cert))
    try:
        yield process.address, cert
    finally:
        rm.shutdown()
        process.kill()


def _configure(address: str, tls_ca: str) -> None:
    rm.configure(
        tc_addresses=[address], application_id="rm-tls", client_id=uuid.uuid4().hex, tls_ca=tls_ca
    )


def test_commit_and_rollback_over_tls(tls_tc: tuple[str, Path], tmp_path: Path) -> None:
    address, ca = tls_tc
    _configure(address, str(ca))
    db = Database("sqlite", str(tmp_path / "db.sqlite"), f"sqlite-{uuid.uuid4().hex[:8]}")
    db.setup_accounts(2)
    conn = db.connect()
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(20), "Attach over TLS"
    tc = rm.get_tc_client()

    with rm.global_transaction("pay") as tx:
        xid = tx.xid or ""
        cur = conn.cursor()
        cur.execute(db.q("UPDATE account SET balance = balance - %s WHERE id = %s"), (30, 1))
        cur.execute(db.q("UPDATE account SET balance = balance + %s WHERE id = %s"), (30, 2))
        conn.commit()
    assert wait_final(tc, xid) in (GlobalStatus.COMMITTED, GlobalStatus.FINISHED)
    assert db.accounts() == [(1, 70, "a1"), (2, 130, "a2")]
    wait_until(lambda: db.undo_rows() == 0, what="undo rows deleted after commit")

    # Phase two of a rollback travels down the TLS Attach stream: the row comes back.
    with pytest.raises(Boom), rm.global_transaction("undo") as tx:
        xid = tx.xid or ""
        conn.cursor().execute(db.q("UPDATE account SET balance = %s WHERE id = %s"), (0, 1))
        conn.commit()
        assert db.accounts()[0] == (1, 0, "a1")
        raise Boom()
    assert wait_final(tc, xid) in (GlobalStatus.ROLLBACKED, GlobalStatus.FINISHED)
    assert db.accounts() == [(1, 70, "a1"), (2, 130, "a2")]
    wait_until(lambda: db.undo_rows() == 0, what="undo rows deleted after rollback")
    conn.close()


def test_wrong_ca_or_plaintext_fails_typed(tls_tc: tuple[str, Path], tmp_path: Path) -> None:
    address, _ = tls_tc
    (tmp_path / "other").mkdir()
    wrong, _ = self_signed_cert(tmp_path / "other")
    for tls_ca, mode in ((str(wrong), "TLS"), ("", "plaintext")):
        _configure(address, tls_ca)
        with pytest.raises(UnavailableError) as failed, rm.global_transaction("nope"):
            pass
        message = str(failed.value)
        assert address in message and f"({mode})" in message, message
        channel = rm.ensure_runtime()
        assert channel is None or not channel.wait_connected(0.5)


def test_unreadable_ca_is_rejected_by_configure(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match=r"missing\.pem"):
        rm.configure(tc_addresses=["127.0.0.1:1"], tls_ca=str(missing))
