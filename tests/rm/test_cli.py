from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

import pymysql
import pytest

from atx.dsn import parse_mysql_url, parse_postgres_url
from atx.rm import cli


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


def test_print_sql(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["init", "--dsn", "mysql://root@h/db", "--print-sql"]) == 0
    assert "UNIQUE KEY `ux_undo_log` (`xid`, `branch_id`)" in capsys.readouterr().out


def test_init_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    assert _run(["init", "--dsn", f"sqlite:///{path}"]) == 0
    assert _run(["init", "--dsn", f"sqlite:///{path}"]) == 0  # idempotent
    cols = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(undo_log)")]
    assert cols[1:] == ["branch_id", "xid", "context", "rollback_info", "log_status",
                        "log_created", "log_modified"]  # fmt: skip


def test_init_mariadb(mariadb_url: str) -> None:
    assert _run(["init", "--dsn", mariadb_url]) == 0
    conn = pymysql.connect(**parse_mysql_url(mariadb_url).connect_kwargs())
    with conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        assert ("undo_log",) in cur.fetchall()
    conn.close()


def test_print_sql_postgres(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["init", "--dsn", "postgresql://postgres@h/db", "--print-sql"]) == 0
    out = capsys.readouterr().out
    assert '"rollback_info" BYTEA NOT NULL' in out
    assert (
        'CREATE UNIQUE INDEX IF NOT EXISTS "ux_undo_log" ON "undo_log" ("xid", "branch_id")' in out
    )


def test_init_postgres(postgres_url: str) -> None:
    import psycopg

    assert _run(["init", "--dsn", postgres_url]) == 0
    assert _run(["init", "--dsn", postgres_url, "--table", "undo_log"]) == 0  # idempotent
    with psycopg.connect(**parse_postgres_url(postgres_url).connect_kwargs()) as conn:
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = 'undo_log' ORDER BY ordinal_position"
        ).fetchall()
    assert rows[0] == ("id", "bigint") and ("rollback_info", "bytea") in rows
    assert ("log_created", "timestamp without time zone") in rows
