"""URL parsing and redaction (atx.dsn)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pymysql
import pytest

from atx.dsn import is_postgres_url, parse_mysql_url, parse_postgres_url, redact_url, sqlite_path
from atx.errors import InvalidArgumentError, InvalidUrlOptionError, UnsupportedDatabaseError
from atx.testing import self_signed_cert


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql://app:s3cret@db:3306/orders", "mysql://app:***@db:3306/orders"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("mysql://app@db:3306/orders", "mysql://app@db:3306/orders"),
        ("sqlite:////var/lib/atx/tc.db", "sqlite:////var/lib/atx/tc.db"),
    ],
)
def test_redact_url_hides_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_mysql_url_round_trip() -> None:
    target = parse_mysql_url("mysql://app:p%40ss@db:3307/orders")
    assert (target.user, target.password, target.host, target.port) == ("app", "p@ss", "db", 3307)
    assert target.connect_kwargs()["database"] == "orders"


def test_not_a_mysql_url_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="not a MySQL URL"):
        parse_mysql_url("oracle://db/x")
    with pytest.raises(UnsupportedDatabaseError, match="PostgreSQL is not supported yet"):
        parse_mysql_url("postgres://db/x")
    with pytest.raises(UnsupportedDatabaseError, match=r"postgresql://u:\*\*\*@db/x"):
        parse_mysql_url("postgresql://u:secret@db/x")  # named, without the password


def test_ssl_ca_becomes_pymysqls_ssl_arguments(tmp_path: Path) -> None:
    kwargs = parse_mysql_url("mysql://app@db:3306/orders?ssl_ca=/etc/atx/ca.pem").connect_kwargs()
    # A CA given means "verify": PyMySQL alone would check neither certificate nor name.
    assert kwargs["ssl_ca"] == "/etc/atx/ca.pem"
    assert kwargs["ssl_verify_cert"] is True and kwargs["ssl_verify_identity"] is True
    url = (
        "mysql://app@db/orders?ssl_ca=/ca.pem&ssl_cert=/c.pem&ssl_key=/k.pem"
        "&ssl_verify_identity=false"
    )
    kwargs = parse_mysql_url(url).connect_kwargs()
    assert (kwargs["ssl_cert"], kwargs["ssl_key"]) == ("/c.pem", "/k.pem")
    assert kwargs["ssl_verify_cert"] is True and kwargs["ssl_verify_identity"] is False
    # PyMySQL takes exactly these keyword arguments and builds a verifying TLS context.
    ca, _key = self_signed_cert(tmp_path)
    target = parse_mysql_url(f"mysql://a@h/d?ssl_ca={ca}")
    connection = pymysql.connections.Connection(**target.connect_kwargs(), defer_connect=True)
    assert connection.ssl and connection.ctx.verify_mode == ssl.CERT_REQUIRED
    assert connection.ctx.check_hostname


def test_other_options_reach_pymysql() -> None:
    url = (
        "mysql://app@db/orders?unix_socket=/run/mysqld/mysqld.sock&charset=latin1&connect_timeout=3"
    )
    kwargs = parse_mysql_url(url).connect_kwargs()
    assert kwargs["unix_socket"] == "/run/mysqld/mysqld.sock"
    assert kwargs["charset"] == "latin1" and kwargs["connect_timeout"] == 3
    assert "ssl_ca" not in kwargs and "ssl_verify_cert" not in kwargs
    # The options survive url(), which names other databases on the same server.
    again = parse_mysql_url(parse_mysql_url(url).url("other"))
    assert again.database == "other" and again.options == parse_mysql_url(url).options


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("sslca=/x.pem", "unknown option 'sslca'"),
        ("ssl_verify_cert=maybe", "expected true or false"),
        ("connect_timeout=soon", "whole seconds"),
        ("connect_timeout=0", "whole seconds"),
        ("ssl_ca=", "needs a value"),
    ],
)
def test_bad_url_options_are_refused(query: str, match: str) -> None:
    with pytest.raises(InvalidUrlOptionError, match=match):
        parse_mysql_url(f"mysql://app:secret@db/orders?{query}")


def test_a_url_option_is_used_for_real(mariadb_url: str) -> None:
    connection = pymysql.connect(
        **parse_mysql_url(f"{mariadb_url}?charset=latin1").connect_kwargs()
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@character_set_client")
        assert cursor.fetchone() == ("latin1",)
    connection.close()


def test_a_postgres_url_gives_libpq_parameters() -> None:
    target = parse_postgres_url("postgresql://app:p%40ss@db.example:6543/shop?sslmode=verify-full")
    assert target.connect_kwargs() == {
        "host": "db.example",
        "port": 6543,
        "user": "app",
        "password": "p@ss",
        "dbname": "shop",
        "sslmode": "verify-full",
    }
    assert (
        target.url("other") == "postgresql://app:p%40ss@db.example:6543/other?sslmode=verify-full"
    )
    assert is_postgres_url("postgres://x/y") and not is_postgres_url("mysql://x/y")


def test_a_postgres_url_with_an_unknown_option_is_refused() -> None:
    with pytest.raises(InvalidUrlOptionError, match="sslmod"):
        parse_postgres_url("postgresql://h/db?sslmod=require")


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///tc.db", "tc.db"),
        ("sqlite:///data/tc.db", "data/tc.db"),
        ("sqlite:////var/lib/atx/tc.db", "/var/lib/atx/tc.db"),
        ("sqlite:////tmp/a%20b.db?synchronous=FULL", "/tmp/a b.db"),
        ("sqlite://", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_every_command_reads_sqlite_urls_as_sqlalchemy(url: str, path: str) -> None:
    from atx.tc.store.sqlite import sqlite_path_from_url

    assert sqlite_path(url) == path
    assert sqlite_path_from_url(url)[0] == path  # the TC's store, the same way


def test_a_sqlite_url_with_a_host_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="host part"):
        sqlite_path("sqlite://tc.db")
