"""The async proxies reach SQLite (aiosqlite), MariaDB (asyncmy) and PostgreSQL (psycopg's
AsyncConnection): the suite's ``make_db``, the async proxy of each."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rm.conftest import DatabaseFactory, database_factory


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def make_db(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseFactory:
    return database_factory(request, str(request.param), tmp_path)
