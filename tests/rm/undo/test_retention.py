"""Undo-log retention on SQLite, MariaDB and PostgreSQL against a real TC: old placeholders go,
old undo rows go only when the TC says their global transaction is over."""

from __future__ import annotations

import argparse
import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import atx.rm as rm
from atx.dialect import Dialect
from atx.rm import cli
from atx.rm.errors import InvalidConfigurationError
from atx.rm.phase_two import PurgeResult, TCFinishedCheck, purge_undo_log
from atx.rm.resource import unregister_resource
from atx.rm.tc_client import TCClient
from atx.rm.undo.log import LOG_STATUS_GLOBAL_FINISHED, LOG_STATUS_NORMAL, UndoLogManager
from atx.status import GlobalStatus
from atx.testing import free_port, wait_until
from tests.rm.conftest import Database

OLD = dt.timedelta(days=8)
YOUNG = dt.timedelta(hours=1)
WEEK = dt.timedelta(days=7)
LONG_MS = 600_000  # a live transaction must not time out during the test


def _dialect(db: Database) -> Dialect:
    return {"mariadb": Dialect.MYSQL, "postgres": Dialect.POSTGRES}.get(db.kind, Dialect.SQLITE)


def _undo_table(db: Database) -> None:
    connection = db.raw()
    try:
        UndoLogManager(_dialect(db)).ensure_table(connection)
    finally:
        connection.close()


