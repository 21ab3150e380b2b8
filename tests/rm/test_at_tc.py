"""The AT runtime end to end against a real TC, on SQLite, MariaDB and PostgreSQL:
proxy + undo + branch registration + phase two over the Attach stream."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import atx.rm as rm
from atx.rm.tc_client import TCClient
from atx.status import GlobalStatus
from tests.rm.conftest import Database, wait_final, wait_until


class Boom(Exception):
    pass


def _attached() -> None:
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(10)


def test_rollback_restores_insert_update_delete(db: Database, tc: TCClient) -> None:
    db.setup_accounts(3)
    before = db.accounts()
    conn = db.connect()
    _attached()
    xid = ""
    with pytest.raises(Boom), rm.global_transaction("mixed") as tx:
        xid = tx.xid or ""
        cur = conn.cursor()
        cur.execute(
            db.q("INSERT INTO account (id, balance, note) VALUES (%s, %s, %s)"), (9, 5, None)
        )
        cur.execute(
            db.q("UPDATE account SET balance = balance + %s, note = NULL WHERE id = %s"), (7, 1)
        )
        cur.execute(db.q("DELETE FROM account WHERE id = %s"), (2,))
        conn.commit()
        assert db.undo_rows() == 1
        raise Boom()
    assert wait_final(tc, xid) in (GlobalStatus.ROLLBACKED, GlobalStatus.FINISHED)
    assert db.accounts() == before
    wait_until(lambda: db.undo_rows() == 0, what="no undo rows")
    conn.close()


def test_commit_keeps_changes_and_deletes_undo_rows(db: Database, tc: TCClient) -> None:
    db.setup_accounts(2)
    conn = db.connect()
    _attached()

    @rm.global_transactional(name="pay")
    def pay() -> str:
        cur = conn.cursor()
        cur.execute(db.q("UPDATE account SET balance = balance - %s WHERE id = %s"), (30, 1))
        cur.execute(db.q("UPDATE account SET balance = balance + %s WHERE id = %s"), (30, 2))
        conn.commit()
        return rm.require_xid()

    xid = pay()
    assert db.accounts() == [(1, 70, "a1"), (2, 130, "a2")]
    wait_final(tc, xid)
    wait_until(lambda: db.undo_rows() == 0, what="undo rows deleted after commit")
    assert rm.current_xid() is None
    conn.close()


def test_dirty_write_leaves_rollback_failed(db: Database, tc: TCClient) -> None:
    db.setup_accounts(1)
    conn = db.connect()
    _attached()
    xid = ""
    with pytest.raises(Boom), rm.global_transaction("dirty") as tx:
        xid = tx.xid or ""
        conn.cursor().execute(db.q("UPDATE account SET balance = %s WHERE id = %s"), (1, 1))
        conn.commit()
        # Someone writes the row outside the global transaction, after phase one.
        db.run("UPDATE account SET balance = 555 WHERE id = 1")
        raise Boom()
    wait_until(lambda: tc.get_status(xid) == GlobalStatus.ROLLBACK_FAILED, what="RollbackFailed")
    assert db.accounts() == [(1, 555, "a1")]
    conn.close()


def test_lock_conflict_second_waits_then_succeeds(db: Database, tc: TCClient) -> None:
    db.setup_accounts(1)
    first_conn, second_conn = db.connect(), db.connect()
    _attached()
    first_done_locally = threading.Event()
    release_first = threading.Event()
    errors: list[BaseException] = []

    @rm.global_transactional(name="first")
    def first() -> None:
        first_conn.cursor().execute(
            db.q("UPDATE account SET balance = balance + 1 WHERE id = %s"), (1,)
        )
        first_conn.commit()
        first_done_locally.set()
        assert release_first.wait(20)

    @rm.global_transactional(name="second", lock_retry_interval=0.02, lock_retry_times=500)
    def second() -> None:
        second_conn.cursor().execute(
            db.q("UPDATE account SET balance = balance + 10 WHERE id = %s"), (1,)
        )
        second_conn.commit()

    def run(fn: Any) -> None:
        try:
            fn()
        except BaseException as error:
            errors.append(error)

    t1 = threading.Thread(target=run, args=(first,))
    t1.start()
    assert first_done_locally.wait(10)
    t2 = threading.Thread(target=run, args=(second,))
    t2.start()
    t2.join(0.3)
    assert t2.is_alive()  # waiting for the global lock
    release_first.set()
    t1.join(20)
    t2.join(20)
    assert not errors
    assert db.accounts() == [(1, 111, "a1")]
    first_conn.close()
    second_conn.close()


def test_lock_retries_exhausted_leave_no_change(db: Database, tc: TCClient) -> None:
    db.setup_accounts(1)
    holder, loser = db.connect(), db.connect()
    _attached()
    with rm.global_transaction("holder"):
        holder.cursor().execute(db.q("UPDATE account SET balance = 1 WHERE id = %s"), (1,))
        holder.commit()

        def contend() -> None:
            with rm.global_transaction(
                "loser", propagation="REQUIRES_NEW", lock_retry_interval=0.01, lock_retry_times=3
            ):
                loser.cursor().execute(
                    db.q("UPDATE account SET balance = 2, note = 'x' WHERE id = %s"), (1,)
                )
                loser.commit()

        thread_errors: list[BaseException] = []

        def run() -> None:
            try:
                contend()
            except BaseException as error:
                thread_errors.append(error)

        t = threading.Thread(target=run)
        t.start()
        t.join(20)
        assert len(thread_errors) == 1
        assert isinstance(thread_errors[0], rm.GlobalLockWaitTimeout)
        assert db.accounts() == [(1, 1, "a1")]
    assert db.accounts() == [(1, 1, "a1")]
    holder.close()
    loser.close()


def test_global_lock_fails_or_waits_never_overwrites(db: Database, tc: TCClient) -> None:
    db.setup_accounts(1)
    holder, local = db.connect(), db.connect()
    _attached()

    @rm.global_lock(lock_retry_interval=0.01, lock_retry_times=3)
    def impatient() -> None:
        local.cursor().execute(db.q("UPDATE account SET note = 'local' WHERE id = %s"), (1,))
        local.commit()

    @rm.global_lock(lock_retry_interval=0.02, lock_retry_times=500)
    def patient() -> None:
        local.cursor().execute(db.q("UPDATE account SET note = 'patient' WHERE id = %s"), (1,))
        local.commit()

    release = threading.Event()
    locked = threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with rm.global_transaction("holder"):
                holder.cursor().execute(db.q("UPDATE account SET balance = 7 WHERE id = %s"), (1,))
                holder.commit()
                locked.set()
                assert release.wait(20)
        except BaseException as error:
            errors.append(error)

    t = threading.Thread(target=hold)
    t.start()
    assert locked.wait(10)
    with pytest.raises(rm.GlobalLockWaitTimeout):
        impatient()
    assert db.accounts() == [(1, 7, "a1")]
    waiter = threading.Thread(target=patient)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()
    release.set()
    t.join(20)
    waiter.join(20)
    assert not errors
    assert db.accounts() == [(1, 7, "patient")]
    holder.close()
    local.close()


def test_ddl_is_refused_inside_a_global_transaction(db: Database, tc: TCClient) -> None:
    db.setup_accounts(1)
    conn = db.connect()
    with pytest.raises(rm.DDLInGlobalTransactionError), rm.global_transaction("ddl"):
        conn.cursor().execute("CREATE TABLE nope (id INT PRIMARY KEY)")
    conn.rollback()
    conn.cursor().execute("CREATE TABLE fine (id INT PRIMARY KEY)")  # outside: passes through
    conn.commit()
    conn.close()


def test_timeout_at_commit_rolls_back(db: Database, tc: TCClient) -> None:
    db.setup_accounts(1)
    conn = db.connect()
    _attached()
    import time

    with pytest.raises(rm.TransactionTimeoutError), rm.global_transaction("slow", timeout=0.3):
        conn.cursor().execute(db.q("UPDATE account SET balance = 0 WHERE id = %s"), (1,))
        conn.commit()
        time.sleep(0.5)
    wait_until(lambda: db.accounts() == [(1, 100, "a1")], what="rolled back")
    conn.close()


def test_nested_required_joins_and_hooks_fire_once(db: Database, tc: TCClient) -> None:
    from atx.hooks import TransactionHookBase, register_hook

    db.setup_accounts(2)
    conn = db.connect()
    _attached()
    events: list[str] = []

    class Recorder(TransactionHookBase):
        def before_commit(self, xid: str) -> None:
            events.append("before_commit")

        def after_commit(self, xid: str) -> None:
            events.append("after_commit")

        def after_completion(self, xid: str, status: GlobalStatus) -> None:
            events.append(f"completion:{status.name}")

    @rm.global_transactional
    def inner() -> str:
        register_hook(Recorder())
        conn.cursor().execute(db.q("UPDATE account SET balance = 1 WHERE id = %s"), (2,))
        return rm.require_xid()

    @rm.global_transactional
    def outer() -> tuple[str, str]:
        conn.cursor().execute(db.q("UPDATE account SET balance = 1 WHERE id = %s"), (1,))
        joined = inner()
        conn.commit()
        return rm.require_xid(), joined

    outer_xid, inner_xid = outer()
    assert outer_xid == inner_xid
    assert events[:2] == ["before_commit", "after_commit"]
    assert events[2].startswith("completion:")
    assert [r[1] for r in db.accounts()] == [1, 1]
    conn.close()


def test_select_for_update_checks_global_locks(server_db: Database, tc: TCClient) -> None:
    db = server_db
    db.setup_accounts(2)
    holder, reader = db.connect(), db.connect()
    _attached()
    with rm.global_transaction("holder"):
        holder.cursor().execute("UPDATE account SET balance = 3 WHERE id = %s", (1,))
        holder.commit()
        results: list[object] = []

        def read() -> None:
            try:
                with rm.global_transaction(
                    "reader", propagation="REQUIRES_NEW", lock_retry_times=3
                ):
                    cursor = reader.cursor()
                    cursor.execute("SELECT balance FROM account WHERE id = %s FOR UPDATE", (2,))
                    results.append(cursor.fetchall())
                    cursor.execute("SELECT balance FROM account WHERE id = %s FOR UPDATE", (1,))
                    results.append(cursor.fetchall())
            except BaseException as error:
                results.append(error)

        t = threading.Thread(target=read)
        t.start()
        t.join(20)
        assert [tuple(row) for row in results[0]] == [(100,)]  # type: ignore[attr-defined]
        assert isinstance(results[1], rm.GlobalLockWaitTimeout)
    holder.close()
    reader.close()


def test_two_spellings_of_one_table_share_lock_keys(db: Database, tc: TCClient) -> None:
    """``account``, ``ACCOUNT`` (SQLite ignores case) and ``<schema>.account`` are one
    table: a global lock taken through one spelling holds against the others."""
    db.setup_accounts(1)
    schema = {"sqlite": "main", "postgres": "public"}.get(db.kind, db.location.rsplit("/", 1)[1])
    # SQLite ignores case; PostgreSQL folds unquoted names to lower case.
    spellings = [f"{schema}.account"] + (["ACCOUNT"] if db.kind != "mariadb" else [])
    holder, other = db.connect(), db.connect()
    _attached()
    with rm.global_transaction("holder"):
        holder.cursor().execute(db.q("UPDATE account SET balance = 1 WHERE id = %s"), (1,))
        holder.commit()
        # The key is the stored name, without the connection's own schema.
        assert not tc.lock_query(db.resource_id, "account:1").lockable
        for table in spellings:

            def contend(table: str = table) -> None:
                with rm.global_transaction(
                    "other", propagation="REQUIRES_NEW", lock_retry_interval=0.01,
                    lock_retry_times=3,
                ):  # fmt: skip
                    other.cursor().execute(
                        db.q(f"UPDATE {table} SET balance = 2 WHERE id = %s"), (1,)
                    )
                    other.commit()

            errors: list[BaseException] = []
            thread = threading.Thread(target=_capture, args=(contend, errors))
            thread.start()
            thread.join(20)
            assert len(errors) == 1 and isinstance(errors[0], rm.GlobalLockWaitTimeout), table
    assert db.accounts() == [(1, 1, "a1")]
    holder.close()
    other.close()


def _capture(run: Any, errors: list[BaseException]) -> None:
    try:
        run()
    except BaseException as error:
        errors.append(error)


def test_autocommit_statement_is_its_own_branch(server_db: Database, tc: TCClient) -> None:
    """On an autocommit connection each statement commits as a branch of its own (psycopg:
    the RM opens the transaction by hand) and the global rollback still undoes it."""
    db = server_db
    db.setup_accounts(2)
    connect = rm.connect_postgres if db.kind == "postgres" else rm.connect_mysql
    conn = connect(db.location, resource_id=db.resource_id, autocommit=True)
    _attached()
    with pytest.raises(Boom), rm.global_transaction("autocommit"):
        conn.cursor().execute("UPDATE account SET balance = 1 WHERE id = %s", (1,))
        conn.cursor().execute("UPDATE account SET balance = 2 WHERE id = %s", (2,))
        assert db.undo_rows() == 2  # committed, one undo row per statement
        raise Boom()
    restored = [(1, 100, "a1"), (2, 100, "a2")]
    wait_until(lambda: db.accounts() == restored and db.undo_rows() == 0, what="undone")
    conn.close()


def test_psycopg_transaction_block_is_the_branch(postgres_url: str, tc: TCClient) -> None:
    """``with conn.transaction():`` inside a global transaction commits as the branch
    (psycopg's own block would commit behind it) and is undone by the global rollback."""
    db = Database("postgres", postgres_url, "pg-block")
    db.setup_accounts(2)
    conn = db.connect()
    _attached()
    with pytest.raises(Boom), rm.global_transaction("block"):
        with conn.transaction():
            conn.execute("UPDATE account SET balance = 7 WHERE id = %s", (1,))
        assert db.undo_rows() == 1  # committed as a branch
        conn.execute("UPDATE account SET balance = 8 WHERE id = %s", (2,))
        with pytest.raises(rm.RMError, match="cannot nest"), conn.transaction():
            pass
        # COPY ... FROM loads rows the RM cannot image: refused before it runs.
        with pytest.raises(rm.UnsupportedSQLError, match="COPY"):
            conn.cursor().copy("COPY account (id, balance) FROM STDIN")
        with pytest.raises(rm.UnsupportedSQLError, match="COPY"):
            conn.execute("COPY account FROM '/nonexistent'")
        conn.rollback()
        raise Boom()
    restored = [(1, 100, "a1"), (2, 100, "a2")]
    wait_until(lambda: db.accounts() == restored and db.undo_rows() == 0, what="undone")
    with conn.transaction():  # outside: psycopg's own
        conn.execute("UPDATE account SET balance = 9 WHERE id = 1")
    assert db.accounts()[0] == (1, 9, "a1")
    conn.close()
