"""Recognition of each statement type and paramstyle, and SELECT FOR UPDATE lock keys."""

from __future__ import annotations

from atx.dialect import Dialect
from atx.lock_keys import LockKey, format_lock_keys
from atx.rm.exec import StatementExecutor
from atx.rm.exec.multi import shares
from atx.rm.sql.parser import parse
from atx.rm.sql.placeholders import split_statements
from atx.rm.types.sql import ParamStyle, SQLType, StatementKind, ValueKind
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


def test_postgres_placeholders_quotes_and_casts() -> None:
    """psycopg's %s / %b / %t and %(name)s, %% for a percent, $$-quoted text, :: casts."""
    rec = parse(
        "UPDATE t SET v = %b::int, note = $tag$50%s off$tag$"
        " WHERE id = %s AND n LIKE 'a%%' AND k = %t::text",
        Dialect.POSTGRES,
    )
    assert rec.sql_type is SQLType.UPDATE and rec.columns == ("v", "note")
    assert rec.param_count == 3 and rec.where is not None and rec.where.refs == (1, 2)
    escaped = parse("UPDATE t SET note = E'it\\'s %%' WHERE id = %s", Dialect.POSTGRES)
    assert escaped.param_count == 1 and escaped.where is not None
    assert escaped.where.refs == (0,)
    named = parse("DELETE FROM t WHERE id = %(id)s", Dialect.POSTGRES)
    assert named.param_style is ParamStyle.NAMED and named.where is not None
    assert named.where.refs == ("id",) and named.where.text == "id = %s"
    assert rec.where.text == "id = %s AND n LIKE 'a%%' AND k = CAST(%s AS TEXT)"
    upsert = parse(
        "INSERT INTO t (id, v) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v"
        " RETURNING id",
        Dialect.POSTGRES,
    )
    assert upsert.sql_type is SQLType.INSERT_ON_DUPLICATE and upsert.on_duplicate_columns == ("v",)
    assert upsert.extra["returning"] == ("id",)


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


def test_update_join_targets_and_clauses() -> None:
    rec = parse(
        "UPDATE t1 AS a JOIN t2 b ON b.a_id = a.id AND b.k = %(k)s LEFT JOIN t3 ON t3.id = b.t"
        " SET a.x = %(x)s, b.y = b.y + 1, a.z = NULL WHERE a.v > %(v)s AND b.s LIKE 'p%%'",
        Dialect.MYSQL,
    )
    assert rec.sql_type is SQLType.UPDATE and rec.unsupported is None
    assert rec.table is None and rec.param_style is ParamStyle.NAMED
    assert [(t.table, t.alias, t.columns) for t in rec.update_targets] == [
        ("t1", "a", ("x", "z")),
        ("t2", "b", ("y",)),
    ]  # t3 is only read
    assert rec.from_clause is not None and rec.from_clause.refs == ("k",)
    assert rec.from_clause.text == (
        "t1 AS a JOIN t2 AS b ON b.a_id = a.id AND b.k = %s LEFT JOIN t3 ON t3.id = b.t"
    )
    assert rec.where is not None and rec.where.refs == ("v",)
    assert rec.where.text == "a.v > %s AND b.s LIKE 'p%%'"


def test_update_comma_form_positional() -> None:
    rec = parse("UPDATE db1.t1, t2 x SET t1.v = %s WHERE t1.id = x.id AND x.n = %s", Dialect.MYSQL)
    assert [(t.table, t.alias, t.columns) for t in rec.update_targets] == [("db1.t1", None, ("v",))]
    assert rec.from_clause is not None and rec.from_clause.text == "db1.t1, t2 AS x"
    assert rec.where is not None and rec.where.refs == (1,)


def test_update_join_unqualified_columns_are_left_to_the_executor() -> None:
    rec = parse("UPDATE t a JOIN db.u b ON a.id = b.id SET v = 1, b.w = 2", Dialect.MYSQL)
    assert rec.unsupported is None
    assert rec.unqualified_columns == ("v",)
    assert [(t.table, t.alias) for t in rec.join_tables] == [("t", "a"), ("db.u", "b")]
    assert [(t.table, t.columns) for t in rec.update_targets] == [("db.u", ("w",))]


