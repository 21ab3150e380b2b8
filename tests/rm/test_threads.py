"""Threaded programs: a pool of proxies per thread works; one proxy shared at once is refused."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import atx.rm as rm
from atx.rm.tc_client import TCClient
from tests.rm.conftest import Database, wait_until

THREADS = 8
PER_THREAD = 50


def test_pool_serves_threads_running_global_transactions(server_db: Database, tc: TCClient) -> None:
    db = server_db
    db.setup_accounts(THREADS, balance=1000)
    pool = rm.pool(db.location, resource_id=db.resource_id, size=THREADS, max_overflow=0)
    runtime = rm.ensure_runtime()
    assert runtime is not None and runtime.wait_connected(10)

    @rm.global_transactional(name="pooled-transfer")
    def transfer(source: int, target: int) -> None:
        conn = pool.connect()  # one pooled proxy for this transaction, this thread
        try:
            # Rows in id order, as any application avoids local deadlocks.
            changes = sorted([(source, -1), (target, 1)])
            with conn.cursor() as cur:
                for row, delta in changes:
                    cur.execute(
                        "UPDATE account SET balance = balance + %s WHERE id = %s", (delta, row)
                    )
            conn.commit()
        finally:
            conn.close()  # back to the pool

    def worker(index: int) -> int:
        done = 0
        for n in range(PER_THREAD):
            transfer(index + 1, (index + n) % THREADS + 1)
            done += 1
        return done

    with ThreadPoolExecutor(THREADS) as executor:
        assert sum(executor.map(worker, range(THREADS))) == THREADS * PER_THREAD
    rows = db.accounts()
    assert sum(balance for _, balance, _ in rows) == THREADS * 1000
    runtime.drain(30)
    wait_until(lambda: db.undo_rows() == 0, 60, "undo rows deleted")
    pool.dispose()


def test_a_proxy_used_by_two_threads_at_once_is_refused(mariadb_url: str, tc: TCClient) -> None:
    db = Database("mariadb", mariadb_url, "maria-shared")
    db.setup_accounts(2)
    conn = db.connect()
    inside = threading.Event()
    outcome: dict[str, object] = {}

    def slow_statement() -> None:
        with conn.cursor() as cur:
            inside.set()
            cur.execute("SELECT SLEEP(1), COUNT(*) FROM account")
            outcome["first"] = cur.fetchone()

    first = threading.Thread(target=slow_statement)
    first.start()
    assert inside.wait(5)
    time.sleep(0.2)  # the first thread is now inside execute, waiting for the server
    with pytest.raises(rm.InvalidUsageError, match="in use by another thread"):
        conn.cursor().execute("UPDATE account SET balance = 0 WHERE id = 1")
    with pytest.raises(rm.InvalidUsageError):
        conn.commit()
    first.join(10)
    assert outcome["first"] == (0, 2)
    conn.commit()
    # Nothing reached the driver from the second thread: the connection is intact.
    with conn.cursor() as cur:
        cur.execute("SELECT balance FROM account ORDER BY id")
        assert cur.fetchall() == ((100,), (100,))
    conn.close()


def test_a_branch_is_not_joined_by_a_second_thread(mariadb_url: str, tc: TCClient) -> None:
    db = Database("mariadb", mariadb_url, "maria-shared-branch")
    db.setup_accounts(2)
    conn = db.connect()
    entered, release = threading.Event(), threading.Event()
    refused: list[BaseException] = []

    @rm.global_transactional(name="shared-branch")
    def hold() -> None:
        with conn.cursor() as cur:
            cur.execute("UPDATE account SET balance = balance - 5 WHERE id = 1")
        entered.set()
        release.wait(10)
        conn.commit()

    @rm.global_transactional(name="intruder")
    def intrude() -> None:
        try:
            with conn.cursor() as cur:
                # The first thread is parked between statements, not inside one: the
                # guard lets this through to the branch, which refuses another XID's work.
                cur.execute("UPDATE account SET balance = balance + 5 WHERE id = 2")
        except rm.RMError as error:
            refused.append(error)
            raise

    first = threading.Thread(target=hold)
    first.start()
    assert entered.wait(10)
    with pytest.raises(rm.RMError):
        intrude()
    release.set()
    first.join(20)
    assert refused and "holds uncommitted work" in str(refused[0])
    wait_until(lambda: db.accounts()[0][1] == 95 and db.undo_rows() == 0, 30, "first committed")
    assert db.accounts()[1][1] == 100
    conn.close()
