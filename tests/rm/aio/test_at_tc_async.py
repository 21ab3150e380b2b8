"""The asyncio RM end to end against a real TC, on SQLite (aiosqlite), MariaDB
(asyncmy) and PostgreSQL (psycopg's AsyncConnection): rollback, dirty write, lock
conflicts, ``@global_lock`` and anti-suspension through the async proxies, with phase
two applied by the RM's handler over the resources' async connection factories."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

import atx.rm as rm
import atx.rm.aio.proxy as aio_proxy
from atx.rm.aio.bridge import await_only
from atx.rm.aio.tc_client import bridged_tc
from atx.rm.launched import BeginSpec
from atx.rm.tc_client import TCClient
from atx.status import GlobalStatus
from tests.rm.conftest import Database, wait_final, wait_until


class Boom(Exception):
    pass


@dataclass
class Account:
    id: int
    balance: int
    note: str | None


def _attached() -> None:
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(10)


def test_rollback_restores_and_commit_keeps(db: Database, tc: TCClient) -> None:
    db.setup_accounts(3)
    before = db.accounts()
    _attached()

    async def main() -> tuple[str, str]:
        conn = await db.connect_async()
        xid = ""
        with pytest.raises(Boom):
            async with rm.global_transaction("undo-all") as tx:
                xid = tx.xid or ""
                async with conn.cursor() as cur:
                    await cur.execute(
                        db.q("INSERT INTO account (id, balance, note) VALUES (%s, %s, %s)"),
                        (9, 5, None),
                    )
                    await cur.execute(
                        db.q(
                            "UPDATE account SET balance = balance + %s, note = NULL WHERE id = %s"
                        ),
                        (7, 1),
                    )
                    assert cur.rowcount == 1
                    await cur.execute(db.q("DELETE FROM account WHERE id = %s"), (2,))
                await conn.commit()
                assert db.undo_rows() == 1
                raise Boom()

        @rm.global_transactional(name="pay")
        async def pay() -> str:
            async with conn.cursor() as cur:
                await cur.execute(db.q("UPDATE account SET balance = balance - 30 WHERE id = 3"))
            await conn.commit()
            return rm.require_xid()

        paid = await pay()
        await conn.close()
        return xid, paid

    rolled_back, paid = asyncio.run(main())
    assert wait_final(tc, rolled_back) in (GlobalStatus.ROLLBACKED, GlobalStatus.FINISHED)
    wait_final(tc, paid)
    assert db.accounts() == [*before[:2], (3, 70, "a3")]
    wait_until(lambda: db.undo_rows() == 0, what="no undo rows")


def test_dirty_write_leaves_rollback_failed(db: Database, tc: TCClient) -> None:
    db.setup_accounts(1)
    _attached()

    async def main() -> str:
        conn = await db.connect_async()
        xid = ""
        with pytest.raises(Boom):
            async with rm.global_transaction("dirty") as tx:
                xid = tx.xid or ""
                async with conn.cursor() as cur:
                    await cur.execute(db.q("UPDATE account SET balance = %s WHERE id = %s"), (1, 1))
                await conn.commit()
                db.run("UPDATE account SET balance = 555 WHERE id = 1")  # a write outside
                raise Boom()
        await conn.close()
        return xid

    xid = asyncio.run(main())
    wait_until(lambda: tc.get_status(xid) == GlobalStatus.ROLLBACK_FAILED, what="RollbackFailed")
    assert db.accounts() == [(1, 555, "a1")]


def test_lock_conflict_times_out_then_waits(db: Database, tc: TCClient) -> None:
    """A second transaction (and a ``@global_lock`` writer) retry while the first holds
    the row's global lock: out of retries they fail and change nothing; a patient one
    waits, on the same loop, until the holder ends."""
    db.setup_accounts(1)
    _attached()

    async def main() -> None:
        holder, loser, local = [await db.connect_async() for _ in range(3)]
        locked, release = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with rm.global_transaction("holder"):
                async with holder.cursor() as cur:
                    await cur.execute(db.q("UPDATE account SET balance = 7 WHERE id = %s"), (1,))
                await holder.commit()
                locked.set()
                await release.wait()

        @rm.global_transactional(name="loser", lock_retry_interval=0.01, lock_retry_times=3)
        async def contend() -> None:
            async with loser.cursor() as cur:
                await cur.execute(db.q("UPDATE account SET balance = 2 WHERE id = %s"), (1,))
            await loser.commit()

        @rm.global_lock(lock_retry_interval=0.01, lock_retry_times=3)
        async def impatient() -> None:
            async with local.cursor() as cur:
                await cur.execute(db.q("UPDATE account SET note = 'local' WHERE id = %s"), (1,))
            await local.commit()

        @rm.global_lock(lock_retry_interval=0.02, lock_retry_times=500)
        async def patient() -> None:
            async with local.cursor() as cur:
                await cur.execute(db.q("UPDATE account SET note = 'patient' WHERE id = %s"), (1,))
            await local.commit()

        holding = asyncio.create_task(hold())
        await asyncio.wait_for(locked.wait(), 10)
        with pytest.raises(rm.GlobalLockWaitTimeout):
            await contend()
        with pytest.raises(rm.GlobalLockWaitTimeout):
            await impatient()
        assert db.accounts() == [(1, 7, "a1")]
        waiting = asyncio.create_task(patient())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # retrying, while this coroutine runs
        release.set()
        await asyncio.wait_for(holding, 20)
        await asyncio.wait_for(waiting, 20)
        for conn in (holder, loser, local):
            await conn.close()

    asyncio.run(main())
    assert db.accounts() == [(1, 7, "patient")]


class _RollbackRacesRegistration:
    """The bridged TC client; right after registering, the global transaction is
    rolled back (a real Rollback RPC) before the local commit can run."""

    def __getattr__(self, name: str) -> Any:
        return getattr(bridged_tc, name)

    def branch_register(
        self,
        xid: str,
        resource_id: str,
        lock_keys: str,
        *,
        lock_wait_ms: int = 0,
        begin: BeginSpec | None = None,
    ) -> int:
        branch_id = bridged_tc.branch_register(
            xid, resource_id, lock_keys, lock_wait_ms=lock_wait_ms, begin=begin
        )
        client = rm.aio.get_aio_tc_client()
        await_only(client.rollback(xid))
        return branch_id


def test_late_local_commit_fails_after_rollback(
    mariadb_url: str, tc: TCClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncmy.errors

    db = Database("mariadb", mariadb_url, "maria-aio-suspend")
    db.setup_accounts(1)
    _attached()
    monkeypatch.setattr(aio_proxy, "_bridged_tc", lambda: _RollbackRacesRegistration())

    async def main() -> str:
        conn = await db.connect_async()
        xid = ""
        with pytest.raises(asyncmy.errors.IntegrityError):
            async with rm.global_transaction("suspended") as tx:
                xid = tx.xid or ""
                async with conn.cursor() as cur:
                    await cur.execute("UPDATE account SET balance = 0 WHERE id = %s", (1,))
                await conn.commit()
        await conn.close()
        return xid

    xid = asyncio.run(main())
    assert db.accounts() == [(1, 100, "a1")]
    assert db.query("SELECT log_status FROM undo_log WHERE xid = %s", (xid,)) == [(1,)]
    wait_final(tc, xid)


def test_psycopg_transaction_block_is_the_branch(postgres_url: str, tc: TCClient) -> None:
    """psycopg's ``async with conn.transaction():`` inside a global transaction commits as
    the branch and is undone by the global rollback; ``COPY ... FROM`` is refused."""
    from psycopg.rows import class_row

    db = Database("postgres", postgres_url, "pg-aio-block")
    db.setup_accounts(2)
    _attached()

    async def main() -> None:
        conn = await db.connect_async()
        with pytest.raises(Boom):
            async with rm.global_transaction("block"):
                async with conn.transaction():
                    await conn.execute("UPDATE account SET balance = 7 WHERE id = %s", (1,))
                assert db.undo_rows() == 1  # committed as a branch
                await conn.execute("UPDATE account SET balance = 8 WHERE id = %s", (2,))
                # The caller's row factory (not tuples): the INSERT's RETURNING still images.
                cur = await conn.cursor(row_factory=class_row(Account))
                await cur.execute("INSERT INTO account (id, balance) VALUES (3, 1) RETURNING *")
                assert await cur.fetchall() == [Account(3, 1, None)]
                with pytest.raises(rm.RMError, match="cannot nest"):
                    async with conn.transaction():
                        pass
                with pytest.raises(rm.UnsupportedSQLError, match="COPY"):
                    (await conn.cursor()).copy("COPY account (id, balance) FROM STDIN")
                await conn.rollback()
                raise Boom()
        await conn.close()

    async def outside() -> None:
        conn = await db.connect_async()
        async with conn.transaction():  # psycopg's own
            await conn.execute("UPDATE account SET balance = 9 WHERE id = 1")
        await conn.close()

    asyncio.run(main())
    restored = [(1, 100, "a1"), (2, 100, "a2")]
    wait_until(lambda: db.accounts() == restored and db.undo_rows() == 0, what="undone")
    asyncio.run(outside())
    assert db.accounts()[0] == (1, 9, "a1")
