"""Parse database and store URLs into driver arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from atx.errors import InvalidArgumentError

__all__ = ["MySQLTarget", "RedisTarget", "parse_mysql_url", "parse_redis_url", "redact_url"]


@dataclass(frozen=True)
class MySQLTarget:
    host: str
    port: int
    user: str
    password: str
    database: str

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``pymysql.connect``."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database or None,
            "charset": "utf8mb4",
        }

    def url(self, database: str | None = None) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"mysql://{auth}@{self.host}:{self.port}/{database or self.database}"


@dataclass(frozen=True)
class RedisTarget:
    #: The URL redis-py understands, without atx's own query parameters.
    url: str
    #: Prepended to every key atx writes, so that tenants and tests never collide.
    key_prefix: str


def parse_mysql_url(url: str) -> MySQLTarget:
    """``mysql://user:password@host:port/database`` (also ``mariadb://``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql"):
        raise InvalidArgumentError(f"not a MySQL URL: {url!r}", url=url)
    return MySQLTarget(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=parts.path.lstrip("/"),
    )


def parse_redis_url(url: str) -> RedisTarget:
    """``redis://host:port/db?key_prefix=atx:``; the prefix defaults to ``atx:``."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise InvalidArgumentError(f"not a Redis URL: {url!r}", url=url)
    query = parse_qs(parts.query)
    prefix = query.pop("key_prefix", ["atx:"])[0]
    rest = "&".join(f"{k}={v}" for k, values in query.items() for v in values)
    clean = parts._replace(query=rest).geturl()
    return RedisTarget(url=clean, key_prefix=prefix)


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs and command output."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url
