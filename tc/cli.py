"""``atx tc``: run a transaction coordinator."""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from atx.tc.store.base import SessionStore

__all__ = ["ENVIRONMENT", "add_arguments", "config_from_args", "run"]

#: The environment variables ``atx tc`` reads (a flag, when given, wins).
ENVIRONMENT = {
    "ATX_TC_HOST": "--host",
    "ATX_TC_PORT": "--port",
    "ATX_TC_STORE": "--store",
    "ATX_TC_TOKEN": "--token",
    "ATX_TC_ADMIN_TOKEN": "--admin-token",
    "ATX_DATA_DIR": "directory of the default SQLite store (default ~/.local/share/atx)",
    "ATX_SQLITE_SYNCHRONOUS": "SQLite synchronous mode, NORMAL, FULL or EXTRA (default NORMAL)",
}

_EPILOG = "environment:\n" + "\n".join(
    f"  {name:<24}{'same as ' + what if what.startswith('--') else what}"
    for name, what in ENVIRONMENT.items()
)

_MYSQL_SCHEMES = ("mysql", "mariadb", "mysql+pymysql")
_POSTGRES_SCHEMES = ("postgresql", "postgres")


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, not {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return value


# argparse names the type function in its errors: name them like the values.
_port.__name__ = "port"
_non_negative.__name__ = _positive.__name__ = "int"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    add = parser.add_argument
    add(
        "--host",
        metavar="HOST",
        default=env("ATX_TC_HOST", "127.0.0.1"),
        help="listen address (default: 127.0.0.1; env ATX_TC_HOST)",
    )
    # A string default goes through type=, so a bad ATX_TC_PORT is a usage error.
    add(
        "--port",
        metavar="PORT",
        type=_port,
        default=env("ATX_TC_PORT", "8091"),
        help="gRPC port, 0 for any free one (default: 8091; env ATX_TC_PORT)",
    )
    add(
        "--store",
        default=env("ATX_TC_STORE", ""),
        metavar="URL",
        help="session store: sqlite:////absolute/path.db (sqlite:///relative.db),"
        " redis://host:6379/0?key_prefix=atx:, mysql://user:password@host:3306/database"
        " or postgresql://user:password@host:5432/database (default: sqlite at"
        " $ATX_DATA_DIR/tc.db or ~/.local/share/atx/tc.db; env ATX_TC_STORE)",
    )
    add(
        "--create-database",
        action="store_true",
        help="with a MySQL or PostgreSQL store: create its database if it does not exist"
        " (default: off)",
    )
    add(
        "--token",
        metavar="TOKEN",
        default=env("ATX_TC_TOKEN", ""),
        help="require this bearer token from TMs and RMs (default: none; env ATX_TC_TOKEN)",
    )
    add(
        "--admin-token",
        metavar="TOKEN",
        default=env("ATX_TC_ADMIN_TOKEN", ""),
        help="require this token for AdminService (default: none; env ATX_TC_ADMIN_TOKEN)",
    )
    add(
        "--metrics-port",
        metavar="PORT",
        type=_port,
        default=0,
        help="Prometheus metrics port (default: 0, off)",
    )
    add(
        "--tls-cert",
        default="",
        metavar="PATH",
        help="PEM certificate chain: serve TLS (default: plaintext; needs --tls-key)",
    )
    add("--tls-key", default="", metavar="PATH", help="PEM private key of --tls-cert")
    add(
        "--job-interval-ms",
        metavar="MS",
        type=_positive,
        default=1000,
        help="how often the background jobs run, ms (default: 1000)",
    )
    add(
        "--job-lock-ttl-ms",
        metavar="MS",
        type=_positive,
        default=10_000,
        help="expiry of a background job's lock on a shared store, ms; another node takes over"
        " after it; must exceed --job-interval-ms (default: 10000)",
    )
    add(
        "--default-timeout-ms",
        metavar="MS",
        type=_positive,
        default=60_000,
        help="timeout of a global transaction that asks for none, ms (default: 60000)",
    )
    add(
        "--max-timeout-ms",
        metavar="MS",
        type=_positive,
        default=24 * 3600 * 1000,
        help="largest timeout Begin accepts, ms (default: 86400000, 24 h)",
    )
    add(
        "--retry-backoff-ms",
        metavar="MS",
        type=_positive,
        default=1000,
        help="first phase-two retry delay, doubled per attempt, ms (default: 1000)",
    )
    add(
        "--retry-backoff-max-ms",
        metavar="MS",
        type=_positive,
        default=60_000,
        help="longest phase-two retry delay, ms (default: 60000)",
    )
    add(
        "--max-commit-retry-timeout-ms",
        metavar="MS",
        type=_non_negative,
        default=0,
        help="give up retrying commits after this long, ms (default: 0, retry forever)",
    )
    add(
        "--max-rollback-retry-timeout-ms",
        metavar="MS",
        type=_non_negative,
        default=0,
        help="give up retrying rollbacks after this long, ms (default: 0, retry forever)",
    )
    add(
        "--branch-timeout-ms",
        metavar="MS",
        type=_positive,
        default=10_000,
        help="how long one BranchCommit/BranchRollback waits for the RM, ms (default: 10000)",
    )
    add(
        "--heartbeat-interval-ms",
        metavar="MS",
        type=_positive,
        default=5000,
        help="RMs heartbeat this often; silent for 3 intervals means gone, ms (default: 5000)",
    )
    add(
        "--history-size",
        metavar="N",
        type=_non_negative,
        default=1000,
        help="finished transactions kept for `atx admin globals --history` (default: 1000)",
    )
    add(
        "--node-id",
        metavar="NAME",
        default="",
        help="this node's name in job locks and logs (default: host:port)",
    )
    add(
        "--shutdown-grace-s",
        metavar="S",
        type=float,
        default=10.0,
        help="on SIGTERM, wait this long for calls in flight, s (default: 10)",
    )


def config_from_args(args: argparse.Namespace) -> object:
    from pathlib import Path

    from atx.errors import ConfigurationError, UsageError
    from atx.tc.config import TCConfig, default_store_url

    if (args.tls_cert == "") != (args.tls_key == ""):
        raise UsageError("--tls-cert and --tls-key go together", hint="pass both, or neither")
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path and not Path(path).is_file():
            raise ConfigurationError(
                f"{flag} {path}: no such file", hint="give the path of a PEM file"
            )
    if args.job_lock_ttl_ms <= args.job_interval_ms:
        raise UsageError(
            f"--job-lock-ttl-ms ({args.job_lock_ttl_ms}) must exceed"
            f" --job-interval-ms ({args.job_interval_ms}), or the lock lapses between runs",
            hint="raise --job-lock-ttl-ms (default 10000) or lower --job-interval-ms",
        )
    config = TCConfig(
        host=args.host,
        port=args.port,
        store_url=args.store or default_store_url(),
        default_timeout_ms=args.default_timeout_ms,
        max_timeout_ms=args.max_timeout_ms,
        job_interval_ms=args.job_interval_ms,
        job_lock_ttl_ms=args.job_lock_ttl_ms,
        retry_backoff_base_ms=args.retry_backoff_ms,
        retry_backoff_max_ms=args.retry_backoff_max_ms,
        max_commit_retry_timeout_ms=args.max_commit_retry_timeout_ms,
        max_rollback_retry_timeout_ms=args.max_rollback_retry_timeout_ms,
        branch_timeout_ms=args.branch_timeout_ms,
        heartbeat_interval_ms=args.heartbeat_interval_ms,
        history_size=args.history_size,
        token=args.token,
        admin_token=args.admin_token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        metrics_port=args.metrics_port,
        shutdown_grace_s=args.shutdown_grace_s,
    )
    if args.node_id:
        config.node_id = args.node_id
    return config


def _create_mysql_database(url: str) -> None:
    import pymysql

    from atx.dsn import parse_mysql_url

    target = parse_mysql_url(url)
    kwargs = {**target.connect_kwargs(), "database": None}
    kwargs.setdefault("connect_timeout", 5)
    connection = pymysql.connect(**kwargs)
    try:
        with connection.cursor() as cursor:
            name = target.database.replace("`", "``")
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
    finally:
        connection.close()


def _create_postgres_database(url: str) -> None:
    import psycopg
    import psycopg.errors

    from atx.dsn import parse_postgres_url

    target = parse_postgres_url(url)
    kwargs = {"connect_timeout": 5, **target.connect_kwargs(), "dbname": "postgres"}
    with psycopg.connect(**kwargs, autocommit=True) as connection:
        found = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)
        ).fetchone()
        if found is None:
            name = target.database.replace('"', '""')
            # PostgreSQL has no CREATE DATABASE IF NOT EXISTS: a node starting
            # at the same moment may win the race, which is just as good.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                connection.execute(f'CREATE DATABASE "{name}"')


