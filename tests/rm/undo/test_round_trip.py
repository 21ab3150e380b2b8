"""Undo round trips at the data layer, on SQLite and MariaDB, with the sync drivers
and with the async ones (aiosqlite, asyncmy) through atx.rm.aio's bridge."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atx.dialect import Dialect
from atx.rm.errors import DirtyWriteError
from tests.rm.dbs import DB, sqlite_db

ITEMS_DDL = {
    Dialect.SQLITE: "CREATE TABLE items (a INTEGER NOT NULL, b VARCHAR(20) NOT NULL,"
    " qty INTEGER, price DECIMAL(10,2), at DATETIME, data BLOB, PRIMARY KEY (a, b))",
    Dialect.MYSQL: "CREATE TABLE items (a INT NOT NULL, b VARCHAR(20) NOT NULL,"
    " qty INT NULL, price DECIMAL(10,2) NULL, at DATETIME(6) NULL, data BLOB NULL,"
    " PRIMARY KEY (a, b))",
}
AUTO_DDL = {
    Dialect.SQLITE: "CREATE TABLE auto (id INTEGER PRIMARY KEY, name TEXT, u INT UNIQUE)",
    Dialect.MYSQL: "CREATE TABLE auto (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20),"
    " u INT UNIQUE)",
}
INSERT = "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)"
T0 = dt.datetime(2024, 5, 6, 7, 8, 9, 123456)


@pytest.fixture
def data_db(any_db: DB) -> DB:
    return any_db


@pytest.fixture
def maria_db(any_maria_db: DB) -> DB:
    return any_maria_db


def seed(db: DB) -> None:
    at = T0 if db.dialect is Dialect.MYSQL else T0.isoformat(sep=" ")
    rows = [
        (1, "x", 5, Decimal("1.50"), at, b"\x00\xff"),
        (1, "y", None, None, None, None),
        (2, "x", 7, Decimal("10.05"), at, b"abc"),
    ]
    db.setup(ITEMS_DDL[db.dialect], rows, INSERT)


def round_trip(db: DB, statements: list[tuple[str, object]], table: str = "items") -> None:
    original = db.rows(table)
    db.phase_one(statements)
    changed = db.rows(table)
    assert changed != original
    db.undo()
    assert db.rows(table) == original
    assert db.undo_rows() == []


def test_update_round_trip(data_db: DB) -> None:
    db = data_db
    seed(db)
    round_trip(db, [("UPDATE items SET qty = qty + ?, price = ?, data = ? WHERE a = ?",
                     (1, Decimal("9.99"), b"\x01", 1))])  # fmt: skip


def test_update_order_by_limit_round_trip(data_db: DB) -> None:
    db = data_db
    seed(db)
    if db.dialect is Dialect.SQLITE:
        sql = "UPDATE items SET qty = 0 WHERE a = ? AND b = ?"
        round_trip(db, [(sql, (2, "x"))])
    else:
        round_trip(db, [("UPDATE items SET qty = 0 WHERE a >= ? ORDER BY b DESC LIMIT 1", (1,))])


def test_delete_round_trip(data_db: DB) -> None:
    db = data_db
    seed(db)
    round_trip(db, [("DELETE FROM items WHERE b = ?", ("x",))])


def test_delete_limit_round_trip_mysql(maria_db: DB) -> None:
    db = maria_db  # SQLite has no DELETE ... LIMIT by default
    seed(db)
    round_trip(db, [("DELETE FROM items ORDER BY a DESC, b LIMIT 2", None)])


def test_insert_multi_row_and_named_params(data_db: DB) -> None:
    db = data_db
    seed(db)
    named = (
        "INSERT INTO items (a, b, qty) VALUES (%(a)s, %(b)s, 1)"
        if db.dialect is Dialect.MYSQL
        else "INSERT INTO items (a, b, qty) VALUES (:a, :b, 1)"
    )
    round_trip(
        db,
        [
            ("INSERT INTO items (a, b, qty) VALUES (?, ?, 1), (?, ?, NULL), (9, 'z', 3)",
             (5, "p", 6, "q")),
            (named, {"a": 7, "b": "n"}),
        ],
    )  # fmt: skip


def test_auto_increment_insert(data_db: DB) -> None:
    db = data_db
    db.setup(AUTO_DDL[db.dialect], [("keep", 1)], "INSERT INTO auto (name, u) VALUES (?, ?)")
    results = db.phase_one(
        [
            ("INSERT INTO auto (name, u) VALUES (?, ?), (?, ?), (?, ?)", ("a", 2, "b", 3, "c", 4)),
            ("INSERT INTO auto (name) VALUES ('d')", None),
        ]
    )
    assert [k.pk for r in results for k in r.lock_keys] == ["2", "3", "4", "5"]
    db.undo()
    assert db.rows("auto") == [(1, "keep", 1)]


def test_multiple_statements_undone_in_reverse(data_db: DB) -> None:
    db = data_db
    seed(db)
    round_trip(
        db,
        [
            ("INSERT INTO items (a, b, qty) VALUES (?, ?, ?)", (3, "n", 1)),
            ("UPDATE items SET qty = 2 WHERE a = ? AND b = ?", (3, "n")),
            ("DELETE FROM items WHERE a = ?", (3,)),
            ("UPDATE items SET at = NULL WHERE a = 1", None),
        ],
    )


def test_on_duplicate_key_update_round_trip(maria_db: DB) -> None:
    db = maria_db  # ON DUPLICATE KEY UPDATE is MySQL's
    db.setup(AUTO_DDL[db.dialect], [("a", 1), ("b", 2)], "INSERT INTO auto (name, u) VALUES (?, ?)")
    sql = (
        "INSERT INTO auto (name, u) VALUES (?, ?), (?, ?)"
        " ON DUPLICATE KEY UPDATE name = VALUES(name)"
    )
    round_trip(db, [(sql, ("new", 2, "c", 9))], table="auto")


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        # one row updated (u=2 exists), one inserted; SET reads the proposed row
        (
            "INSERT INTO auto (name, u) VALUES (?, ?), (?, ?)"
            " ON CONFLICT(u) DO UPDATE SET name = excluded.name || '!'",
            ("new", 2, "c", 9),
        ),
        # DO UPDATE ... WHERE: the existing row is left alone, the new one goes in
        (
            "INSERT INTO auto (name, u) VALUES ('z', 1), ('w', 8)"
            " ON CONFLICT(u) DO UPDATE SET name = excluded.name WHERE auto.name <> 'a'",
            None,
        ),
        (
            "INSERT INTO auto (name, u) VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING",
            ("q", 1, "r", 7),
        ),
        ("INSERT OR IGNORE INTO auto (name, u) VALUES ('s', 2), ('t', 6)", None),
        ("INSERT OR ABORT INTO auto (name, u) VALUES ('p', 5)", None),
    ],
)
def test_sqlite_upserts_round_trip(tmp_path: Path, sql: str, params: object) -> None:
    db = sqlite_db(str(tmp_path / "t.db"))  # SQLite's upsert forms, imaged like ON DUPLICATE KEY
    db.setup(AUTO_DDL[db.dialect], [("a", 1), ("b", 2)], "INSERT INTO auto (name, u) VALUES (?, ?)")
    round_trip(db, [(sql, params)], table="auto")


def test_dirty_write_is_refused(data_db: DB) -> None:
    db = data_db
    seed(db)
    db.phase_one([("UPDATE items SET qty = 100 WHERE a = ? AND b = ?", (1, "x"))])
    conn = db.connect()
    conn.cursor().execute("UPDATE items SET qty = 555 WHERE a = 1 AND b = 'x'")
    conn.commit()
    conn.close()
    with pytest.raises(DirtyWriteError) as raised:
        db.undo()
    assert raised.value.table == "items" and raised.value.pk == "1_x"
    assert db.rows("items")[0][2] == 555
    assert len(db.undo_rows()) == 1


def test_anti_suspension_placeholder(data_db: DB) -> None:
    db = data_db
    seed(db)
    original = db.rows("items")
    db.undo()  # rollback arrives first
    assert [r[5] for r in db.undo_rows()] == [1]
    with pytest.raises(Exception, match=r"(?i)unique|duplicate|integrity"):
        db.phase_one([("UPDATE items SET qty = 1 WHERE a = 2", None)])
    assert db.rows("items") == original
    db.undo()  # still a no-op
    assert len(db.undo_rows()) == 1


def test_undo_is_idempotent_and_delete_removes_rows(data_db: DB) -> None:
    db = data_db
    seed(db)
    original = db.rows("items")
    db.phase_one([("DELETE FROM items WHERE a = 1", None)], xid="x:1", branch_id=1)
    db.phase_one([("UPDATE items SET qty = 0", None)], xid="x:2", branch_id=2)
    db.undo("x:1", 1)
    after_first = db.rows("items")
    db.undo("x:1", 1)  # delivered again: leaves only a finished placeholder
    assert db.rows("items") == after_first
    assert sorted((r[2], r[5]) for r in db.undo_rows()) == [("x:1", 1), ("x:2", 0)]
    conn = db.connect()
    from atx.rm.undo.log import UndoLogManager

    assert UndoLogManager(db.dialect).delete(conn, [("x:2", 2), ("x:9", 9)]) == 1
    conn.close()
    assert [r[2] for r in db.undo_rows()] == ["x:1"]
    assert db.rows("items") != original  # x:2 committed


row_strategy = st.tuples(
    st.integers(min_value=-1000, max_value=1000),
    st.text(alphabet="abcxyz", min_size=1, max_size=5),
    st.one_of(st.none(), st.integers(min_value=-(2**31), max_value=2**31 - 1)),
    st.one_of(st.none(), st.decimals(min_value=-9999, max_value=9999, places=2)),
    st.one_of(
        st.none(),
        st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1)),
    ),
    st.one_of(st.none(), st.binary(max_size=20)),
)
rows_strategy = st.lists(
    row_strategy, min_size=1, max_size=6, unique_by=lambda r: (r[0], r[1].lower())
)
CASES = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


def _fresh(db: DB, n: int) -> None:
    conn = db.connect()
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS items")
    cur.execute("DROP TABLE IF EXISTS undo_log")
    conn.commit()
    conn.close()
    db.setup(ITEMS_DDL[db.dialect])


def _adapt(db: DB, row: tuple[object, ...]) -> tuple[object, ...]:
    if db.dialect is Dialect.SQLITE:
        at = row[4]
        price = row[3]
        return (*row[:3], None if price is None else str(price),
                None if at is None else at.isoformat(sep=" "), row[5])  # type: ignore[attr-defined]  # fmt: skip
    return row


@given(rows=rows_strategy)
@CASES
def test_property_insert_update_delete(data_db: DB, rows: list[tuple[object, ...]]) -> None:
    db = data_db
    _fresh(db, len(rows))
    rows = [_adapt(db, r) for r in rows]
    half = len(rows) // 2
    conn = db.connect()
    conn.cursor().executemany(db.sql(INSERT), rows[:half])
    conn.commit()
    conn.close()
    original = db.rows("items")
    statements: list[tuple[str, object]] = [(INSERT, r) for r in rows[half:]]
    statements.append(("UPDATE items SET qty = ?, price = ?, data = ? WHERE a >= ?",
                       (rows[0][2], rows[-1][3], rows[0][5], 0)))  # fmt: skip
    statements.append(("DELETE FROM items WHERE a < ?", (0,)))
    db.phase_one(statements)
    db.undo()
    assert db.rows("items") == original


UPSERTS = {
    Dialect.MYSQL: " ON DUPLICATE KEY UPDATE qty = VALUES(qty), data = VALUES(data)",
    Dialect.SQLITE: " ON CONFLICT(a, b) DO UPDATE SET qty = excluded.qty, data = excluded.data",
}


@given(existing=rows_strategy, proposed=rows_strategy)
@CASES
def test_property_upsert(
    data_db: DB, existing: list[tuple[object, ...]], proposed: list[tuple[object, ...]]
) -> None:
    """An upsert whose rows partly hit existing keys is undone exactly (both dialects)."""
    db = data_db
    _fresh(db, len(existing))
    existing = [_adapt(db, r) for r in existing]
    conn = db.connect()
    conn.cursor().executemany(db.sql(INSERT), existing)
    conn.commit()
    conn.close()
    # Half the proposed rows take the keys of existing ones: they update, the rest insert.
    proposed = [_adapt(db, r) for r in proposed]
    taken = {(r[0], str(r[1]).lower()) for r in proposed}
    for i, row in enumerate(existing[: len(proposed) // 2]):
        if (row[0], str(row[1]).lower()) not in taken:
            proposed[i] = (row[0], row[1], *proposed[i][2:])
            taken.add((row[0], str(row[1]).lower()))
    keys = [(r[0], str(r[1]).lower()) for r in proposed]
    if len(set(keys)) != len(keys):
        return  # two proposed rows on one key: not what this property is about
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(proposed))
    sql = f"INSERT INTO items VALUES {values}" + UPSERTS[db.dialect]
    original = db.rows("items")
    db.phase_one([(sql, tuple(v for row in proposed for v in row))])
    db.undo()
    assert db.rows("items") == original
    assert db.undo_rows() == []
