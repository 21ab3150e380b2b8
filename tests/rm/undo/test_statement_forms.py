"""Statement forms Seata accepts: ``;``-separated UPDATEs or DELETEs (MySQL), EXISTS in
WHERE, and MySQL's ``DELETE t FROM t1 AS t``. Each is imaged, locked and rolled back
like a single plain statement; its commit leaves what the plain SQL leaves in a twin
database (a raw connection, ``CLIENT.MULTI_STATEMENTS`` on MariaDB)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pymysql.constants import CLIENT

import atx.rm as rm
from atx.dialect import Dialect
from atx.dsn import parse_mysql_url
from atx.rm.errors import DirtyWriteError, RMError, UnsupportedSQLError
from atx.rm.exec import Statement, StatementExecutor, TableCache
from atx.rm.exec import delete as delete_executor
from atx.rm.tc_client import TCClient
from atx.rm.types import ExecutionResult, format_lock_keys
from tests.conftest import MariaDBFactory, PostgresFactory
from tests.rm.conftest import Database, wait_final, wait_until
from tests.rm.dbs import DB, mysql_db, postgres_db, sqlite_db

ACCT_DDL = {
    Dialect.SQLITE: "CREATE TABLE acct (id INTEGER PRIMARY KEY, name VARCHAR(20),"
    " qty INT, price DECIMAL(10,2), at TEXT)",
    Dialect.MYSQL: "CREATE TABLE acct (id INT PRIMARY KEY, name VARCHAR(20) NULL,"
    " qty INT NULL, price DECIMAL(10,2) NULL, at DATETIME(6) NULL)",
    Dialect.POSTGRES: "CREATE TABLE acct (id INT PRIMARY KEY, name VARCHAR(20) NULL,"
    " qty INT NULL, price DECIMAL(10,2) NULL, at TIMESTAMP(6) NULL)",
}
FLAG_DDL = "CREATE TABLE flag (id INT PRIMARY KEY, acct_id INT NOT NULL, kind VARCHAR(5) NOT NULL)"
T0 = dt.datetime(2024, 5, 6, 7, 8, 9, 123456)
T1 = dt.datetime(2031, 1, 2, 3, 4, 5, 654321)
ACCTS = [
    (1, "alpha", 5, Decimal("1.50"), T0),
    (2, "beta", None, None, None),
    (3, "bravo", 7, Decimal("-2.25"), T0),
    (4, "gamma", 0, Decimal("10.00"), None),
]
FLAGS = [(10, 1, "x"), (11, 3, "x"), (12, 3, "y"), (13, 9, "x")]  # 13: no such acct
Rows = list[tuple[Any, ...]]


def multi_db(url: str) -> DB:
    """A raw PyMySQL connection that may run ``;``-separated statements (the plain twin)."""
    kwargs = parse_mysql_url(url).connect_kwargs()
    return DB(
        Dialect.MYSQL,
        lambda: pymysql.connect(**kwargs, autocommit=False, client_flag=CLIENT.MULTI_STATEMENTS),
    )


def seed(db: DB, accts: Rows = ACCTS, flags: Rows = FLAGS) -> None:
    if db.dialect is Dialect.SQLITE:
        accts = [(*r[:4], r[4].isoformat(sep=" ") if r[4] else None) for r in accts]
    db.setup(ACCT_DDL[db.dialect], accts, "INSERT INTO acct VALUES (?, ?, ?, ?, ?)")
    db.setup(FLAG_DDL, flags, "INSERT INTO flag VALUES (?, ?, ?)")


def snapshot(db: DB) -> tuple[Rows, Rows]:
    return db.rows("acct"), db.rows("flag")


def plain(db: DB, sql: str, params: object) -> None:
    """The same SQL straight through the driver, committed."""
    conn = db.connect()
    cur = conn.cursor()
    if params is None:
        cur.execute(db.sql(sql))
    else:
        cur.execute(db.sql(sql), params)
    if db.dialect is Dialect.MYSQL:
        while cur.nextset():
            pass
    conn.commit()
    conn.close()


def check(at: DB, twin: DB, sql: str, params: object) -> ExecutionResult:
    """Phase one through the executor; the commit equals the plain SQL's; rollback
    restores the before image exactly and leaves no undo row."""
    original = snapshot(at)
    assert snapshot(twin) == original
    [result] = at.phase_one([(sql, params)])
    committed = snapshot(at)
    assert committed != original
    plain(twin, sql, params)
    assert committed == snapshot(twin)
    at.undo()
    assert snapshot(at) == original
    assert at.undo_rows() == []
    return result


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[DB, DB]:
    """A database for the executor and a twin for the plain SQL, both seeded."""
    if request.param == "sqlite":
        at, twin = sqlite_db(str(tmp_path / "at.db")), sqlite_db(str(tmp_path / "twin.db"))
    elif request.param == "postgres":
        make: PostgresFactory = request.getfixturevalue("postgres_factory")
        at, twin = postgres_db(make()), postgres_db(make())
    else:
        factory: MariaDBFactory = request.getfixturevalue("mariadb_factory")
        at, twin = mysql_db(factory()), multi_db(factory())
    seed(at)
    seed(twin)
    return at, twin


@pytest.fixture
def maria_pair(mariadb_factory: MariaDBFactory) -> tuple[DB, DB]:
    at, twin = mysql_db(mariadb_factory()), multi_db(mariadb_factory())
    seed(at)
    seed(twin)
    return at, twin


# -- ;-separated statements ------------------------------------------------------------------


def test_multi_update_splits_positional_params(maria_pair: tuple[DB, DB]) -> None:
    sql = (
        "UPDATE acct SET qty = COALESCE(qty, 0) + %s, at = %s WHERE id = %s;"
        " UPDATE acct SET price = %s, name = 'b;%%' WHERE id >= %s AND name LIKE 'b%%'"
    )
    result = check(*maria_pair, sql, (5, T1, 1, Decimal("0.01"), 2))
    assert [item.table for item in result.undo_items] == ["acct", "acct"]
    assert [item.before.pks() for item in result.undo_items] == [[(1,)], [(2,), (3,)]]
    assert format_lock_keys(result.lock_keys) == "acct:1,2,3"
    assert result.rowcount == 3  # every statement's rows, not only the first's


def test_multi_update_named_params(maria_pair: tuple[DB, DB]) -> None:
    sql = (
        "UPDATE acct SET name = %(name)s WHERE id = %(a)s;\n"
        "UPDATE acct SET qty = NULL, at = %(at)s WHERE id IN (%(a)s, %(b)s);"
    )
    result = check(*maria_pair, sql, {"name": "renamed", "a": 4, "b": 2, "at": T1})
    assert format_lock_keys(result.lock_keys) == "acct:4,2"


def test_multi_delete_of_each_form(maria_pair: tuple[DB, DB]) -> None:
    sql = (
        "DELETE FROM acct WHERE id = %s; DELETE FROM acct WHERE id = 99;"
        " DELETE a FROM acct AS a WHERE EXISTS"
        " (SELECT 1 FROM flag f WHERE f.acct_id = a.id AND f.kind = %s)"
    )
    result = check(*maria_pair, sql, (2, "y"))
    assert [item.before.pks() for item in result.undo_items] == [[(2,)], [(3,)]]
    assert format_lock_keys(result.lock_keys) == "acct:2,3"


def test_multi_statements_on_one_row_undo_in_reverse(maria_pair: tuple[DB, DB]) -> None:
    sql = (
        "UPDATE acct SET qty = 1, price = NULL WHERE id = 1;"
        " UPDATE acct SET qty = qty * 10, name = 'x' WHERE id = 1;"
        " UPDATE acct SET at = NULL WHERE qty = 10"
    )
    result = check(*maria_pair, sql, None)
    first, second, third = result.undo_items
    assert second.before.rows == first.after.rows and third.before.rows == second.after.rows
    assert format_lock_keys(result.lock_keys) == "acct:1"


@pytest.mark.parametrize(
    ("second", "error", "match"),
    [
        ("UPDATE acct SET id = 9 WHERE id = 2", UnsupportedSQLError, "primary key column 'id'"),
        ("UPDATE acct SET nope = 1 WHERE id = 2", pymysql.err.OperationalError, "nope"),
    ],
    ids=["refused", "driver-error"],
)
def test_a_failing_statement_rolls_back_the_earlier_ones(
    maria_db: DB, second: str, error: type[Exception], match: str
) -> None:
    db = maria_db
    seed(db)
    original = db.rows("acct")
    conn = db.connect()
    db.dialect.begin(conn)
    cur = conn.cursor()
    with pytest.raises(error, match=match):
        StatementExecutor(db.dialect, "r").execute(
            cur, f"UPDATE acct SET qty = 100 WHERE id = 1; {second}", None
        )
    # Inside the same local transaction: the first statement's change is gone too
    # (its savepoint), so nothing unimaged is left to commit.
    cur.execute("SELECT * FROM acct ORDER BY 1")
    assert [tuple(r) for r in cur.fetchall()] == original
    cur.execute("UPDATE acct SET qty = 7 WHERE id = 2")  # the transaction goes on
    conn.rollback()
    conn.close()
    assert db.rows("acct") == original


def test_parameter_count_mismatch_runs_nothing(maria_db: DB) -> None:
    db = maria_db
    seed(db)
    original = db.rows("acct")
    conn = db.connect()
    db.dialect.begin(conn)
    cur = conn.cursor()
    sql = "UPDATE acct SET qty = %s WHERE id = 1; UPDATE acct SET qty = %s WHERE id = %s"
    with pytest.raises(TypeError, match="2 parameters for the 3 placeholders"):
        StatementExecutor(db.dialect, "r").execute(cur, sql, (1, 2))
    conn.commit()
    conn.close()
    assert db.rows("acct") == original


def test_multi_dirty_write_is_refused(maria_db: DB) -> None:
    db = maria_db
    seed(db)
    db.phase_one([("UPDATE acct SET qty = 100 WHERE id = 1; UPDATE acct SET qty = 200", None)])
    changed = db.rows("acct")
    conn = db.connect()
    conn.cursor().execute("UPDATE acct SET qty = 555 WHERE id = 3")
    conn.commit()
    conn.close()
    with pytest.raises(DirtyWriteError) as raised:
        db.undo()
    assert raised.value.table == "acct" and raised.value.pk == "3"
    assert db.rows("acct") == [(*r[:2], 555, *r[3:]) if r[0] == 3 else r for r in changed]
    assert len(db.undo_rows()) == 1


# -- EXISTS in WHERE (SQLite, MariaDB and PostgreSQL) ----------------------------------------


def test_delete_where_exists(pair: tuple[DB, DB]) -> None:
    sql = (
        "DELETE FROM acct WHERE EXISTS"
        " (SELECT 1 FROM flag WHERE flag.acct_id = acct.id AND flag.kind = ?) AND qty > ?"
    )
    result = check(*pair, sql, ("x", 0))
    assert sorted(result.undo_items[0].before.pks()) == [(1,), (3,)]
    assert result.undo_items[0].after.rows == ()
    assert format_lock_keys(result.lock_keys) == "acct:1,3"


def test_delete_where_not_exists(pair: tuple[DB, DB]) -> None:
    # (MariaDB before 11.6 has no DELETE FROM t AS a: the alias form is DELETE a FROM t AS a.)
    sql = "DELETE FROM acct WHERE NOT EXISTS (SELECT 1 FROM flag f WHERE f.acct_id = acct.id)"
    result = check(*pair, sql, None)
    assert format_lock_keys(result.lock_keys) == "acct:2,4"


def test_update_where_exists(pair: tuple[DB, DB]) -> None:
    sql = (
        "UPDATE acct SET qty = NULL, name = ? WHERE id > ? AND EXISTS"
        " (SELECT 1 FROM flag WHERE flag.acct_id = acct.id)"
    )
    result = check(*pair, sql, ("flagged", 1))
    assert format_lock_keys(result.lock_keys) == "acct:3"


def test_delete_where_exists_dirty_write_is_refused(pair: tuple[DB, DB]) -> None:
    db, _ = pair
    sql = "DELETE FROM acct WHERE EXISTS (SELECT 1 FROM flag WHERE flag.acct_id = acct.id)"
    db.phase_one([(sql, None)])
    conn = db.connect()
    conn.cursor().execute("INSERT INTO acct (id, name) VALUES (3, 'again')")
    conn.commit()
    conn.close()
    with pytest.raises(DirtyWriteError) as raised:
        db.undo()
    assert raised.value.pk == "3"
    assert [r[:2] for r in db.rows("acct")] == [(2, "beta"), (3, "again"), (4, "gamma")]


class _CommitsBetween:
    """The image cursor of a statement, with another transaction committing right after
    the before image: a row appears in the table the EXISTS subquery reads."""

    def __init__(self, cursor: Any, meanwhile: Callable[[], None]) -> None:
        self._cursor = cursor
        self._meanwhile: Callable[[], None] | None = meanwhile
        self._locking = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def execute(self, sql: str, params: Any = None) -> Any:
        self._locking = sql.endswith("FOR UPDATE")
        return self._cursor.execute(sql, params)

    def fetchall(self) -> Any:
        rows = self._cursor.fetchall()
        if self._locking and self._meanwhile is not None:
            meanwhile, self._meanwhile = self._meanwhile, None
            meanwhile()
        return rows


def test_rows_the_before_image_missed_are_refused(maria_db: DB) -> None:
    db = maria_db
    seed(db)
    original = snapshot(db)

    def flag_account_4() -> None:
        other = db.connect()
        other.cursor().execute("INSERT INTO flag VALUES (20, 4, 'x')")
        other.commit()
        other.close()

    conn = db.connect()
    db.dialect.begin(conn)
    sql = "DELETE FROM acct WHERE EXISTS (SELECT 1 FROM flag WHERE flag.acct_id = acct.id)"
    executor = StatementExecutor(db.dialect, "r")
    rec = executor.recognize(sql, has_params=False)
    aux = _CommitsBetween(db.dialect.plain_cursor(conn), flag_account_4)
    statement = Statement(conn.cursor(), aux, rec, None, TableCache(db.dialect))
    with pytest.raises(RMError, match="changed 3 rows, its before image holds 2"):
        delete_executor.execute(statement)
    conn.rollback()
    conn.close()
    assert db.rows("acct") == original[0]


# -- DELETE t FROM t1 AS t (MySQL) -----------------------------------------------------------


def test_delete_named_target_round_trip(maria_pair: tuple[DB, DB]) -> None:
    result = check(*maria_pair, "DELETE a FROM acct AS a WHERE a.qty >= %s OR a.qty IS NULL", (5,))
    assert format_lock_keys(result.lock_keys) == "acct:1,2,3"


def test_delete_named_target_schema_qualified(maria_pair: tuple[DB, DB]) -> None:
    at, twin = maria_pair
    schemas = []
    for db in (at, twin):
        conn = db.connect()
        cur = conn.cursor()
        cur.execute("SELECT DATABASE()")
        schemas.append(cur.fetchone()[0])
        conn.close()
    original = snapshot(at)
    [result] = at.phase_one([(f"DELETE acct FROM `{schemas[0]}`.acct WHERE id = %s", (4,))])
    assert format_lock_keys(result.lock_keys) == "acct:4"  # the table as stored
    plain(twin, f"DELETE acct FROM `{schemas[1]}`.acct WHERE id = %s", (4,))
    assert snapshot(at) == snapshot(twin) != original
    at.undo()
    assert snapshot(at) == original


# -- properties ------------------------------------------------------------------------------

optional_int = st.one_of(st.none(), st.integers(min_value=-5, max_value=5))
acct_rows = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=8),
        st.one_of(st.none(), st.text(alphabet="abxy", max_size=4)),
        optional_int,
        st.one_of(st.none(), st.decimals(min_value=-999, max_value=999, places=2)),
        st.one_of(st.none(), st.datetimes(min_value=T0, max_value=T1)),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda r: r[0],
)
flag_rows = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=30),
        st.integers(min_value=1, max_value=9),
        st.sampled_from(["x", "y"]),
    ),
    max_size=8,
    unique_by=lambda r: r[0],
)
CONDITIONS = {  # each takes one parameter
    "pk": "{a}id = %s",
    "range": "{a}qty >= %s",
    "exists": "EXISTS (SELECT 1 FROM flag f WHERE f.acct_id = {a}id AND f.id > %s)",
    "not-exists": "NOT EXISTS (SELECT 1 FROM flag f WHERE f.acct_id = {a}id AND f.id < %s)",
}
UPDATES = {  # each takes one parameter
    "qty": "qty = COALESCE(qty, 0) + %s",
    "name": "name = CONCAT(COALESCE(name, ''), %s)",
    "nulls": "price = NULL, at = NULL, qty = %s",
}
DELETES = {
    "plain": "DELETE FROM acct WHERE {where}",
    "named": "DELETE a FROM acct AS a WHERE {where}",
}
CASES = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
statement = st.tuples(
    st.sampled_from(sorted(CONDITIONS)), st.integers(min_value=-2, max_value=8), st.integers()
)


def _reset(pair: tuple[DB, DB], accts: Rows, flags: Rows) -> None:
    for db in pair:
        conn = db.connect()
        cur = conn.cursor()
        for table in ("acct", "flag", "undo_log"):
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        conn.commit()
        conn.close()
        seed(db, accts, flags)


def _check_property(pair: tuple[DB, DB], sql: str, params: tuple[Any, ...]) -> None:
    at, twin = pair
    original = snapshot(at)
    [result] = at.phase_one([(sql, params)])
    committed = snapshot(at)
    plain(twin, sql, params)
    assert committed == snapshot(twin)
    event(f"undo items: {len(result.undo_items)}")
    at.undo()
    assert snapshot(at) == original
    assert at.undo_rows() == []


@given(
    accts=acct_rows,
    flags=flag_rows,
    kind=st.sampled_from(["UPDATE", "DELETE"]),
    statements=st.lists(statement, min_size=1, max_size=4),
)
@CASES
def test_property_multi_statements_match_plain_and_roll_back(
    maria_pair: tuple[DB, DB],
    accts: Rows,
    flags: Rows,
    kind: str,
    statements: list[tuple[str, int, int]],
) -> None:
    _reset(maria_pair, accts, flags)
    texts: list[str] = []
    params: list[Any] = []
    for condition, bound, pick in statements:
        if kind == "UPDATE":
            assign = sorted(UPDATES)[pick % len(UPDATES)]
            where = CONDITIONS[condition].format(a="acct.")
            texts.append(f"UPDATE acct SET {UPDATES[assign]} WHERE {where}")
            params.append("z" if assign == "name" else pick % 7)
        else:
            form = sorted(DELETES)[pick % len(DELETES)]
            where = CONDITIONS[condition].format(a="a." if form == "named" else "acct.")
            texts.append(DELETES[form].format(where=where))
        params.append(bound)
    _check_property(maria_pair, "; ".join(texts), tuple(params))


@given(
    accts=acct_rows,
    flags=flag_rows,
    form=st.sampled_from(sorted(DELETES)),
    condition=st.sampled_from(["exists", "not-exists"]),
    bound=st.integers(min_value=0, max_value=31),
)
@CASES
def test_property_delete_forms_match_plain_and_roll_back(
    maria_pair: tuple[DB, DB], accts: Rows, flags: Rows, form: str, condition: str, bound: int
) -> None:
    _reset(maria_pair, accts, flags)
    where = CONDITIONS[condition].format(a="a." if form == "named" else "acct.")
    _check_property(maria_pair, DELETES[form].format(where=where), (bound,))


# -- through the proxy and the TC --------------------------------------------------------------


@pytest.fixture
def maria(mariadb_factory: MariaDBFactory) -> Database:
    """A MariaDB database behind the proxy (no CLIENT.MULTI_STATEMENTS), set up before the TC."""
    database = Database("mariadb", mariadb_factory(), "maria-statement-forms")
    database.run(
        ACCT_DDL[Dialect.MYSQL],
        FLAG_DDL,
        "INSERT INTO acct VALUES (1, 'alpha', 5, 1.50, NULL), (2, 'beta', 1, NULL, NULL),"
        " (3, 'bravo', 7, 2.25, NULL)",
        "INSERT INTO flag VALUES (10, 3, 'x')",
    )
    proxy = database.connect()
    proxy.resource.undo.ensure_table(proxy.raw)
    proxy.close()
    return database


MULTI = (
    "UPDATE acct SET qty = qty + %s WHERE id = %s; UPDATE acct SET qty = qty - %s WHERE id = %s;"
    " DELETE a FROM acct AS a WHERE EXISTS (SELECT 1 FROM flag f WHERE f.acct_id = a.id)"
)


class Boom(Exception):
    pass


def _attached() -> None:
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(10)


def test_multi_statement_through_the_proxy_commit(maria: Database, tc: TCClient) -> None:
    conn = maria.connect()
    _attached()
    cur = conn.cursor()

    @rm.global_transactional(name="statement-forms")
    def work() -> str:
        # Two ;-separated UPDATEs, then a DELETE t FROM ... WHERE EXISTS: separate executes.
        sql, delete = MULTI.rsplit(";", 1)
        cur.execute(sql, (10, 1, 1, 2))
        assert cur.rowcount == 2
        cur.execute(delete)
        conn.commit()
        return rm.require_xid()

    xid = work()
    assert maria.query("SELECT id, qty FROM acct ORDER BY id") == [(1, 15), (2, 0)]
    wait_final(tc, xid)
    wait_until(lambda: maria.undo_rows() == 0, what="undo rows deleted after commit")
    conn.close()


def test_multi_statement_through_the_proxy_rollback(maria: Database, tc: TCClient) -> None:
    before = maria.query("SELECT * FROM acct ORDER BY id")
    conn = maria.connect()
    _attached()
    xid = ""
    with pytest.raises(Boom), rm.global_transaction("statement-forms") as tx:
        xid = tx.xid or ""
        sql, delete = MULTI.rsplit(";", 1)
        conn.cursor().execute(sql, (10, 1, 1, 2))
        conn.cursor().execute(delete)
        conn.commit()
        assert maria.query("SELECT id FROM acct ORDER BY id") == [(1,), (2,)]
        raise Boom()
    wait_final(tc, xid)
    assert maria.query("SELECT * FROM acct ORDER BY id") == before
    wait_until(lambda: maria.undo_rows() == 0, what="no undo rows")
    conn.close()
