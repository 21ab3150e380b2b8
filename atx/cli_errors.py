"""How every ``atx`` command fails: one line, a hint, an exit code.

``error: [CODE] message`` then ``hint: ...`` on stderr (with ``--json``, one
JSON object ``{"error": {"code", "message", "hint"}}`` instead), and no
traceback unless ``--log-level DEBUG``. Exit codes: 2 for usage and
configuration errors (bad flags and URLs, a store that is missing, refuses us
or cannot be reached at start-up), 1 for any other failure, 130 for Ctrl-C.

A command opens what its flags name inside :func:`opening`, which turns the
drivers' exceptions (PyMySQL, psycopg, redis-py, sqlite3) into the typed errors of
:mod:`atx.errors`, with a hint that names the flag.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import re
import sqlite3
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, NoReturn
from urllib.parse import urlsplit

import grpc

from atx.errors import (
    AtxError,
    BindError,
    ConfigurationError,
    DatabaseAccessDeniedError,
    DatabaseNotFoundError,
    DatabaseUnreachableError,
    InternalError,
    InvalidArgumentError,
    SQLiteOpenError,
    UsageError,
)

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "ArgumentParser",
    "exit_code",
    "opening",
    "report",
    "to_atx_error",
]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

logger = logging.getLogger(__name__)

# MySQL/MariaDB error numbers (server ER_*, client CR_*).
_ER_DBACCESS_DENIED = 1044
_ER_ACCESS_DENIED = 1045
_ER_BAD_DB = 1049
_CR_UNREACHABLE = {2002, 2003, 2005, 2006, 2013}


class ArgumentParser(argparse.ArgumentParser):
    """argparse that fails like the rest of atx (a UsageError) instead of
    printing its usage block; subparsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, hint=f"see `{self.prog} --help`")


def exit_code(error: AtxError) -> int:
    # By status, not type: each package's INVALID_ARGUMENT errors count too.
    if isinstance(error, ConfigurationError) or error.grpc_code == grpc.StatusCode.INVALID_ARGUMENT:
        return EXIT_USAGE
    return EXIT_FAILURE


def report(
    error: BaseException,
    *,
    as_json: bool = False,
    debug: bool | None = None,
    hint: str = "",
    stream: IO[str] | None = None,
) -> int:
    """Print ``error`` the atx way and return the exit code."""
    out = stream or sys.stderr
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if debug is None:
        debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    atx_error = to_atx_error(error)
    hint = hint or atx_error.details.get("hint", "")
    if not isinstance(error, AtxError) and atx_error.code == InternalError.code and not hint:
        hint = "this is a bug or an unexpected environment; --log-level DEBUG shows the traceback"
    if debug:
        traceback.print_exception(error, file=out)
    if as_json:
        body = {"code": atx_error.code, "message": atx_error.message, "hint": hint}
        out.write(json.dumps({"error": body}, sort_keys=True) + "\n")
    else:
        out.write(f"error: {atx_error}\n")
        if hint:
            out.write(f"hint: {hint}\n")
    out.flush()
    return exit_code(atx_error)


def to_atx_error(error: BaseException) -> AtxError:
    """The typed error for ``error``: itself, a known driver failure, or INTERNAL."""
    if isinstance(error, AtxError):
        return error
    translated = _driver_error(error, url="", flag="")
    if translated is not None:
        return translated
    # One line: the rest (e.g. a child process's output) is for --log-level DEBUG.
    first = next(iter(str(error).splitlines()), "")
    return InternalError(f"{type(error).__name__}: {first}" if first else type(error).__name__)


@contextmanager
def opening(
    url: str,
    *,
    flag: str,
    sqlite_path: str | None = None,
    create_hint: str = "",
) -> Iterator[None]:
    """Translate a failure to open what ``url`` (given as ``flag``) names.

    ``sqlite_path`` is the file the command resolved the URL to; ``create_hint``
    is added when a MySQL database does not exist (e.g. a flag that creates it).
    """
    try:
        yield
    except ConfigurationError:
        raise
    except Exception as error:
        translated = _driver_error(error, url, flag, sqlite_path, create_hint)
        if translated is not None:
            raise translated from error
        if isinstance(error, InvalidArgumentError) and "hint" not in error.details:
            error.details["hint"] = _url_forms(flag)
        raise


def _url_forms(flag: str) -> str:
    return (
        f"{flag or 'the URL'} takes sqlite:///relative.db or sqlite:////absolute/path.db,"
        " redis://host:6379/0, mysql://user:password@host:3306/database"
        " or postgresql://user:password@host:5432/database"
    )


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _driver_error(
    error: BaseException,
    url: str,
    flag: str,
    sqlite_path: str | None = None,
    create_hint: str = "",
) -> AtxError | None:
    for cause in _chain(error):
        found = (
            _mysql_error(cause, url, flag, create_hint)
            or _postgres_error(cause, url, flag, create_hint)
            or _redis_error(cause, url, flag)
            or _sqlite_error(cause, url, flag, sqlite_path)
            or _bind_error(cause)
        )
        if found is not None:
            return found
    return None


def _where(url: str) -> tuple[str, str]:
    """(host:port, database) of a URL, for messages (never its password)."""
    if not url:
        return "", ""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = f"{parts.hostname or '127.0.0.1'}:{port}" if port else parts.hostname or ""
    return host, parts.path.lstrip("/")