def open_store(
    url: str, history_size: int, create_database: bool = False, flag: str = "--store"
) -> SessionStore:
    """The store ``url`` (given as ``flag``) names, or a typed start-up error
    saying what to fix."""
    from atx.cli_errors import opening
    from atx.dsn import parse_mysql_url, parse_postgres_url
    from atx.errors import UsageError
    from atx.tc.store.base import create_store

    scheme = urlsplit(url).scheme
    mysql = scheme in _MYSQL_SCHEMES
    postgres = scheme in _POSTGRES_SCHEMES
    if create_database and not (mysql or postgres):
        raise UsageError(
            f"--create-database works with a MySQL or PostgreSQL store, not {scheme or url!r}",
            hint="drop the flag: SQLite creates its file, Redis needs nothing",
        )
    sqlite_path: str | None = None
    with opening(url, flag=flag, create_hint="pass --create-database"):
        if mysql:
            target = parse_mysql_url(url)
            if not target.database:
                raise UsageError(
                    "the MySQL store URL names no database",
                    hint="end --store with /database, e.g. mysql://root@127.0.0.1:3306/atx_tc",
                )
            if "connect_timeout" in dict(target.options):
                # The store sets its own (5 s); PyMySQL would get it twice.
                raise UsageError(
                    "the TC's MySQL store does not take connect_timeout yet (it uses 5 s)",
                    hint="drop connect_timeout from --store",
                )
        elif postgres and not parse_postgres_url(url).database:
            raise UsageError(
                "the PostgreSQL store URL names no database",
                hint="end --store with /database, e.g. postgresql://postgres@127.0.0.1:5432/atx_tc",
            )
        elif scheme == "sqlite":
            from atx.tc.store.sqlite import sqlite_path_from_url

            sqlite_path = sqlite_path_from_url(url)[0]
    with opening(url, flag=flag, sqlite_path=sqlite_path, create_hint="pass --create-database"):
        if create_database:
            (_create_postgres_database if postgres else _create_mysql_database)(url)
        return create_store(url, history_size)


def check_port(host: str, port: int) -> None:
    """BindError when no address of ``host`` can take ``port``: said before the
    store opens, and without gRPC core's own log line about it."""
    import socket

    from atx.errors import BindError

    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        raise BindError(
            f"cannot listen on {host}:{port}: {error}", hint="check --host (or ATX_TC_HOST)"
        ) from None
    last: OSError | None = None
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does
            try:
                probe.bind(address)
                return
            except OSError as error:
                last = error
    raise BindError(
        f"cannot listen on {host}:{port}: {last.strerror if last else 'no address'}",
        address=f"{host}:{port}",
        hint="is another process (another TC?) using the port? pick another with --port"
        " (or ATX_TC_PORT), or 0 for any free one",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from atx.tc.config import TCConfig
    from atx.tc.server import serve

    config = config_from_args(args)
    assert isinstance(config, TCConfig)
    check_port(config.host, config.port)
    store = open_store(config.store_url, config.history_size, args.create_database)
    from atx import tracing

    tracing.configure_from_env("atx-tc")
    return asyncio.run(serve(config, store))
