"""The SQL stores (MariaDB, PostgreSQL) outlive their connections: when the
server drops every connection of the store (a restart, a failover, an admin's
KILL), the next call is rerun on a fresh one, and the pool's idle connections,
dead too, are not handed out again. A COMMIT that fails is never rerun: its
outcome is unknown, and the caller is told so."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pymysql
import pytest

from atx.dsn import parse_mysql_url, parse_postgres_url
from atx.errors import UnavailableError
from atx.status import GlobalStatus
from atx.tc.store.base import GlobalRecord, create_store
from atx.tc.store.sql_store import SqlSessionStore
from atx.tc.store.sql_txn import ATTEMPTS, Cursor

Killer = Callable[[], int]


def _mysql_killer(url: str) -> Iterator[Killer]:
    target = parse_mysql_url(url)
    admin = pymysql.connect(**{**target.connect_kwargs(), "database": None}, autocommit=True)

    def kill() -> int:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT id FROM information_schema.processlist WHERE db=%s AND id<>CONNECTION_ID()",
                (target.database,),
            )
            ids = [row[0] for row in cur.fetchall()]
            for thread_id in ids:
                cur.execute(f"KILL {int(thread_id)}")
        return len(ids)

    yield kill
    admin.close()


def _postgres_killer(url: str) -> Iterator[Killer]:
    target = parse_postgres_url(url)
    admin = psycopg.connect(**{**target.connect_kwargs(), "dbname": "postgres"}, autocommit=True)

    def kill() -> int:
        rows = admin.execute(
            # With a timeout it waits until the backends are gone.
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname=%s AND pid<>pg_backend_pid()",
            (target.database,),
        ).fetchall()
        return len(rows)

    yield kill
    admin.close()


@pytest.fixture(params=["mariadb", "postgres"])
def store_and_killer(request: pytest.FixtureRequest) -> Iterator[tuple[SqlSessionStore, Killer]]:
    url: str = request.getfixturevalue(f"{request.param}_url")
    store = create_store(url)
    assert isinstance(store, SqlSessionStore)
    killers = _mysql_killer(url) if request.param == "mariadb" else _postgres_killer(url)
    yield store, next(killers)
    store.close()
    next(killers, None)


def test_calls_survive_the_server_dropping_every_connection(
    store_and_killer: tuple[SqlSessionStore, Killer],
) -> None:
    store, kill = store_and_killer
    # More idle connections in the pool than a call has attempts: reruns that
    # took one dead idle connection after another would run out.
    held = [store._acquire() for _ in range(ATTEMPTS + 2)]
    for conn in held:
        store._release(conn, reuse=True)
    record = GlobalRecord("x-1", store.next_id(), GlobalStatus.BEGIN, "app", "tx", 60_000, 1, 1)
    store.insert_global(record)
    assert kill() >= ATTEMPTS + 2
    found = store.get_global("x-1")
    assert found is not None and found.status == GlobalStatus.BEGIN
    assert store.change_status("x-1", {GlobalStatus.BEGIN}, GlobalStatus.COMMITTING) is not None


def test_a_failed_commit_is_not_rerun(store_and_killer: tuple[SqlSessionStore, Killer]) -> None:
    store, kill = store_and_killer
    runs: list[int] = []

    def step(cur: Cursor) -> None:
        runs.append(1)
        cur.execute(
            "INSERT INTO distributed_lock (name, owner, expire_ms) VALUES (%s, %s, %s)",
            ("job", "me", 1),
        )
        assert kill() >= 1  # this step's own connection: COMMIT comes next

    with pytest.raises(UnavailableError) as failed:
        store._run(step)
    assert failed.value.details.get("committing") == "True"
    assert runs == [1]
    assert store.try_job_lock("job", "other", 1000)  # the killed insert did not commit