def _mysql_error(error: BaseException, url: str, flag: str, create_hint: str) -> AtxError | None:
    import pymysql

    if not isinstance(error, pymysql.err.OperationalError | pymysql.err.InternalError):
        return None
    code = error.args[0] if error.args and isinstance(error.args[0], int) else 0
    text = str(error.args[1]) if len(error.args) > 1 else str(error)
    host, database = _where(url)
    on = f" on {host}" if host else ""
    name = flag or "the URL"
    if code == _ER_BAD_DB:
        if not database and text.count("'") >= 2:
            database = text.split("'")[1]  # "Unknown database 'name'"
        quoted = database if database.isidentifier() else f"`{database}`"
        hint = f"create it with `CREATE DATABASE {quoted}`"
        return DatabaseNotFoundError(
            f"MySQL database {database!r} does not exist{on}",
            database=database,
            hint=hint + (f", or {create_hint}" if create_hint else ""),
        )
    if code in (_ER_ACCESS_DENIED, _ER_DBACCESS_DENIED):
        return DatabaseAccessDeniedError(
            f"MySQL refused the login{on}: {text}",
            hint=f"check the user and password in {name} (mysql://user:password@host:port/db)",
        )
    if code in _CR_UNREACHABLE:
        return DatabaseUnreachableError(
            f"cannot reach MySQL{on}: {text}",
            hint=f"is the server running? check the host and port in {name}",
        )
    return None


# libpq reports a failed connection as text only (no SQLSTATE reaches the
# client), so the kind is read from the server's and libpq's English messages.
_PG_MISSING = re.compile(r'database "(?P<name>[^"]*)" does not exist')
_PG_DENIED = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "does not exist",  # role "x" does not exist (a missing database matched first)
    "permission denied for database",
    "no password supplied",
)


def _postgres_error(error: BaseException, url: str, flag: str, create_hint: str) -> AtxError | None:
    psycopg = sys.modules.get("psycopg")  # not loaded: not a psycopg error
    if psycopg is None or not isinstance(error, psycopg.OperationalError):
        return None
    if getattr(error, "sqlstate", None) is not None:
        return None  # a server error on a working connection, not a failed start
    # "connection failed: connection to server at "h", port p failed: FATAL:  ..."
    text = " ".join(str(error).split())
    reason = text.rpartition("FATAL: ")[2] if "FATAL: " in text else text
    reason = reason.removeprefix("connection failed: ")
    host, database = _where(url)
    on = f" on {host}" if host else ""
    missing = _PG_MISSING.search(reason)
    if missing:
        database = database or missing["name"]
        quoted = database.replace('"', '""')
        hint = f'create it with `CREATE DATABASE "{quoted}"`'
        return DatabaseNotFoundError(
            f"PostgreSQL database {database!r} does not exist{on}",
            database=database,
            hint=hint + (f", or {create_hint}" if create_hint else ""),
        )
    name = flag or "the URL"
    if any(marker in reason for marker in _PG_DENIED):
        return DatabaseAccessDeniedError(
            f"PostgreSQL refused the login{on}: {reason}",
            hint=f"check the user and password in {name} (postgresql://user:password@host:port/db)",
        )
    return DatabaseUnreachableError(
        f"cannot reach PostgreSQL{on}: {reason}",
        hint=f"is the server running? check the host and port in {name}",
    )


def _redis_error(error: BaseException, url: str, flag: str) -> AtxError | None:
    import redis

    host, _ = _where(url)
    on = f" at {host}" if host else ""
    name = flag or "the URL"
    if isinstance(error, redis.exceptions.AuthenticationError):
        return DatabaseAccessDeniedError(
            f"Redis refused the login{on}: {error}",
            hint=f"check the password in {name} (redis://:password@host:port/db)",
        )
    if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return DatabaseUnreachableError(
            f"cannot reach Redis{on}: {error}",
            hint=f"is the server running? check the host and port in {name}",
        )
    return None


def _sqlite_error(
    error: BaseException, url: str, flag: str, sqlite_path: str | None
) -> AtxError | None:
    if not url.startswith("sqlite:"):
        return None
    if not isinstance(error, sqlite3.OperationalError | sqlite3.DatabaseError | OSError):
        return None
    path = Path(sqlite_path) if sqlite_path else None
    resolved = url if path is None else str(path if path.is_absolute() else Path.cwd() / path)
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    message = f"cannot open SQLite database {resolved} (from {url}): {reason}"
    if path is not None and not path.is_absolute():
        absolute = "/" + str(path).lstrip("/")
        hint = (
            "sqlite:/// (three slashes) is relative to the current directory;"
            f" if you meant {absolute}, write sqlite:///{absolute}"
        )
    else:
        hint = f"check that the directory of {resolved} exists and is writable"
    return SQLiteOpenError(message, path=resolved, hint=hint)


def _bind_error(error: BaseException) -> AtxError | None:
    # grpc raises a bare RuntimeError("Failed to bind to address H:P; ..."),
    # the stdlib's servers (atx console) an OSError.
    text = str(error)
    if isinstance(error, OSError) and error.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
        address = ""
    elif isinstance(error, RuntimeError) and text.startswith("Failed to bind to address"):
        address = text.removeprefix("Failed to bind to address ").split(";")[0].strip()
    else:
        return None
    return BindError(
        f"cannot listen on {address}" if address else f"cannot listen: {text}",
        address=address,
        hint="is another process (another atx?) using the port? pick another with --port",
    )
