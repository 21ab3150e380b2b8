"""Recognition of each statement type and paramstyle, and SELECT FOR UPDATE lock keys."""

from __future__ import annotations

from rm.sql.dialect import Dialect
from rm.sql.executor import LockKey, StatementExecutor, format_lock_keys
from rm.sql.parser import parse
from rm.sql.recognizer import ParamStyle, SQLType, ValueKind
from tests.rm.dbs import DB


def test_update_clauses_know_their_params() -> None:
    rec = parse(
        "UPDATE t AS a SET a.x = %s WHERE a.id = %s AND n LIKE 'a%%' ORDER BY id LIMIT %s",
        Dialect.MYSQL,
    )
    assert rec.sql_type is SQLType.UPDATE and rec.table == "t" and rec.alias == "a"
    assert rec.columns == ("x",) and rec.param_style is ParamStyle.POSITIONAL
    assert rec.where is not None and rec.where.refs == (1,)
    assert rec.where.text == "a.id = %s AND n LIKE 'a%%'"
    assert rec.limit is not None and rec.limit.refs == (2,)


def test_sqlite_named_and_numbered() -> None:
    rec = parse("DELETE FROM t WHERE id = :id AND v > ?2", Dialect.SQLITE)
    assert rec.sql_type is SQLType.DELETE and rec.where is not None
    assert rec.where.refs == ("id", 1) and rec.where.text == "id = ? AND v > ?"


def test_insert_values() -> None:
    rec = parse(
        "INSERT INTO t (a, b) VALUES (%(a)s, 1), (NULL, 'x') ON DUPLICATE KEY UPDATE b = 2",
        Dialect.MYSQL,
    )
    assert rec.sql_type is SQLType.INSERT_ON_DUPLICATE and rec.on_duplicate_columns == ("b",)
    assert rec.insert_rows[0][0].param == "a" and rec.insert_rows[1][0].kind is ValueKind.NULL
    assert rec.insert_rows[1][1].literal == "x"


def test_recognition_is_cached() -> None:
    executor = StatementExecutor(Dialect.SQLITE, "r")
    assert executor.recognize("UPDATE t SET a = ?") is executor.recognize("UPDATE t SET a = ?")


def test_format_lock_keys() -> None:
    keys = [LockKey("t", "1"), LockKey("u", "1_a"), LockKey("t", "2"), LockKey("t", "1")]
    assert format_lock_keys(keys) == "t:1,2;u:1_a"


def test_select_for_update_lock_keys(data_db: DB) -> None:
    db = data_db
    db.setup("CREATE TABLE t (a INT, b VARCHAR(5), v INT, PRIMARY KEY (a, b))",
             [(1, "x", 1), (2, "y", 2)], "INSERT INTO t VALUES (?, ?, ?)")  # fmt: skip
    conn = db.connect()
    db.dialect.begin(conn)
    cur = conn.cursor()
    sql = db.sql("SELECT v FROM t WHERE a >= ? FOR UPDATE")
    result = StatementExecutor(db.dialect, "r").execute(cur, sql, (2,))
    assert result.lock_keys == [LockKey("t", "2_y")] and result.undo_items == []
    assert [tuple(r) for r in cur.fetchall()] == [(2,)]
    conn.rollback()
    conn.close()
