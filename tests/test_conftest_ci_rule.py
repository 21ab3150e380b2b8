"""The CI rule: with CI=true a test whose service is unreachable fails, never skips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from atx.testing import free_port

TESTS = Path(__file__).resolve().parent

PROBE = """
def test_needs_mariadb(mariadb_url):
    assert mariadb_url

def test_needs_redis(redis_url):
    assert redis_url
"""


def _run_probe(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(PROBE)
    closed = free_port()  # nothing listens there
    env = {
        **os.environ,
        "CI": ci,
        "ATX_TEST_MYSQL_URL": f"mysql://root@127.0.0.1:{closed}/",
        "ATX_TEST_REDIS_URL": f"redis://127.0.0.1:{closed}/0",
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def test_unreachable_services_fail_under_ci(tmp_path: Path) -> None:
    result = _run_probe(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "2 failed" in result.stdout or "2 error" in result.stdout, result.stdout
    assert "skipped" not in result.stdout
    assert "CI=true" in result.stdout


def test_unreachable_services_skip_outside_ci(tmp_path: Path) -> None:
    result = _run_probe(tmp_path, "")
    assert result.returncode == 0, result.stdout
    assert "2 skipped" in result.stdout, result.stdout


def test_fixtures_give_isolated_real_services(mariadb_factory, redis_url) -> None:  # type: ignore[no-untyped-def]
    import pymysql
    import redis

    from atx.dsn import parse_mysql_url, parse_redis_url

    first, second = mariadb_factory(), mariadb_factory()
    assert first != second
    with pymysql.connect(**parse_mysql_url(first).connect_kwargs()) as conn, conn.cursor() as cur:
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone()[0] == parse_mysql_url(first).database
    target = parse_redis_url(redis_url)
    assert target.key_prefix.startswith("atx_t_")
    assert redis.Redis.from_url(target.url).ping()
