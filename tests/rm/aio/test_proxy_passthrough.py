"""The async proxies outside a global transaction: the driver's own results, the
driver's own fetches, one task at a time on a MariaDB connection."""

from __future__ import annotations

import asyncio

import pytest

import atx.rm as rm
from tests.rm.conftest import Database


def test_statements_pass_through_to_the_driver(db: Database) -> None:
    db.setup_accounts(2)

    async def main() -> None:
        conn = await db.connect_async()
        async with conn.cursor() as cur:
            await cur.execute(db.q("UPDATE account SET balance = balance + 1 WHERE id > %s"), (0,))
            assert cur.rowcount == 2
            await cur.execute(db.q("SELECT id, balance FROM account WHERE id = %s"), (2,))
            assert tuple(await cur.fetchone()) == (2, 101)
            assert cur.description[0][0] == "id"
        await conn.commit()
        cur = await conn.cursor()
        await cur.execute("CREATE TABLE later (id INT PRIMARY KEY)")  # DDL outside: fine
        await cur.close()
        with pytest.raises(rm.DDLInGlobalTransactionError), rm.bind_xid("x:1"):
            async with conn.cursor() as cur:
                await cur.execute("CREATE TABLE nope (id INT PRIMARY KEY)")
        await conn.rollback()
        assert conn.raw is not None and conn.resource_id == db.resource_id
        await conn.close()

    asyncio.run(main())
    assert db.accounts() == [(1, 101, "a1"), (2, 101, "a2")]


def test_two_tasks_on_one_connection_are_refused(mariadb_url: str) -> None:
    db = Database("mariadb", mariadb_url, "maria-aio-guard")

    async def main() -> None:
        conn = await db.connect_async()
        first, second = await conn.cursor(), await conn.cursor()
        results = await asyncio.gather(
            first.execute("SELECT SLEEP(0.2)"), second.execute("SELECT 1"), return_exceptions=True
        )
        assert isinstance(results[1], rm.InvalidUsageError), results
        assert "in use by another task" in str(results[1])
        await first.fetchall()
        await conn.close()

    asyncio.run(main())
