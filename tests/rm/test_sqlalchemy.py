"""The proxy works where a DB-API connection is expected: SQLAlchemy's creator."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import atx.rm as rm
from atx.rm.tc_client import TCClient
from tests.rm.conftest import Database, wait_final


class Boom(Exception):
    pass


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    balance: Mapped[int]
    note: Mapped[str | None]


def test_sqlalchemy_engine_over_the_proxy(mariadb_url: str, tc: TCClient) -> None:
    db = Database("mariadb", mariadb_url, "maria-sqlalchemy")
    db.setup_accounts(2)
    engine = sqlalchemy.create_engine(
        "mysql+pymysql://",
        creator=lambda: rm.connect_mysql(mariadb_url, resource_id=db.resource_id),
    )
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(10)

    # Outside a global transaction: plain pass-through.
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM account")).scalar() == 2

    @rm.global_transactional(name="sqlalchemy")
    def move(amount: int, fail: bool) -> str:
        with engine.connect() as connection:
            connection.execute(
                text("UPDATE account SET balance = balance - :a WHERE id = 1"), {"a": amount}
            )
            connection.execute(
                text("UPDATE account SET balance = balance + :a WHERE id = 2"), {"a": amount}
            )
            connection.commit()
        if fail:
            raise Boom()
        return rm.require_xid()

    xid = move(10, False)
    wait_final(tc, xid)
    assert db.accounts() == [(1, 90, "a1"), (2, 110, "a2")]
    with pytest.raises(Boom):
        move(50, True)
    assert db.accounts() == [(1, 90, "a1"), (2, 110, "a2")]
    engine.dispose()


def test_async_engine_and_orm_over_the_async_proxy(db: Database, tc: TCClient) -> None:
    """An async engine (asyncmy, aiosqlite dialects) whose connections are async proxies:
    the ORM inserts and updates inside a global transaction that rolls back, then commits."""
    db.setup_accounts(2)
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(10)

    async def main() -> str:
        url = "mysql+asyncmy://" if db.kind == "mariadb" else "sqlite+aiosqlite://"
        engine = create_async_engine(url, async_creator=db.connect_async)
        sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        async with engine.connect() as connection:  # outside: plain pass-through
            assert (await connection.execute(text("SELECT COUNT(*) FROM account"))).scalar() == 2

        @rm.global_transactional(name="orm")
        async def open_account(fail: bool) -> str:
            async with sessions() as session:
                session.add(Account(id=3, balance=5, note="new"))
                first = await session.get(Account, 1)
                assert first is not None
                first.balance -= 5
                await session.commit()
            if fail:
                raise Boom()
            return rm.require_xid()

        with pytest.raises(Boom):
            await open_account(True)
        assert db.accounts() == [(1, 100, "a1"), (2, 100, "a2")]
        xid = await open_account(False)
        await engine.dispose()
        return xid

    xid = asyncio.run(main())
    wait_final(tc, xid)
    assert db.accounts() == [(1, 95, "a1"), (2, 100, "a2"), (3, 5, "new")]