def _insert(db: Database, rows: list[tuple[str, int, int, dt.timedelta]]) -> None:
    """Insert (xid, branch_id, log_status, age) rows, back-dated as _now() would write them."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    params = [
        (branch, xid, "serializer=json", b"{}", status, str(now - age), str(now - age))
        for xid, branch, status, age in rows
    ]
    connection = db.raw()
    try:
        connection.cursor().executemany(
            db.q(
                "INSERT INTO undo_log (branch_id, xid, context, rollback_info, log_status,"
                " log_created, log_modified) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            ),
            params,
        )
        connection.commit()
    finally:
        connection.close()


def _rows(db: Database) -> set[tuple[str, int, int]]:
    return {
        (str(x), int(b), int(s))
        for x, b, s in db.query("SELECT xid, branch_id, log_status FROM undo_log")
    }


def _purge(db: Database, is_finished: Any, **kwargs: Any) -> PurgeResult:
    connection = db.raw()
    try:
        return purge_undo_log(connection, _dialect(db), WEEK, is_finished, **kwargs)
    finally:
        connection.close()


def _unseen_xid(tc_address: str) -> str:
    return f"{tc_address}:{900_000_000 + uuid.uuid4().int % 1_000_000}"


def test_old_placeholders_go_young_ones_stay(db: Database) -> None:
    _undo_table(db)
    _insert(db, [("h:1:1", 1, 1, OLD), ("h:1:2", 2, 1, YOUNG)])
    result = _purge(db, lambda xid: None)
    assert result == PurgeResult(placeholders_deleted=1)
    assert _rows(db) == {("h:1:2", 2, LOG_STATUS_GLOBAL_FINISHED)}


def test_old_rows_of_finished_transactions_go(db: Database, tc: TCClient, tc_address: str) -> None:
    _undo_table(db)
    committed = tc.begin("committed", LONG_MS)
    assert tc.commit(committed).is_final
    rolled_back = tc.begin("rolled-back", LONG_MS)
    assert tc.rollback(rolled_back).is_final
    unseen = _unseen_xid(tc_address)  # NotFound: the TC forgot it, it is over
    young = tc.begin("young", LONG_MS)
    assert tc.commit(young).is_final
    _insert(
        db,
        [
            (committed, 1, 0, OLD),
            (committed, 2, 0, OLD),
            (rolled_back, 3, 0, OLD),
            (unseen, 4, 0, OLD),
            (young, 5, 0, YOUNG),
        ],
    )
    result = _purge(db, TCFinishedCheck(tc))
    assert result == PurgeResult(normal_deleted=4)
    assert _rows(db) == {(young, 5, LOG_STATUS_NORMAL)}


def test_old_rows_of_live_transactions_stay(db: Database, tc: TCClient) -> None:
    _undo_table(db)
    live = tc.begin("live", LONG_MS)
    _insert(db, [(live, 1, 0, OLD)])
    result = _purge(db, TCFinishedCheck(tc))
    assert result == PurgeResult(normal_kept_live=1)
    assert _rows(db) == {(live, 1, LOG_STATUS_NORMAL)}
    tc.rollback(live)


def test_rows_of_a_failed_rollback_stay(db: Database, tc: TCClient) -> None:
    """RollbackFailed is final, but an operator can retry it: that needs the undo row."""
    db.setup_accounts(1)
    conn = db.connect()
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(10)
    xid = ""
    with pytest.raises(ZeroDivisionError), rm.global_transaction("dirty") as tx:
        xid = tx.xid or ""
        conn.cursor().execute(db.q("UPDATE account SET balance = %s WHERE id = %s"), (1, 1))
        conn.commit()
        db.run("UPDATE account SET balance = 555 WHERE id = 1")  # a dirty write
        _ = 1 / 0
    wait_until(lambda: tc.get_status(xid) == GlobalStatus.ROLLBACK_FAILED, what="RollbackFailed")
    conn.close()
    old = str(dt.datetime.now(dt.UTC).replace(tzinfo=None) - OLD)
    db.query("UPDATE undo_log SET log_created = %s", (old,))
    result = _purge(db, TCFinishedCheck(tc))
    assert result == PurgeResult(normal_kept_live=1)
    assert db.undo_rows() == 1


def test_unreachable_tc_keeps_rows(db: Database) -> None:
    _undo_table(db)
    _insert(db, [("h:1:1", 1, 0, OLD), ("h:1:2", 1, 0, OLD), ("h:1:3", 1, 1, OLD)])
    client = TCClient([f"127.0.0.1:{free_port()}"], timeout=5.0)
    try:
        check = TCFinishedCheck(client)
        result = _purge(db, check)
    finally:
        client.close()
    assert check.unreachable
    assert result == PurgeResult(placeholders_deleted=1, normal_kept_unknown=2)
    assert _rows(db) == {("h:1:1", 1, 0), ("h:1:2", 1, 0)}


def test_dry_run_changes_nothing(db: Database) -> None:
    _undo_table(db)
    _insert(db, [("h:1:1", 1, 1, OLD), ("h:1:2", 1, 0, OLD), ("h:1:3", 1, 0, OLD)])
    before = _rows(db)
    result = _purge(db, lambda xid: xid == "h:1:2", dry_run=True)
    assert result == PurgeResult(1, 1, 1, 0, dry_run=True)
    assert _rows(db) == before


def test_backlog_goes_in_batches(db: Database) -> None:
    _undo_table(db)
    placeholders = [(f"h:1:{i}", 1, 1, OLD) for i in range(1, 251)]
    branches = [("h:2:1", b, 0, OLD) for b in range(1, 151)]
    _insert(db, [*placeholders, *branches, ("h:3:1", 1, 1, YOUNG), ("h:4:1", 1, 0, OLD)])
    asked: list[str] = []

    def is_finished(xid: str) -> bool | None:
        asked.append(xid)
        return xid == "h:2:1"

    result = _purge(db, is_finished)
    assert result == PurgeResult(placeholders_deleted=250, normal_deleted=150, normal_kept_live=1)
    assert _rows(db) == {("h:3:1", 1, 1), ("h:4:1", 1, 0)}
    assert sorted(asked) == ["h:2:1", "h:4:1"]  # once per global transaction


def test_stop_ends_the_purge(db: Database) -> None:
    _undo_table(db)
    _insert(db, [("h:1:1", 1, 1, OLD)])
    stop = threading.Event()
    stop.set()
    assert _purge(db, lambda xid: None, stop=stop) == PurgeResult()
    assert db.undo_rows() == 1


def test_non_positive_age_is_refused(db: Database) -> None:
    _undo_table(db)
    connection = db.raw()
    try:
        with pytest.raises(InvalidConfigurationError):
            purge_undo_log(connection, _dialect(db), dt.timedelta(0), lambda xid: None)
    finally:
        connection.close()


# --- the channel's periodic job ---------------------------------------------------------


@pytest.fixture
def retention(tc_address: str) -> Iterator[dict[str, Any]]:
    """Keyword arguments of rm.configure for this TC; the defaults come back afterwards."""
    base: dict[str, Any] = {"tc_addresses": [tc_address], "application_id": "rm-tests"}
    yield base
    rm.configure(**base, undo_log_save_days=7.0, undo_log_delete_period=86400.0)


def test_channel_purges_periodically(
    db: Database, tc: TCClient, tc_address: str, retention: dict[str, Any]
) -> None:
    _undo_table(db)
    finished = tc.begin("finished", LONG_MS)
    tc.commit(finished)
    live = tc.begin("live", LONG_MS)
    _insert(
        db,
        [("h:1:1", 1, 1, OLD), (finished, 1, 0, OLD), (live, 1, 0, OLD), ("h:1:2", 1, 1, YOUNG)],
    )
    rm.configure(**retention, undo_log_save_days=1, undo_log_delete_period=0.2)
    conn = db.connect()  # registers the resource: the channel starts
    try:
        wait_until(lambda: db.undo_rows() == 2, timeout=30, what="the periodic purge")
        assert _rows(db) == {(live, 1, LOG_STATUS_NORMAL), ("h:1:2", 1, 1)}
    finally:
        conn.close()
        unregister_resource(db.resource_id)
        rm.get_tc_client().rollback(live)  # configure closed the old client


def test_save_days_zero_disables_the_job(
    db: Database, tc_address: str, retention: dict[str, Any]
) -> None:
    _undo_table(db)
    _insert(db, [("h:1:1", 1, 1, OLD)])
    rm.configure(**retention, undo_log_save_days=0, undo_log_delete_period=0.2)
    conn = db.connect()
    try:
        names = {t.name for t in threading.enumerate()}
        assert "atx-rm-undo-retention" not in names
        time.sleep(0.6)
        assert db.undo_rows() == 1
    finally:
        conn.close()
        unregister_resource(db.resource_id)


def test_close_does_not_wait_for_the_period(tc_address: str, retention: dict[str, Any]) -> None:
    rm.configure(**retention, undo_log_delete_period=3600)
    channel = rm.ensure_runtime()
    assert channel is not None
    started = time.monotonic()
    rm.shutdown()
    assert time.monotonic() - started < 3


def test_configuration_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidConfigurationError):
        rm.configure(undo_log_save_days=-1)
    with pytest.raises(InvalidConfigurationError):
        rm.configure(undo_log_delete_period=0)
    monkeypatch.setenv("ATX_UNDO_LOG_SAVE_DAYS", "a week")
    with pytest.raises(InvalidConfigurationError):
        rm.configure()
    monkeypatch.setenv("ATX_UNDO_LOG_SAVE_DAYS", "2.5")
    monkeypatch.setenv("ATX_UNDO_LOG_DELETE_PERIOD", "60")
    defaults = rm.Config()
    assert (defaults.undo_log_save_days, defaults.undo_log_delete_period) == (7.0, 86400.0)
    config = rm.configure()
    try:
        assert (config.undo_log_save_days, config.undo_log_delete_period) == (2.5, 60.0)
    finally:
        monkeypatch.undo()
        rm.configure()


# --- atx rm purge ----------------------------------------------------------------------


def _dsn(db: Database) -> str:
    return f"sqlite:///{db.location}" if db.kind == "sqlite" else db.location


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


def test_cli_without_tc_deletes_placeholders_only(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    _undo_table(db)
    _insert(db, [("h:1:1", 1, 1, OLD), ("h:1:2", 1, 0, OLD), ("h:1:3", 1, 1, YOUNG)])
    assert _cli(["purge", "--dsn", _dsn(db)]) == 0
    out = capsys.readouterr().out
    assert "placeholders deleted: 1" in out
    assert "undo rows kept: 1 (no --tc given" in out
    assert _rows(db) == {("h:1:2", 1, 0), ("h:1:3", 1, 1)}


def test_cli_with_tc(
    db: Database, tc: TCClient, tc_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _undo_table(db)
    live = tc.begin("live", LONG_MS)
    unseen = _unseen_xid(tc_address)
    _insert(db, [(live, 1, 0, OLD), (unseen, 1, 0, OLD), ("h:1:1", 1, 1, dt.timedelta(days=3))])
    assert _cli(["purge", "--dsn", _dsn(db), "--tc", tc_address, "--dry-run"]) == 0
    assert "undo rows to delete: 1" in capsys.readouterr().out
    assert len(_rows(db)) == 3
    argv = ["purge", "--dsn", _dsn(db), "--tc", tc_address, "--older-than", "2.5"]
    assert _cli(argv) == 0
    out = capsys.readouterr().out
    assert "placeholders deleted: 1" in out
    assert "undo rows deleted: 1" in out
    assert "undo rows kept: 1 (live at the TC: 1, TC could not answer: 0)" in out
    assert _rows(db) == {(live, 1, LOG_STATUS_NORMAL)}
    tc.rollback(live)


@pytest.mark.parametrize("days", ["0", "-1", "nan", "inf"])
def test_cli_refuses_a_non_positive_age(days: str, tmp_path: Any) -> None:
    assert _cli(["purge", "--dsn", f"sqlite:///{tmp_path}/x.db", "--older-than", days]) == 2
