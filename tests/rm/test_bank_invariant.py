"""The bank invariant: concurrent transfers across three databases, one each of
MariaDB, PostgreSQL and SQLite (with asyncio workers too, over the async proxies).

8 threads (or 8 asyncio tasks on one loop, over the async proxies) each run
ATX_BANK_TRANSFERS (default 200, as the issue asks) transfers between accounts
in two random databases; ATX_BANK_FAIL_RATE (0.2) of them fail on purpose after
both updates. Afterwards: the total is unchanged,
every account matches the log of committed transfers, and there are no undo
rows, no global locks and no active sessions.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest

import atx.rm as rm
from atx.rm.tc_client import TCClient
from atx.v1 import admin_pb2, admin_pb2_grpc
from tests.rm.conftest import database_factory, wait_until

THREADS = 8
ACCOUNTS = 50
START = 1000
KINDS = ("mariadb", "postgres", "sqlite")


class Refused(Exception):
    """A transfer that fails on purpose."""


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("workers", ["threads", "asyncio"])
def test_bank_invariant(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    mariadb_factory: object,  # set up before the TC: dropped after the RM shut down
    postgres_factory: object,
    tc_address: str,
    tc: TCClient,
    workers: str,
) -> None:
    transfers = int(os.environ.get("ATX_BANK_TRANSFERS", "200"))
    fail_rate = float(os.environ.get("ATX_BANK_FAIL_RATE", "0.2"))
    dbs = [database_factory(request, kind, tmp_path)() for kind in KINDS]
    for db in dbs:
        db.setup_accounts(ACCOUNTS, START)
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(10)

    log_lock = threading.Lock()
    committed: Counter[tuple[int, int]] = Counter()
    outcomes: Counter[str] = Counter()
    unexpected: list[BaseException] = []

    def record(outcome: str, src: int, a: int, dst: int, b: int, amount: int) -> None:
        with log_lock:
            if outcome == "committed":
                committed[(src, a)] -= amount
                committed[(dst, b)] += amount
            outcomes[outcome] += 1

    def draw(rng: random.Random) -> tuple[int, int, int, int, int, bool]:
        src, dst = rng.sample(range(3), 2)
        a, b = rng.randint(1, ACCOUNTS), rng.randint(1, ACCOUNTS)
        return src, a, dst, b, rng.randint(1, 50), rng.random() < fail_rate

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        conns = [db.connect() for db in dbs]

        @rm.global_transactional(name="transfer", lock_retry_interval=0.01, lock_retry_times=50)
        def transfer(src: int, a: int, dst: int, b: int, amount: int, fail: bool) -> None:
            for index, account, delta in ((src, a, -amount), (dst, b, amount)):
                conn = conns[index]
                conn.cursor().execute(
                    dbs[index].q("UPDATE account SET balance = balance + %s WHERE id = %s"),
                    (delta, account),
                )
                conn.commit()
            if fail:
                raise Refused()

        for _ in range(transfers):
            src, a, dst, b, amount, fail = draw(rng)
            try:
                transfer(src, a, dst, b, amount, fail)
            except Refused:
                outcome = "refused"
            except rm.GlobalLockWaitTimeout:
                outcome = "lock_timeout"
            except BaseException as error:  # anything else breaks the test
                unexpected.append(error)
                outcome = "error"
            else:
                outcome = "committed"
            record(outcome, src, a, dst, b, amount)
        for conn in conns:
            conn.close()

    async def task(seed: int) -> None:
        """The same worker as a coroutine, over the async proxies."""
        rng = random.Random(seed)
        conns = [await db.connect_async() for db in dbs]

        @rm.global_transactional(name="transfer", lock_retry_interval=0.01, lock_retry_times=50)
        async def transfer(src: int, a: int, dst: int, b: int, amount: int, fail: bool) -> None:
            for index, account, delta in ((src, a, -amount), (dst, b, amount)):
                conn = conns[index]
                async with conn.cursor() as cursor:
                    await cursor.execute(
                        dbs[index].q("UPDATE account SET balance = balance + %s WHERE id = %s"),
                        (delta, account),
                    )
                await conn.commit()
            if fail:
                raise Refused()

        for _ in range(transfers):
            src, a, dst, b, amount, fail = draw(rng)
            try:
                await transfer(src, a, dst, b, amount, fail)
            except Refused:
                outcome = "refused"
            except rm.GlobalLockWaitTimeout:
                outcome = "lock_timeout"
            except BaseException as error:  # anything else breaks the test
                unexpected.append(error)
                outcome = "error"
            else:
                outcome = "committed"
            record(outcome, src, a, dst, b, amount)
        for conn in conns:
            await conn.close()

    async def tasks() -> None:
        await asyncio.gather(*(task(seed) for seed in range(THREADS)))

    started = time.monotonic()
    if workers == "asyncio":
        asyncio.run(tasks())
    else:
        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
    elapsed = time.monotonic() - started
    assert not unexpected, unexpected[:3]
    assert sum(outcomes.values()) == THREADS * transfers
    assert outcomes["committed"] > 0

    # Phase two finishes in the background: wait for the TC and the RMs to settle.
    with grpc.insecure_channel(tc_address) as admin_channel:
        admin = admin_pb2_grpc.AdminServiceStub(admin_channel)

        def settled() -> bool:
            active = admin.ListGlobalSessions(admin_pb2.ListGlobalSessionsRequest(page_size=10))
            locks = admin.ListGlobalLocks(admin_pb2.ListGlobalLocksRequest(page_size=10))
            return (
                not active.sessions and not locks.locks and all(db.undo_rows() == 0 for db in dbs)
            )

        wait_until(settled, timeout=60, what="no sessions, no locks, no undo rows")

    total = sum(int(b) for db in dbs for _, b, _ in db.accounts())
    assert total == 3 * ACCOUNTS * START
    for index, db in enumerate(dbs):
        for account, balance, _ in db.accounts():
            assert balance == START + committed[(index, account)], (index, account)
    for db in dbs:
        keys = ",".join(str(i) for i in range(1, ACCOUNTS + 1))
        assert tc.lock_query(db.resource_id, f"account:{keys}").lockable
    print(f"bank ({workers}): {THREADS}x{transfers} transfers in {elapsed:.1f} s: {dict(outcomes)}")
