"""Refused statements raise UnsupportedSQLError before any row changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from atx.dialect import Dialect
from atx.rm.errors import UnsupportedSQLError
from atx.rm.exec import StatementExecutor
from atx.rm.types import StatementKind
from tests.rm.dbs import DB, mysql_db, sqlite_db

REFUSED = [
    ("DELETE FROM t WHERE id IN (SELECT id FROM u)", "IN-subquery in DELETE WHERE"),
    ("UPDATE t SET v = 1 WHERE id IN (SELECT id FROM u)", "IN-subquery in UPDATE WHERE"),
    ("DELETE FROM t WHERE v > (SELECT MIN(id) FROM u)", "subquery in DELETE WHERE (only EXISTS"),
    ("UPDATE t SET v = (SELECT 'z') WHERE id = 1", "subquery in SET"),
    (
        "WITH c AS (SELECT 1 AS id) UPDATE t SET v = 1 WHERE id = 1",
        "WITH (common table expression)",
    ),
    ("WITH c AS (SELECT 1 AS id) DELETE FROM t WHERE id = 1", "WITH (common table expression)"),
    ("REPLACE INTO t (id, v) VALUES (1, 9)", "REPLACE"),
    ("MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN UPDATE SET v = 1", "MERGE"),
    ("UPDATE t SET id = 5 WHERE id = 1", "primary key"),
    ("UPDATE nopk SET v = 2", "without a primary key"),
    ("UPDATE t SET v = 1; DELETE FROM t", "multiple statements"),
    ("DROP TABLE t", "DDL"),
]


# Multi-table UPDATE (MySQL): refused before any row changes.
REFUSED_MYSQL = [
    ("UPDATE t a JOIN u b ON a.id = b.id SET a.v = 9 ORDER BY a.id LIMIT 1", "ORDER BY / LIMIT"),
    ("UPDATE t a, u b SET a.v = 9 WHERE a.id = b.id LIMIT 1", "ORDER BY / LIMIT"),
    ("UPDATE t a JOIN nopk n ON a.v = n.v SET v = 9", "ambiguous column 'v'"),
    ("UPDATE t a JOIN u b ON a.id = b.id SET w = 9", "unknown column 'w'"),
    ("UPDATE t a JOIN u b ON a.id = b.id SET a.v = 9, b.id = 5", "primary key column 'id'"),
    ("UPDATE t a JOIN nopk n ON a.v = n.v SET a.v = 9, n.v = 9", "'nopk' without a primary key"),
    ("UPDATE t a JOIN (SELECT id FROM u) b ON a.id = b.id SET a.v = 9", "derived table"),
    ("UPDATE t a JOIN u b ON a.id = b.id SET a.v = (SELECT MAX(id) FROM u)", "subquery"),
    ("UPDATE t a JOIN u b ON a.id = b.id SET a.v = 9 WHERE b.id IN (SELECT 1)", "subquery"),
    ("UPDATE t a JOIN t b ON a.id = b.id SET a.v = 9, b.v = 8", "updated under two aliases"),
    ("DELETE a FROM t a JOIN u ON a.id = u.id", "DELETE with JOIN"),
    ("DELETE FROM a USING t a JOIN u ON a.id = u.id", "DELETE with JOIN"),
    ("DELETE x FROM t AS a WHERE a.id = 1", "not its FROM table"),
    # ;-separated statements run one by one only when all are UPDATEs or all DELETEs.
    ("UPDATE t SET v = 9 WHERE id = 1; DELETE FROM t WHERE id = 2", "mixing UPDATE and DELETE"),
    ("UPDATE t SET v = 9 WHERE id = 1; SELECT * FROM t", "mixing UPDATE and SELECT"),
    ("DELETE FROM t WHERE id = 1; INSERT INTO u VALUES (5)", "mixing DELETE and INSERT"),
    ("INSERT INTO u VALUES (5); INSERT INTO u VALUES (6)", "multiple statements of type INSERT"),
    (
        "UPDATE t SET v = 9 WHERE id = 1; UPDATE t SET v = 9 WHERE id IN (SELECT id FROM u)",
        "IN-subquery in UPDATE WHERE (statement 2 of 2)",
    ),
]


@pytest.mark.parametrize(("sql", "construct"), REFUSED)
def test_refused_before_execution(data_db: DB, sql: str, construct: str) -> None:
    _check_refused(data_db, sql, construct)


@pytest.mark.parametrize(("sql", "construct"), REFUSED_MYSQL)
def test_multi_table_refused_before_execution_mysql(
    mariadb_url: str, sql: str, construct: str
) -> None:
    _check_refused(mysql_db(mariadb_url), sql, construct)


# PostgreSQL's own forms: refused before they run (a failed statement would abort the
# whole local transaction there).
REFUSED_POSTGRES = [
    ("UPDATE t SET v = u.id FROM u WHERE t.id = u.id", "multi-table UPDATE (UPDATE ... FROM"),
    ("DELETE FROM t USING u WHERE t.id = u.id", "DELETE with JOIN"),
    ("INSERT INTO t VALUES (3, 3) RETURNING (SELECT 1)", "subquery in INSERT ... RETURNING"),
    ("INSERT INTO t VALUES (1, 3) ON CONFLICT (id) DO UPDATE SET v = (SELECT 1)", "subquery"),
    ("INSERT INTO t VALUES (1, 3) ON CONFLICT (id) DO UPDATE SET id = 7", "primary key"),
    ("SELECT * FROM t JOIN u ON t.id = u.id FOR UPDATE", "FOR UPDATE over several tables"),
    ("UPDATE t SET v = 9 WHERE id = 1; UPDATE t SET v = 8 WHERE id = 2", "psycopg runs one"),
    ("INSERT INTO t SELECT id, id FROM u ON CONFLICT DO NOTHING", "INSERT ... SELECT"),
    ("INSERT INTO t SELECT id + 5, id FROM u RETURNING v", "RETURNING without the primary key"),
    ("WITH x AS (DELETE FROM u RETURNING id) INSERT INTO t SELECT id, 1 FROM x", "WITH"),
    ("COPY t FROM STDIN", "COPY ... FROM"),
]


@pytest.mark.parametrize(("sql", "construct"), REFUSED_POSTGRES)
def test_postgres_forms_refused_before_execution(pg_db: DB, sql: str, construct: str) -> None:
    _check_refused(pg_db, sql, construct)


def test_insert_select_refused_without_returning(tmp_path: Path, mariadb_url: str) -> None:
    """Only PostgreSQL's RETURNING tells which rows an INSERT ... SELECT made."""
    for db in (sqlite_db(str(tmp_path / "a.db")), mysql_db(mariadb_url)):
        _check_refused(db, "INSERT INTO t SELECT * FROM u", "INSERT ... SELECT")


