"""URL parsing and redaction (atx.dsn)."""

from __future__ import annotations

import pytest

from atx.dsn import parse_mysql_url, redact_url
from atx.errors import InvalidArgumentError


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
        parse_mysql_url("postgres://db/x")
