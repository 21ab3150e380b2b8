"""The proxy works where a DB-API connection is expected: SQLAlchemy's creator, Core and
the ORM, on MariaDB and PostgreSQL; an async engine over the async proxies (asyncmy,
aiosqlite)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import String, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import atx.rm as rm
from atx.rm.tc_client import TCClient
from tests.rm.conftest import Database, database_factory, wait_final


class Boom(Exception):
    pass


_URLS = {"mariadb": "mysql+pymysql://", "postgres": "postgresql+psycopg://"}


def _engine(db: Database) -> sqlalchemy.Engine:
    connect = rm.connect_postgres if db.kind == "postgres" else rm.connect_mysql
    # SQLAlchemy's psycopg dialect looks the hstore type up with psycopg's TypeInfo,
    # which wants psycopg's own Connection class, not a proxy of it.
    options = {"use_native_hstore": False} if db.kind == "postgres" else {}
    return sqlalchemy.create_engine(
        _URLS[db.kind], creator=lambda: connect(db.location, resource_id=db.resource_id), **options
    )


def test_sqlalchemy_engine_over_the_proxy(server_db: Database, tc: TCClient) -> None:
    db = server_db
    db.setup_accounts(2)
    engine = _engine(db)
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


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "note"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    body: Mapped[str] = mapped_column(String(40))
    hits: Mapped[int] = mapped_column(default=0)


def test_orm_insert_and_update_roll_back(server_db: Database, tc: TCClient) -> None:
    """A sync engine with ``creator=`` over the proxy: the ORM's INSERT (PostgreSQL's
    with RETURNING its keys) and UPDATE in a global transaction that fails are undone."""
    db = server_db
    engine = _engine(db)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Note(body="kept"))
        session.commit()
    proxy = db.connect()
    proxy.resource.undo.ensure_table(proxy.raw)
    proxy.close()
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(10)

    @rm.global_transactional(name="orm")
    def change() -> None:
        with Session(engine) as session:
            # Two rows: PostgreSQL's insertmanyvalues form, INSERT ... SELECT ... RETURNING.
            session.add_all([Note(body="new", hits=1), Note(body="newer", hits=2)])
            kept = session.scalars(select(Note).where(Note.body == "kept")).one()
            kept.hits += 5
            session.commit()
            assert session.scalars(select(Note.hits).order_by(Note.id)).all() == [5, 1, 2]
        raise Boom()

    with pytest.raises(Boom):
        change()
    assert db.query("SELECT id, body, hits FROM note ORDER BY id") == [(1, "kept", 0)]
    assert db.undo_rows() == 0
    engine.dispose()


class AccountBase(DeclarativeBase):
    pass


class Account(AccountBase):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    balance: Mapped[int]
    note: Mapped[str | None]


_ASYNC_URLS = {
    "mariadb": "mysql+asyncmy://",
    "postgres": "postgresql+psycopg_async://",
    "sqlite": "sqlite+aiosqlite://",
}


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def async_db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """A database the async proxies reach."""
    return database_factory(request, str(request.param), tmp_path)()


def test_async_engine_and_orm_over_the_async_proxy(async_db: Database, tc: TCClient) -> None:
    """An async engine (asyncmy, aiosqlite, psycopg_async dialects) over async proxies:
    the ORM inserts and updates inside a global transaction that rolls back, then commits."""
    db = async_db
    db.setup_accounts(2)
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(10)

    async def main() -> str:
        # As the sync engine's: hstore's lookup wants psycopg's own connection class.
        options = {"use_native_hstore": False} if db.kind == "postgres" else {}
        engine = create_async_engine(
            _ASYNC_URLS[db.kind], async_creator=db.connect_async, **options
        )
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
