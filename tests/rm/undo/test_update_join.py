"""MySQL multi-table UPDATE (UPDATE ... JOIN, UPDATE a, b) round trips on MariaDB."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import atx.rm as rm
from atx.rm.errors import DirtyWriteError
from atx.rm.tc_client import TCClient
from atx.rm.types import ExecutionResult, format_lock_keys
from tests.conftest import MariaDBFactory
from tests.rm.conftest import Database, wait_final, wait_until
from tests.rm.dbs import DB

PARENT_DDL = (
    "CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(20) NULL,"
    " total DECIMAL(10,2) NULL, at DATETIME(6) NULL, flag INT NULL)"
)
CHILD_DDL = (
    "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT NOT NULL, qty INT NULL,"
    " price DECIMAL(10,2) NULL, at DATETIME(6) NULL)"
)
REGION_DDL = "CREATE TABLE region (id INT PRIMARY KEY, code VARCHAR(5) NOT NULL)"
T0 = dt.datetime(2024, 5, 6, 7, 8, 9, 123456)
T1 = dt.datetime(2031, 1, 2, 3, 4, 5, 654321)
PARENTS = [
    (1, "alpha", Decimal("10.50"), T0, None),
    (2, "beta", None, None, 3),
    (3, "gamma", Decimal("-1.25"), T0, 1),  # no child
]
CHILDREN = [
    (10, 1, 5, Decimal("1.10"), T0),
    (11, 1, None, None, None),
    (12, 2, 7, Decimal("2.20"), T0),
    (13, 9, 1, Decimal("3.30"), None),  # orphan
]


def seed(db: DB) -> None:
    db.setup(PARENT_DDL, PARENTS, "INSERT INTO parent VALUES (?, ?, ?, ?, ?)")
    db.setup(CHILD_DDL, CHILDREN, "INSERT INTO child VALUES (?, ?, ?, ?, ?)")


def snapshot(db: DB) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return db.rows("parent"), db.rows("child")


def round_trip(db: DB, sql: str, params: object) -> ExecutionResult:
    """Phase one, check something changed, roll back, check the exact prior contents."""
    original = snapshot(db)
    [result] = db.phase_one([(sql, params)])
    assert snapshot(db) != original
    db.undo()
    assert snapshot(db) == original
    assert db.undo_rows() == []
    return result


def tables(result: ExecutionResult) -> list[str]:
    return [item.table for item in result.undo_items]


def test_join_updates_both_tables_and_rolls_back(maria_db: DB) -> None:
    db = maria_db
    seed(db)
    sql = (
        "UPDATE parent AS p JOIN child c ON c.parent_id = p.id"
        " SET p.total = c.price * 2, p.at = NULL, p.flag = ?, c.qty = NULL, c.at = ?"
        " WHERE p.id = ?"
    )
    result = round_trip(db, sql, (42, T1, 2))
    assert tables(result) == ["parent", "child"]
    assert format_lock_keys(result.lock_keys) == "parent:2;child:12"
    assert result.undo_items[0].after.rows[0][1:] == ("beta", Decimal("4.40"), None, 42)


def test_unqualified_set_columns_go_to_the_table_that_has_them(maria_db: DB) -> None:
    db = maria_db
    seed(db)
    # ``name``/``flag`` are parent's only, ``qty`` child's only: MySQL places them, so do we.
    sql = (
        "UPDATE parent p JOIN child c ON c.parent_id = p.id"
        " SET name = 'renamed', qty = 0, c.price = NULL WHERE p.id = ?"
    )
    result = round_trip(db, sql, (1,))
    assert sorted(tables(result)) == ["child", "parent"]
    assert format_lock_keys(result.lock_keys) in ("parent:1;child:10,11", "child:10,11;parent:1")
    # Only unqualified columns, one table: still imaged and locked.
    result = round_trip(db, "UPDATE parent p, child c SET flag = 7 WHERE c.parent_id = p.id", None)
    assert tables(result) == ["parent"]
    assert format_lock_keys(result.lock_keys) == "parent:1,2"


def test_one_to_many_join_is_deduplicated(maria_db: DB) -> None:
    db = maria_db
    seed(db)
    sql = (
        "UPDATE parent p INNER JOIN child c ON c.parent_id = p.id"
        " SET p.flag = COALESCE(p.flag, 0) + 1, p.name = NULL, c.price = 9.99 WHERE p.id = 1"
    )
    result = round_trip(db, sql, None)
    parent_item, child_item = result.undo_items
    assert parent_item.before.pks() == [(1,)] and parent_item.after.pks() == [(1,)]
    assert sorted(child_item.before.pks()) == [(10,), (11,)]
    assert format_lock_keys(result.lock_keys) == "parent:1;child:10,11"


def test_comma_form_round_trip(maria_db: DB) -> None:
    db = maria_db
    seed(db)
    sql = (
        "UPDATE parent p, child c SET p.at = c.at, c.price = NULL, c.qty = c.qty * 3"
        " WHERE p.id = c.parent_id AND p.id <= ?"
    )
    result = round_trip(db, sql, (2,))
    assert format_lock_keys(result.lock_keys) == "parent:1,2;child:10,11,12"


def test_unaliased_qualified_tables_and_self_join(maria_db: DB) -> None:
    db = maria_db
    seed(db)
    conn = db.connect()
    cur = conn.cursor()
    cur.execute("SELECT DATABASE()")
    schema = cur.fetchone()[0]
    conn.close()
    # Unaliased, schema-qualified target; ``q`` reads parent again (not imaged).
    sql = (
        f"UPDATE `{schema}`.parent JOIN child ON child.parent_id = parent.id"
        " JOIN parent q ON q.id = child.parent_id"
        " SET parent.flag = q.id * 10, child.qty = NULL WHERE parent.id = ?"
    )
    result = round_trip(db, sql, (1,))
    # Lock keys name the table as stored, without the connection's own schema.
    assert format_lock_keys(result.lock_keys) == "parent:1;child:10,11"


def test_only_assigned_table_is_imaged_and_locked(maria_db: DB) -> None:
    db = maria_db
    seed(db)
    sql = (
        "UPDATE parent p JOIN child c ON c.parent_id = p.id"
        " SET c.qty = COALESCE(c.qty, 0) + 1 WHERE p.name LIKE 'al%%'"
    )
    result = round_trip(db, sql, ())
    assert tables(result) == ["child"]
    assert {key.table for key in result.lock_keys} == {"child"}
    assert format_lock_keys(result.lock_keys) == "child:10,11"


def test_several_joins_left_join_and_read_only_table(maria_db: DB) -> None:
    db = maria_db
    seed(db)
    db.setup(REGION_DDL, [(1, "eu"), (2, "us")], "INSERT INTO region VALUES (?, ?)")
    # Parent 3 has no child: its LEFT JOIN row carries NULLs for c (no child image row).
    sql = (
        "UPDATE parent p LEFT JOIN child c ON c.parent_id = p.id"
        " JOIN region r ON r.id = LEAST(p.id, 2)"
        " SET p.name = r.code, c.at = ? WHERE r.code IN ('eu', 'us')"
    )
    result = round_trip(db, sql, (T1,))
    assert format_lock_keys(result.lock_keys) == "parent:1,2,3;child:10,11,12"
    assert db.rows("region") == [(1, "eu"), (2, "us")]


@pytest.mark.parametrize("named", [False, True], ids=["positional", "named"])
def test_parameters_in_on_set_and_where(maria_db: DB, named: bool) -> None:
    db = maria_db
    seed(db)
    if named:
        sql = (
            "UPDATE parent p JOIN child c ON c.parent_id = p.id AND c.qty >= %(min)s"
            " SET p.name = %(name)s, c.price = %(price)s"
            " WHERE p.id <= %(top)s AND p.name LIKE '%%a'"
        )
        params: object = {"min": 6, "name": "renamed", "price": Decimal("0.01"), "top": 2}
    else:
        sql = (
            "UPDATE parent p JOIN child c ON c.parent_id = p.id AND c.qty >= %s"
            " SET p.name = %s, c.price = %s WHERE p.id <= %s AND p.name LIKE '%%a'"
        )
        params = (6, "renamed", Decimal("0.01"), 2)
    result = round_trip(db, sql, params)
    # Only child 12 (qty 7) joins parent 2 ("beta").
    assert format_lock_keys(result.lock_keys) == "parent:2;child:12"


def test_dirty_write_on_one_table_refuses_rollback(maria_db: DB) -> None:
    db = maria_db
    seed(db)
    sql = "UPDATE parent p JOIN child c ON c.parent_id = p.id SET p.flag = 100, c.qty = 200"
    db.phase_one([(sql, None)])
    changed = snapshot(db)
    conn = db.connect()
    conn.cursor().execute("UPDATE parent SET flag = 555 WHERE id = 2")
    conn.commit()
    conn.close()
    with pytest.raises(DirtyWriteError) as raised:
        db.undo()
    assert raised.value.table == "parent" and raised.value.pk == "2"
    # The child table (undone first, in reverse order) is left as phase one wrote it.
    assert db.rows("child") == changed[1]
    assert db.rows("parent")[1][4] == 555
    assert len(db.undo_rows()) == 1


# -- property ------------------------------------------------------------------------------

optional_decimal = st.one_of(st.none(), st.decimals(min_value=-9999, max_value=9999, places=2))
optional_time = st.one_of(
    st.none(), st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1))
)
optional_int = st.one_of(st.none(), st.integers(min_value=-1000, max_value=1000))
parent_rows = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=5),
        st.one_of(st.none(), st.text(alphabet="abcxyz", max_size=5)),
        optional_decimal,
        optional_time,
        optional_int,
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda r: r[0],
)
child_rows = st.lists(
    st.tuples(
        st.integers(min_value=10, max_value=30),
        st.integers(min_value=0, max_value=6),  # which parent (6: none, an orphan)
        optional_int,
        optional_decimal,
        optional_time,
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda r: r[0],
)
JOINS = {
    "join": "parent p JOIN child c ON c.parent_id = p.id",
    "left": "parent p LEFT JOIN child c ON c.parent_id = p.id",
    "comma": "parent p, child c",
}
ASSIGN = {
    "parent": "p.total = ?, p.at = ?, p.flag = c.qty",
    "child": "c.price = ?, c.at = ?, c.qty = p.flag",
    "both": "p.total = ?, p.at = c.at, c.price = p.total, c.at = ?, c.qty = NULL",
}
CASES = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


@given(
    parents=parent_rows,
    children=child_rows,
    join=st.sampled_from(sorted(JOINS)),
    assign=st.sampled_from(sorted(ASSIGN)),
    value=optional_decimal,
    when=optional_time,
    bound=st.integers(min_value=0, max_value=5),
)
@CASES
def test_property_update_join_restores_exactly(
    maria_db: DB,
    parents: list[tuple[Any, ...]],
    children: list[tuple[Any, ...]],
    join: str,
    assign: str,
    value: Decimal | None,
    when: dt.datetime | None,
    bound: int,
) -> None:
    db = maria_db
    conn = db.connect()
    cur = conn.cursor()
    for table in ("parent", "child", "undo_log"):
        cur.execute(f"DROP TABLE IF EXISTS {table}")
    conn.commit()
    conn.close()
    db.setup(PARENT_DDL, parents, "INSERT INTO parent VALUES (?, ?, ?, ?, ?)")
    ids = sorted(int(p[0]) for p in parents)
    linked = [(c[0], ids[c[1] % len(ids)] if c[1] != 6 else 99, *c[2:]) for c in children]
    db.setup(CHILD_DDL, linked, "INSERT INTO child VALUES (?, ?, ?, ?, ?)")
    bound = ids[min(bound, len(ids) - 1)]
    original = snapshot(db)
    where = "p.id <= ?" + (" AND p.id = c.parent_id" if join == "comma" else "")
    sql = f"UPDATE {JOINS[join]} SET {ASSIGN[assign]} WHERE {where}"
    [result] = db.phase_one([(sql, (value, when, bound))])
    expected = {"parent": ["parent"], "child": ["child"], "both": ["parent", "child"]}[assign]
    assert set(tables(result)) <= set(expected)
    event(f"undo items: {len(result.undo_items)}")
    db.undo()
    assert snapshot(db) == original
    assert db.undo_rows() == []


# -- through the TC ------------------------------------------------------------------------


@pytest.fixture
def maria(mariadb_factory: MariaDBFactory) -> Database:
    """A MariaDB database behind the proxy, set up before the TC (torn down after it)."""
    url = mariadb_factory()
    database = Database("mariadb", url, "maria-update-join")
    database.run(PARENT_DDL, CHILD_DDL)
    database.run(
        "INSERT INTO parent VALUES (1, 'alpha', 10.50, '2024-05-06 07:08:09.123456', NULL),"
        " (2, 'beta', NULL, NULL, 3)",
        "INSERT INTO child VALUES (10, 1, 5, 1.10, NULL), (11, 1, NULL, NULL, NULL),"
        " (12, 2, 7, 2.20, '2024-05-06 07:08:09.123456')",
    )
    proxy = database.connect()
    proxy.resource.undo.ensure_table(proxy.raw)
    proxy.close()
    return database


JOIN_UPDATE = (
    "UPDATE parent p JOIN child c ON c.parent_id = p.id"
    " SET p.total = COALESCE(p.total, 0) + %s, c.qty = COALESCE(c.qty, 0) + %s WHERE p.id >= %s"
)


def _attached() -> None:
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(10)


def _both(database: Database) -> list[list[tuple[Any, ...]]]:
    return [database.query(f"SELECT * FROM {t} ORDER BY id") for t in ("parent", "child")]


def test_commit_through_tc_keeps_changes_and_deletes_undo_rows(
    maria: Database, tc: TCClient
) -> None:
    conn = maria.connect()
    _attached()

    @rm.global_transactional(name="update-join")
    def work() -> str:
        conn.cursor().execute(JOIN_UPDATE, (Decimal("1.00"), 1, 1))
        conn.commit()
        return rm.require_xid()

    xid = work()
    parents, children = _both(maria)
    assert [r[2] for r in parents] == [Decimal("11.50"), Decimal("1.00")]
    assert [r[2] for r in children] == [6, 1, 8]
    wait_final(tc, xid)
    wait_until(lambda: maria.undo_rows() == 0, what="undo rows deleted after commit")
    conn.close()


class Boom(Exception):
    pass


def test_rollback_through_tc_restores_both_tables(maria: Database, tc: TCClient) -> None:
    before = _both(maria)
    conn = maria.connect()
    _attached()
    xid = ""
    with pytest.raises(Boom), rm.global_transaction("update-join") as tx:
        xid = tx.xid or ""
        conn.cursor().execute(JOIN_UPDATE, (Decimal("1.00"), 1, 1))
        conn.commit()
        assert maria.undo_rows() == 1
        raise Boom()
    wait_final(tc, xid)
    assert _both(maria) == before
    wait_until(lambda: maria.undo_rows() == 0, what="no undo rows")
    conn.close()
