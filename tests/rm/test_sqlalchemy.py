"""The proxy works where a DB-API connection is expected: SQLAlchemy's creator."""

from __future__ import annotations

import pytest
import sqlalchemy
from sqlalchemy import text

import atx.rm as rm
from atx.rm.tc_client import TCClient
from tests.rm.conftest import Database, wait_final


class Boom(Exception):
    pass


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
