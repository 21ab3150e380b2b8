"""atx.dialect: one table definition created on every database atx speaks, for real."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pymysql
import pytest

from atx.dialect import Column, Dialect, Index, TableSpec
from atx.dsn import parse_mysql_url, parse_postgres_url

SPEC = TableSpec(
    "things",
    (
        Column("id", "id"),
        Column("name", "varchar(64)"),
        Column("body", "blob", nullable=True),
        Column("at", "datetime"),
        Column("n", "int", default="0"),
    ),
    primary_key=("id",),
    indexes=(Index("ux_{table}_name", ("name",), unique=True),),
)


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def connection(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        conn: Any = sqlite3.connect(tmp_path / "d.db")
    elif request.param == "mariadb":
        url = request.getfixturevalue("mariadb_url")
        conn = pymysql.connect(**parse_mysql_url(url).connect_kwargs())
    else:
        import psycopg

        url = request.getfixturevalue("postgres_url")
        conn = psycopg.connect(**parse_postgres_url(url).connect_kwargs())
    request.addfinalizer(conn.close)
    return conn


def test_the_spec_is_created_twice_and_takes_rows(connection: Any) -> None:
    dialect = Dialect.of(connection)
    for _ in range(2):  # IF NOT EXISTS: idempotent
        cursor = dialect.plain_cursor(connection)
        for statement in dialect.create_table(SPEC):
            cursor.execute(statement)
        connection.commit()
    cursor = dialect.plain_cursor(connection)
    ph = dialect.placeholder
    cols = ", ".join(dialect.ident(c) for c in ("name", "body", "at"))
    insert = f"INSERT INTO {dialect.table_ident('things')} ({cols}) VALUES ({dialect.marks(3)})"
    cursor.execute(insert, ("a", b"\x00\xff", "2026-12-03 10:00:00.123456"))
    cursor.execute(insert, ("b", None, "2026-12-03 10:00:00"))
    connection.commit()
    cursor.execute(f"SELECT {dialect.ident('id')}, {dialect.ident('n')} FROM things ORDER BY 1")
    assert [tuple(r) for r in cursor.fetchall()] == [(1, 0), (2, 0)]
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        cursor.execute(insert, ("a", None, "2026-12-03 10:00:00"))
    connection.rollback()
    assert ph in insert


def test_postgres_speaks_double_quotes_and_percent_s() -> None:
    assert Dialect.POSTGRES.ident('we"ird') == '"we""ird"'
    assert Dialect.POSTGRES.placeholder == "%s"
    assert Dialect.POSTGRES.table_ident("s.t") == '"s"."t"'
