"""The async proxies reach SQLite (aiosqlite) and MariaDB (asyncmy); psycopg's async
connection is not proxied yet, so these tests leave PostgreSQL out."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rm.conftest import DatabaseFactory, database_factory


@pytest.fixture(params=["sqlite", "mariadb"])
def make_db(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseFactory:
    return database_factory(request, str(request.param), tmp_path)
