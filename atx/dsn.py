"""Parse database and store URLs into driver arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlencode, urlsplit

from atx.errors import InvalidArgumentError, InvalidUrlOptionError, UnsupportedDatabaseError

__all__ = [
    "MYSQL_URL_OPTIONS",
    "POSTGRES_URL_OPTIONS",
    "MySQLTarget",
    "PostgresTarget",
    "RedisTarget",
    "is_postgres_url",
    "parse_mysql_url",
    "parse_postgres_url",
    "parse_redis_url",
    "redact_url",
    "sqlite_path",
]

_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}

#: Query options of a MySQL URL, passed to ``pymysql.connect`` under the same name.
#: ``ssl_ca`` alone turns on TLS that verifies the server's certificate and host
#: name (MySQL's VERIFY_IDENTITY); ``ssl_verify_identity=false`` keeps only the
#: certificate check, for servers reached by an address their certificate lacks.
MYSQL_URL_OPTIONS = (
    "ssl_ca",
    "ssl_cert",
    "ssl_key",
    "ssl_verify_cert",
    "ssl_verify_identity",
    "unix_socket",
    "charset",
    "connect_timeout",
)


@dataclass(frozen=True)
class MySQLTarget:
    host: str
    port: int
    user: str
    password: str
    database: str
    #: The URL's query options, validated, in their order (see MYSQL_URL_OPTIONS).
    options: tuple[tuple[str, str], ...] = ()

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``pymysql.connect``."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database or None,
            "charset": "utf8mb4",
        }
        options = dict(self.options)
        for name, value in options.items():
            if name in ("ssl_verify_cert", "ssl_verify_identity"):
                kwargs[name] = _BOOLEANS[value.lower()]
            elif name == "connect_timeout":
                kwargs[name] = int(value)
            else:
                kwargs[name] = value
        if "ssl_ca" in options:
            # PyMySQL verifies nothing unless asked: a CA given means "verify".
            kwargs.setdefault("ssl_verify_cert", True)
            kwargs.setdefault("ssl_verify_identity", kwargs["ssl_verify_cert"])
        return kwargs

    def url(self, database: str | None = None) -> str:
        auth = quote(self.user, safe="") + (
            f":{quote(self.password, safe='')}" if self.password else ""
        )
        query = f"?{urlencode(self.options)}" if self.options else ""
        return f"mysql://{auth}@{self.host}:{self.port}/{database or self.database}{query}"


#: Query options of a PostgreSQL URL, libpq's connection parameters of the same name.
POSTGRES_URL_OPTIONS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
)

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


@dataclass(frozen=True)
class PostgresTarget:
    host: str
    port: int
    user: str
    password: str
    database: str
    #: The URL's query options, validated, in their order (see POSTGRES_URL_OPTIONS).
    options: tuple[tuple[str, str], ...] = ()

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` (libpq parameters)."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.database or "postgres",
        }
        if self.password:
            kwargs["password"] = self.password
        kwargs.update(self.options)
        return kwargs

    def url(self, database: str | None = None) -> str:
        auth = quote(self.user, safe="") + (
            f":{quote(self.password, safe='')}" if self.password else ""
        )
        query = f"?{urlencode(self.options)}" if self.options else ""
        return f"postgresql://{auth}@{self.host}:{self.port}/{database or self.database}{query}"


def is_postgres_url(url: str) -> bool:
    return urlsplit(url).scheme in POSTGRES_SCHEMES


def parse_postgres_url(url: str) -> PostgresTarget:
    """``postgresql://user:password@host:port/database?option=value`` (also
    ``postgres://``); the options are POSTGRES_URL_OPTIONS, anything else is refused."""
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.scheme not in POSTGRES_SCHEMES:
        raise InvalidArgumentError(f"not a PostgreSQL URL: {shown!r}", url=shown)
    try:
        port = parts.port or 5432
    except ValueError:
        raise InvalidArgumentError(f"bad port in PostgreSQL URL {shown!r}", url=shown) from None
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in POSTGRES_URL_OPTIONS:
            raise InvalidUrlOptionError(
                f"unknown option {name!r} in PostgreSQL URL {shown!r}",
                url=shown,
                option=name,
                hint="known options: " + ", ".join(POSTGRES_URL_OPTIONS),
            )
        if not value:
            raise InvalidUrlOptionError(
                f"option {name} in PostgreSQL URL {shown!r}: it needs a value",
                url=shown,
                option=name,
            )
        options[name] = value
    return PostgresTarget(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")),
        options=tuple(options.items()),
    )


@dataclass(frozen=True)
class RedisTarget:
    #: The URL redis-py understands, without atx's own query parameters.
    url: str
    #: Prepended to every key atx writes, so that tenants and tests never collide.
    key_prefix: str


def parse_mysql_url(url: str) -> MySQLTarget:
    """``mysql://user:password@host:port/database?option=value`` (also ``mariadb://``);
    the options are MYSQL_URL_OPTIONS, anything else is refused."""
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.scheme.startswith("postgres"):
        raise UnsupportedDatabaseError(
            f"PostgreSQL is not supported yet: {shown!r}",
            url=shown,
            hint="atx speaks MySQL/MariaDB (mysql://user:password@host:3306/db)"
            " and SQLite (sqlite:///relative.db, sqlite:////absolute.db)",
        )
    if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql"):
        raise InvalidArgumentError(f"not a MySQL URL: {shown!r}", url=shown)
    try:
        port = parts.port or 3306
    except ValueError:
        raise InvalidArgumentError(f"bad port in MySQL URL {shown!r}", url=shown) from None
    return MySQLTarget(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")),
        options=_mysql_options(parts.query, shown),
    )


def _mysql_options(query: str, shown: str) -> tuple[tuple[str, str], ...]:
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name not in MYSQL_URL_OPTIONS:
            raise InvalidUrlOptionError(
                f"unknown option {name!r} in MySQL URL {shown!r}",
                url=shown,
                option=name,
                hint="known options: " + ", ".join(MYSQL_URL_OPTIONS),
            )
        bad = ""
        if not value:
            bad = "it needs a value"
        elif name in ("ssl_verify_cert", "ssl_verify_identity") and value.lower() not in _BOOLEANS:
            bad = "expected true or false"
        elif name == "connect_timeout" and not (value.isdigit() and int(value) > 0):
            bad = "expected whole seconds, more than 0"
        if bad:
            raise InvalidUrlOptionError(
                f"option {name}={value!r} in MySQL URL {shown!r}: {bad}", url=shown, option=name
            )
        options[name] = value
    return tuple(options.items())


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


def sqlite_path(url: str) -> str:
    """The file a ``sqlite:`` URL names, by SQLAlchemy's convention everywhere in atx
    (TC store, RM, services): ``sqlite:///relative.db`` is relative to the current
    directory, ``sqlite:////absolute/path.db`` absolute, ``sqlite://`` or
    ``sqlite:///:memory:`` in memory. Query options are not part of the path."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise InvalidArgumentError(f"not a SQLite URL: {url!r}", url=url)
    if parts.netloc:
        raise InvalidArgumentError(
            f"SQLite URL {url!r} has a host part",
            url=url,
            hint="write sqlite:///relative.db or sqlite:////absolute/path.db",
        )
    path = unquote(parts.path).removeprefix("/")
    return path if path and path != ":memory:" else ":memory:"


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs and command output."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url
