"""Fixtures shared by every test: real MariaDB databases, Redis prefixes,
free ports and server processes.

Where the server lives: ATX_TEST_MYSQL_URL (default mysql://root@127.0.0.1:3306/),
ATX_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test) and
ATX_TEST_REDIS_URL (default redis://127.0.0.1:6379/0). With CI=true an
unreachable server fails the test; elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn

import pymysql
import pytest
import redis

from atx.dsn import parse_mysql_url, parse_postgres_url
from atx.testing import ManagedProcess, free_port, start_process


class _TopLevelGuard(importlib.abc.MetaPathFinder):
    """The repository's tc/, rm/, hooks/ and services/ install as atx.tc, atx.rm, atx.hooks
    and atx.shop. The test runner puts the checkout on sys.path, where the bare folder
    names would import a second copy of each module (two error registries, two
    contexts): refuse them, naming the right import."""

    NAMES = {"tc": "atx.tc", "rm": "atx.rm", "hooks": "atx.hooks", "services": "atx.shop"}

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        top = fullname.partition(".")[0]
        if top in self.NAMES:
            raise ImportError(f"import {self.NAMES[top]}, not {top} (the repository folder)")
        return None


sys.meta_path.insert(0, _TopLevelGuard())

MYSQL_URL = os.environ.get("ATX_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/")
REDIS_URL = os.environ.get("ATX_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("ATX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def unavailable(reason: str) -> NoReturn:
    """Fail under CI (a missing service is a broken machine), skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: a test never skips for a missing service)")
    pytest.skip(reason)


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _mysql_admin_connection() -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
    target = parse_mysql_url(MYSQL_URL)
    try:
        return pymysql.connect(
            host=target.host,
            port=target.port,
            user=target.user,
            password=target.password,
            connect_timeout=3,
            autocommit=True,
        )
    except pymysql.err.OperationalError as error:
        unavailable(f"MariaDB at {target.host}:{target.port} is unreachable: {error}")


MariaDBFactory = Callable[[], str]


@pytest.fixture
def mariadb_factory() -> Iterator[MariaDBFactory]:
    """Make fresh, uniquely named MariaDB databases; each is dropped afterwards.

    Returns a function giving the URL ``mysql://root@host:port/atx_t_<hex>``.
    """
    admin = _mysql_admin_connection()
    created: list[str] = []
    target = parse_mysql_url(MYSQL_URL)

    def make() -> str:
        name = _unique("atx_t")
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        created.append(name)
        return target.url(name)

    yield make
    with admin.cursor() as cursor:
        for name in created:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.fixture
def mariadb_url(mariadb_factory: MariaDBFactory) -> str:
    """One fresh MariaDB database for this test."""
    return mariadb_factory()


PostgresFactory = Callable[[], str]


@pytest.fixture
def postgres_factory() -> Iterator[PostgresFactory]:
    """Make fresh, uniquely named PostgreSQL databases; each is dropped afterwards
    (``WITH (FORCE)``: a test's leftover connections do not keep it alive).

    Returns a function giving the URL ``postgresql://postgres@host:port/atx_t_<hex>``.
    """
    import psycopg  # the postgres extra; installed with dev

    target = parse_postgres_url(POSTGRES_URL)
    try:
        admin = psycopg.connect(**target.connect_kwargs(), connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as error:
        unavailable(f"PostgreSQL at {target.host}:{target.port} is unreachable: {error}")
    created: list[str] = []

    def make() -> str:
        name = _unique("atx_t")
        admin.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return target.url(name)

    yield make
    for name in created:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def postgres_url(postgres_factory: PostgresFactory) -> str:
    """One fresh PostgreSQL database for this test."""
    return postgres_factory()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL whose ``key_prefix`` is unique to this test; its keys are
    deleted afterwards. Parse it with ``atx.dsn.parse_redis_url``."""
    prefix = _unique("atx_t") + ":"
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        unavailable(f"Redis at {REDIS_URL} is unreachable: {error}")
    separator = "&" if "?" in REDIS_URL else "?"
    yield f"{REDIS_URL}{separator}key_prefix={prefix}"
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def port() -> int:
    """A free TCP port on 127.0.0.1."""
    return free_port()


ProcessStarter = Callable[..., ManagedProcess]


@pytest.fixture
def start_server() -> Iterator[ProcessStarter]:
    """Start server processes and wait for their health check to say SERVING.

    ``start_server(["tc", "--port", str(p), "--store", url], port=p)`` runs
    ``python -m atx.cli tc ...``; every process is stopped afterwards.
    """
    started: list[ManagedProcess] = []

    def start(
        args: Sequence[str],
        port: int,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
        health_service: str = "",
    ) -> ManagedProcess:
        process = start_process(args, port, env, timeout, health_service)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
