"""Every ``atx`` command fails the same way at start-up: one ``error: [CODE]
message`` line and a ``hint:`` line on stderr, exit code 2, no traceback unless
``--log-level DEBUG`` (atx.cli_errors). Each test runs the real command."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pymysql
import pytest

from atx.cli_errors import report
from atx.dsn import parse_mysql_url, parse_postgres_url
from atx.testing import ManagedProcess, free_port


def atx(
    *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATX_", "COLUMNS"))}
    return subprocess.run(
        [sys.executable, "-m", "atx.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def one_error(done: subprocess.CompletedProcess[str], code: str, exit_code: int = 2) -> str:
    """Check the one-line-plus-hint shape; return the error line."""
    assert done.returncode == exit_code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith(f"error: [{code}] "), done.stderr
    assert lines[1].startswith("hint: ") and len(lines[1]) > len("hint: "), done.stderr
    return lines[0]


def with_debug(*args: str) -> subprocess.CompletedProcess[str]:
    done = atx("--log-level", "DEBUG", *args)
    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr
    return done


def missing_database_url(mariadb_url: str) -> str:
    return parse_mysql_url(mariadb_url).url(f"atx_missing_{uuid.uuid4().hex[:10]}")


def with_password(url: str, password: str) -> str:
    target = parse_mysql_url(url)
    return f"mysql://{target.user}:{password}@{target.host}:{target.port}/{target.database}"


def test_tc_with_a_missing_mysql_database(mariadb_url: str) -> None:
    url = missing_database_url(mariadb_url)
    name = parse_mysql_url(url).database
    done = atx("tc", "--port", "0", "--store", url)
    line = one_error(done, "DATABASE_NOT_FOUND")
    assert name in line
    assert f"CREATE DATABASE {name}" in done.stderr and "--create-database" in done.stderr
    assert "DATABASE_NOT_FOUND" in with_debug("tc", "--port", "0", "--store", url).stderr


def test_tc_create_database_creates_it(mariadb_url: str, start_server: object) -> None:
    url = missing_database_url(mariadb_url)
    target = parse_mysql_url(url)
    port = free_port()
    assert callable(start_server)
    try:
        tc: ManagedProcess = start_server(
            ["tc", "--port", str(port), "--store", url, "--create-database"], port=port
        )
        assert tc.running
        connection = pymysql.connect(**{**target.connect_kwargs(), "database": None})
        with connection.cursor() as cursor:
            cursor.execute("SHOW DATABASES LIKE %s", (target.database,))
            assert cursor.fetchall() == ((target.database,),)
        connection.close()
    finally:
        connection = pymysql.connect(**{**target.connect_kwargs(), "database": None})
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{target.database}`")
        connection.close()


def test_tc_with_an_unknown_store_scheme() -> None:
    done = atx("tc", "--port", "0", "--store", "foo://somewhere/x")
    line = one_error(done, "INVALID_ARGUMENT")
    assert "unknown store URL scheme 'foo'" in line
    assert "sqlite:////" in done.stderr  # the hint shows the URL forms
    with_debug("tc", "--port", "0", "--store", "foo://somewhere/x")


def test_tc_with_redis_refusing(redis_url: str) -> None:
    closed = free_port()  # nothing listens there
    url = f"redis://127.0.0.1:{closed}/0"
    line = one_error(atx("tc", "--port", "0", "--store", url), "DATABASE_UNREACHABLE")
    assert f"127.0.0.1:{closed}" in line and "Redis" in line
    with_debug("tc", "--port", "0", "--store", url)


def test_tc_with_a_wrong_mysql_password(mariadb_url: str) -> None:
    url = with_password(mariadb_url, "certainly-wrong")
    done = atx("tc", "--port", "0", "--store", url)
    line = one_error(done, "DATABASE_ACCESS_DENIED")
    assert "certainly-wrong" not in done.stderr  # never print the password
    assert "Access denied" in line and "--store" in done.stderr
    with_debug("tc", "--port", "0", "--store", url)


def test_tc_with_a_missing_postgres_database_and_create_database(
    postgres_url: str, start_server: object
) -> None:
    target = parse_postgres_url(postgres_url)
    name = f"atx_missing_{uuid.uuid4().hex[:10]}"
    url = target.url(name)
    done = atx("tc", "--port", "0", "--store", url)
    line = one_error(done, "DATABASE_NOT_FOUND")
    assert name in line and "PostgreSQL" in line
    assert f'CREATE DATABASE "{name}"' in done.stderr and "--create-database" in done.stderr
    port = free_port()
    assert callable(start_server)
    admin = psycopg.connect(**target.connect_kwargs(), autocommit=True)
    try:
        tc: ManagedProcess = start_server(
            ["tc", "--port", str(port), "--store", url, "--create-database"], port=port
        )
        assert tc.running
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        assert found.fetchall() == [(1,)]
        tc.kill()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_tc_with_postgres_refusing_or_refusing_the_login(postgres_url: str) -> None:
    target = parse_postgres_url(postgres_url)
    closed = free_port()  # nothing listens there
    refused = f"postgresql://postgres@127.0.0.1:{closed}/{target.database}"
    line = one_error(atx("tc", "--port", "0", "--store", refused), "DATABASE_UNREACHABLE")
    assert f"127.0.0.1:{closed}" in line and "PostgreSQL" in line
    # The test server trusts local logins whatever the password: an unknown role it refuses.
    login = f"postgresql://atx_nobody:certainly-wrong@{target.host}:{target.port}/{target.database}"
    done = atx("tc", "--port", "0", "--store", login)
    line = one_error(done, "DATABASE_ACCESS_DENIED")
    assert "certainly-wrong" not in done.stderr  # never print the password
    assert "atx_nobody" in line and "--store" in done.stderr
    with_debug("tc", "--port", "0", "--store", login)


def test_tc_on_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = atx("tc", "--port", str(port), "--store", f"sqlite:///{tmp_path}/tc.db")
    line = one_error(done, "CANNOT_BIND")
    assert f"127.0.0.1:{port}" in line
    assert not (tmp_path / "tc.db").exists()  # refused before the store opened


def test_tc_bad_flags_are_usage_errors() -> None:
    line = one_error(atx("tc", "--port", "not-a-port"), "USAGE_ERROR")
    assert "--port" in line
    one_error(atx("tc", "--tls-cert", "x.pem"), "USAGE_ERROR")
    one_error(atx("tc", "--port", "0", "--job-interval-ms", "20000"), "USAGE_ERROR")  # > lock TTL
    done = atx("tc", "--store", "sqlite:////tmp/x.db", "--create-database")
    one_error(done, "USAGE_ERROR")


def test_rm_init_with_a_wrong_password(mariadb_url: str) -> None:
    url = with_password(mariadb_url, "certainly-wrong")
    done = atx("rm", "init", "--dsn", url)
    one_error(done, "DATABASE_ACCESS_DENIED")
    assert "--dsn" in done.stderr and "certainly-wrong" not in done.stderr
    with_debug("rm", "init", "--dsn", url)


def test_rm_init_with_a_relative_sqlite_path_that_cannot_be_opened(tmp_path: Path) -> None:
    done = atx("rm", "init", "--dsn", "sqlite:///no-such-dir/x.db", cwd=tmp_path)
    line = one_error(done, "SQLITE_CANNOT_OPEN")
    assert str(tmp_path / "no-such-dir" / "x.db") in line  # the resolved path
    assert "sqlite:////no-such-dir/x.db" in done.stderr  # the absolute form
    assert "relative" in done.stderr


def test_rm_init_with_a_postgresql_dsn() -> None:
    for dsn in ("postgresql://postgres@127.0.0.1:5432/atx", "postgres://postgres@127.0.0.1/atx"):
        line = one_error(atx("rm", "init", "--dsn", dsn), "UNSUPPORTED_DATABASE")
        assert "PostgreSQL is not supported yet" in line
        assert "not a MySQL URL" not in line


def test_rm_init_with_an_unknown_url_option(mariadb_url: str) -> None:
    done = atx("rm", "init", "--dsn", f"{mariadb_url}?sslca=/x.pem")
    line = one_error(done, "INVALID_URL_OPTION")
    assert "'sslca'" in line and "ssl_ca" in done.stderr


def test_atx_alone_prints_help_and_exits_2() -> None:
    done = atx()
    assert done.returncode == 2
    assert "usage: atx" in done.stderr and "COMMAND" in done.stderr


def test_json_errors_are_one_json_object() -> None:
    done = atx("admin", "--tc", f"127.0.0.1:{free_port()}", "globals", "--json")
    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    error = json.loads(line)["error"]
    assert error["code"] == "UNAVAILABLE" and "cannot reach" in error["message"]
    assert "--tc" in error["hint"]
    done = atx("admin", "globals", "--page-size", "many", "--json")
    assert done.returncode == 2
    error = json.loads(done.stderr)["error"]
    assert error["code"] == "USAGE_ERROR" and "--page-size" in error["message"]


def test_unexpected_errors_are_one_line_too() -> None:
    stream = io.StringIO()
    assert report(ValueError("boom"), stream=stream, debug=False) == 1
    lines = stream.getvalue().splitlines()
    assert lines[0] == "error: [INTERNAL] ValueError: boom"
    assert "--log-level DEBUG" in lines[1]
    stream = io.StringIO()
    report(TimeoutError("not SERVING\n--- output:\nmany lines"), stream=stream, debug=False)
    assert stream.getvalue().splitlines()[0] == "error: [INTERNAL] TimeoutError: not SERVING"
    assert len(stream.getvalue().splitlines()) == 2


def test_tc_help_shows_environment_defaults_and_units() -> None:
    done = atx("tc", "--help")
    assert done.returncode == 0
    for name in ("ATX_TC_HOST", "ATX_TC_PORT", "ATX_TC_STORE", "ATX_TC_TOKEN", "ATX_DATA_DIR"):
        assert name in done.stdout
    # Every flag has help, with its default.
    flags = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  --")]
    assert "--job-interval-ms" in flags and "--create-database" in flags
    text = " ".join(done.stdout.split())
    assert "how often the background jobs run, ms (default: 1000)" in text
    assert "(default: 10)" in text  # --shutdown-grace-s


@pytest.mark.parametrize("name", ["order", "payment", "collectible", "chain", "channel"])
def test_service_help_shows_defaults_and_units(name: str) -> None:
    done = atx("service", name, "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "(default: 127.0.0.1)" in text
    if name == "order":
        assert "unpaid deadline, s (default: 900.0)" in text
    if name == "payment":
        assert "attempts before a deferred call is dead-lettered (default: 10)" in text
        assert "breaker statistics window, ms (default:" in text


def test_service_usage_error_is_one_line() -> None:
    done = atx("service", "order", "--port", "x", "--tc", "a:1", "--collectible", "b:1")
    line = one_error(done, "USAGE_ERROR")
    assert "--port" in line and "atx service order --help" in done.stderr