def test_sqlite_update_from_refused(tmp_path: Path) -> None:
    sql = "UPDATE t SET v = u.id FROM u WHERE t.id = u.id"
    _check_refused(sqlite_db(str(tmp_path / "a.db")), sql, "multi-table UPDATE")
    sql = "UPDATE t AS a JOIN u ON a.id = u.id SET a.v = 9"
    _check_refused(sqlite_db(str(tmp_path / "b.db")), sql, "on SQLite")


def _check_refused(db: DB, sql: str, construct: str) -> None:
    db.setup("CREATE TABLE t (id INT PRIMARY KEY, v INT)", [(1, 1), (2, 2)],
              "INSERT INTO t VALUES (?, ?)")  # fmt: skip
    conn = db.connect()
    cur = conn.cursor()
    cur.execute("CREATE TABLE u (id INT PRIMARY KEY)")
    cur.execute("CREATE TABLE nopk (v INT)")
    cur.execute("INSERT INTO u VALUES (1)")
    cur.execute("INSERT INTO nopk VALUES (1)")
    conn.commit()
    db.dialect.begin(conn)
    with pytest.raises(UnsupportedSQLError) as raised:
        StatementExecutor(db.dialect, "r").execute(cur, sql, None)
    assert construct.lower() in raised.value.construct.lower()
    conn.rollback()
    conn.close()
    assert db.rows("t") == [(1, 1), (2, 2)]
    assert db.rows("nopk") == [(1,)]
    assert db.rows("u") == [(1,)]


def test_delete_join_refused_mysql() -> None:
    executor = StatementExecutor(Dialect.MYSQL, "r")
    assert executor.classify("DELETE a FROM t a JOIN u ON a.id = u.id") is StatementKind.DML
    with pytest.raises(UnsupportedSQLError, match="DELETE with JOIN"):
        executor.execute(None, "DELETE a FROM t a JOIN u ON a.id = u.id", None)


def test_classify() -> None:
    executor = StatementExecutor(Dialect.MYSQL, "r")
    assert executor.classify("CREATE TABLE x (a INT)") is StatementKind.DDL
    assert executor.classify("ALTER TABLE x ADD b INT") is StatementKind.DDL
    assert executor.classify("SELECT 1") is StatementKind.OTHER
    assert executor.classify("SET autocommit = 0") is StatementKind.OTHER
    assert executor.classify("SELECT * FROM t WHERE id = %s FOR UPDATE") is (
        StatementKind.SELECT_FOR_UPDATE
    )
    assert executor.classify("REPLACE INTO t VALUES (1)") is StatementKind.DML
    assert executor.classify("UPDATE t SET a = 1") is StatementKind.DML