def test_update_join_refusals_are_named() -> None:
    cases = {
        "UPDATE t a JOIN u b ON a.id = b.id SET a.v = 1 LIMIT 2": "ORDER BY / LIMIT",
        "UPDATE t a JOIN (SELECT 1 AS id) b ON a.id = b.id SET a.v = 1": "derived table",
        "UPDATE t a JOIN t b ON a.id = b.id SET a.v = 1, b.v = 2": "two aliases",
        "UPDATE t a JOIN u b ON a.id = b.id SET c.v = 1": "unknown table 'c'",
    }
    for sql, construct in cases.items():
        assert construct in (parse(sql, Dialect.MYSQL).unsupported or ""), sql
    sqlite = parse("UPDATE t SET v = u.v FROM u WHERE t.id = u.id", Dialect.SQLITE)
    assert sqlite.unsupported == "multi-table UPDATE (UPDATE ... FROM / JOIN) on SQLite"


def test_upsert_forms() -> None:
    """SQLite's ON CONFLICT and OR IGNORE are imaged as upserts; what cannot be is refused."""
    upserts = {
        "INSERT INTO t (id, v) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET v = excluded.v": ("v",),
        "INSERT INTO t (id, v) VALUES (?, ?) ON CONFLICT DO NOTHING": (),
        "INSERT OR IGNORE INTO t (id, v) VALUES (?, ?)": (),
    }
    for sql, columns in upserts.items():
        rec = parse(sql, Dialect.SQLITE)
        assert (rec.sql_type, rec.unsupported) == (SQLType.INSERT_ON_DUPLICATE, None), sql
        assert rec.on_duplicate_columns == columns
    assert parse("INSERT OR ABORT INTO t VALUES (1, 2)", Dialect.SQLITE).sql_type is SQLType.INSERT
    refused = {
        ("INSERT OR REPLACE INTO t VALUES (1, 2)", Dialect.SQLITE): "REPLACE",
        ("INSERT OR FAIL INTO t VALUES (1, 2)", Dialect.SQLITE): "INSERT OR FAIL",
        ("INSERT OR ROLLBACK INTO t VALUES (1, 2)", Dialect.SQLITE): "INSERT OR ROLLBACK",
        ("INSERT IGNORE INTO t VALUES (1, 2)", Dialect.MYSQL): "INSERT IGNORE",
    }
    for (sql, dialect), construct in refused.items():
        assert parse(sql, dialect).unsupported == construct, sql


# -- ;-separated statements, EXISTS, DELETE t FROM ... ---------------------------------------


def test_split_statements_ignores_quotes_and_comments() -> None:
    sql = "UPDATE t SET v = ';' WHERE id = 1; -- a; comment\nUPDATE t SET v = 2 /* ; */;  ;"
    assert split_statements(sql, Dialect.MYSQL) == [
        "UPDATE t SET v = ';' WHERE id = 1",
        "-- a; comment\nUPDATE t SET v = 2 /* ; */",
    ]


def test_multi_statement_positional_params_split_per_statement() -> None:
    rec = parse(
        "UPDATE t SET v = %s WHERE id = %s; UPDATE t SET v = 'a;%%' WHERE id = 3;"
        " UPDATE u AS x SET w = %s WHERE x.id IN (%s, %s)",
        Dialect.MYSQL,
    )
    assert rec.unsupported is None and rec.sql_type is SQLType.UPDATE and rec.table is None
    assert rec.kind is StatementKind.DML and rec.param_count == 5
    assert [(s.sql, s.param_count) for s in rec.statements] == [
        ("UPDATE t SET v = %s WHERE id = %s", 2),
        ("UPDATE t SET v = 'a;%%' WHERE id = 3", 0),
        ("UPDATE u AS x SET w = %s WHERE x.id IN (%s, %s)", 3),
    ]
    last = rec.statements[2]
    assert (last.table, last.alias, last.columns) == ("u", "x", ("w",))
    assert last.where is not None and last.where.refs == (1, 2)  # its own share's indexes
    parts = shares(rec, (1, 2, 3, 4, 5))
    assert [tuple(p) for p in parts] == [(1, 2), (), (3, 4, 5)]


def test_multi_statement_named_params_go_to_every_statement() -> None:
    rec = parse("DELETE FROM t WHERE id = %(a)s; DELETE FROM t WHERE id = %(b)s", Dialect.MYSQL)
    assert rec.sql_type is SQLType.DELETE and rec.param_style is ParamStyle.NAMED
    assert [s.where.refs for s in rec.statements if s.where] == [("a",), ("b",)]
    params = {"a": 1, "b": 2}
    assert shares(rec, params) == [params, params]


