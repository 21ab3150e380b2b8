"""examples/transfer runs as a user runs it (a subprocess, exit 0, its output), on
MariaDB and on SQLite, and leaves the databases as it found them; the README's
snippet is the example's own code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest

from atx.dsn import parse_mysql_url
from tests.conftest import MariaDBFactory

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "transfer"


def run_example(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "run.py"), *args],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    assert "balances: bank alice=100, wallet bob=0" in out
    assert "   committed: global transaction " in out
    assert "   FAILED_PRECONDITION: rolled back: alice would have -430" in out
    assert "   NOT_FOUND: rolled back: the wallet said no wallet 'carol'" in out
    unchanged = "   balances: bank alice=70, wallet bob=30: both databases unchanged"
    assert out.count(unchanged) == 2
    assert "UNEXPECTED" not in out
    assert out.rstrip().endswith("every transfer ended as expected")
    return out


def tables(url: str) -> list[str]:
    target = parse_mysql_url(url)
    connection = pymysql.connect(**target.connect_kwargs())
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW TABLES")
            return [row[0] for row in cursor.fetchall()]
    finally:
        connection.close()


def test_transfer_on_mariadb_leaves_the_databases_empty(mariadb_factory: MariaDBFactory) -> None:
    bank, wallet = mariadb_factory(), mariadb_factory()
    run_example("--bank-db", bank, "--wallet-db", wallet)
    assert tables(bank) == [] and tables(wallet) == []


def test_transfer_on_sqlite() -> None:
    out = run_example("--sqlite")
    assert "databases: bank sqlite:///" in out


def test_readme_snippet_is_the_examples_code() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("Make a plain DB-API program transactional")
    section = readme[start : readme.index("A gRPC server joins", start)]
    snippet = [
        line.strip()
        for block in re.findall(r"```python\n(.*?)```", section, re.DOTALL)
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert len(snippet) > 20
    source = {
        line.strip() for path in EXAMPLE.glob("*.py") for line in path.read_text().splitlines()
    }
    assert [line for line in snippet if line not in source] == []