def test_multi_statement_mixed_kinds_are_refused_naming_them() -> None:
    cases = {
        "UPDATE t SET v = 1; DELETE FROM t WHERE id = 2": "mixing UPDATE and DELETE",
        "DELETE FROM t; SELECT 1": "mixing DELETE and SELECT",
        "UPDATE t SET v = 1; INSERT INTO t VALUES (3, 3)": "mixing UPDATE and INSERT",
        "UPDATE t SET v = 1; SELECT * FROM t FOR UPDATE": "mixing UPDATE and SELECT ... FOR UPDATE",
        "INSERT INTO t VALUES (1, 1); INSERT INTO t VALUES (2, 2)": "of type INSERT",
        "UPDATE t SET v = 1; UPDATE t SET v = 2 WHERE id IN (SELECT id FROM u)": (
            "IN-subquery in UPDATE WHERE (statement 2 of 2)"
        ),
        "UPDATE t SET v = %s; UPDATE t SET v = %(b)s": "mixing positional and named",
    }
    for sql, construct in cases.items():
        rec = parse(sql, Dialect.MYSQL)
        assert rec.kind is StatementKind.DML, sql
        assert construct in (rec.unsupported or ""), (sql, rec.unsupported)
        assert "multiple statements" in (rec.unsupported or "") or "statement 2" in construct
    sqlite = parse("UPDATE t SET v = 1; UPDATE t SET v = 2", Dialect.SQLITE)
    assert sqlite.unsupported == "multiple statements (sqlite3 runs one statement per execute)"


def test_exists_in_where_is_kept_whole_with_its_params() -> None:
    rec = parse(
        "DELETE FROM t AS a WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = a.id AND u.k = ?)"
        " AND a.v > ?",
        Dialect.SQLITE,
    )
    assert rec.unsupported is None and (rec.table, rec.alias) == ("t", "a")
    assert rec.where is not None and rec.where.refs == (0, 1)
    assert rec.where.text == "NOT EXISTS(SELECT 1 FROM u WHERE u.id = a.id AND u.k = ?) AND a.v > ?"
    update = parse(
        "UPDATE t SET v = %s WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)", Dialect.MYSQL
    )
    assert update.unsupported is None and update.columns == ("v",)


def test_delete_named_table_from_one_table() -> None:
    rec = parse("DELETE t FROM db.t1 AS t WHERE t.id = %s", Dialect.MYSQL)
    assert (rec.sql_type, rec.unsupported) == (SQLType.DELETE, None)
    assert (rec.table, rec.alias) == ("db.t1", "t")
    assert rec.where is not None and rec.where.text == "t.id = %s" and rec.where.refs == (0,)
    plain = parse("DELETE t1 FROM t1 WHERE id = 1", Dialect.MYSQL)
    assert (plain.table, plain.alias, plain.unsupported) == ("t1", None, None)
    refused = {
        "DELETE x FROM t1 AS t WHERE t.id = 1": "DELETE of 'x', not its FROM table",
        "DELETE t FROM t1 AS t, t2 WHERE t.id = t2.id": "DELETE with JOIN",
        "DELETE t, u FROM t JOIN u ON t.id = u.id": "DELETE with JOIN",
        "DELETE t FROM t1 AS t WHERE t.id > 1 LIMIT 1": "ORDER BY / LIMIT",
    }
    for sql, construct in refused.items():
        assert construct in (parse(sql, Dialect.MYSQL).unsupported or ""), sql


def test_subquery_refusals_name_the_construct() -> None:
    cases = {
        "DELETE FROM t WHERE id IN (SELECT id FROM u)": "IN-subquery in DELETE WHERE",
        "UPDATE t SET v = 1 WHERE id NOT IN (SELECT id FROM u)": "IN-subquery in UPDATE WHERE",
        "DELETE FROM t WHERE v > (SELECT MIN(id) FROM u)": "subquery in DELETE WHERE",
        "UPDATE t SET v = (SELECT 'z') WHERE id = 1": "subquery in SET",
        "UPDATE t SET v = 1 WHERE EXISTS (SELECT 1) ORDER BY (SELECT 1)": (
            "subquery in UPDATE ORDER BY / LIMIT"
        ),
        "WITH c AS (SELECT 1 AS id) UPDATE t SET v = 1 WHERE id = 1": (
            "WITH (common table expression) in UPDATE"
        ),
        "WITH c AS (SELECT 1 AS id) DELETE FROM t WHERE id = 1": (
            "WITH (common table expression) in DELETE"
        ),
    }
    for sql, construct in cases.items():
        got = parse(sql, Dialect.MYSQL).unsupported or ""
        assert got.startswith(construct), (sql, got)
    for sql in (
        "UPDATE t SET v = (SELECT 'z') WHERE id = 1",
        "WITH c AS (SELECT 1) UPDATE t SET v = 1",
    ):
        assert "IN-subquery" not in (parse(sql, Dialect.MYSQL).unsupported or "")
