"""Shared set-up for the RM benchmarks: a scratch MariaDB database and a TC process."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator

import pymysql

from atx.dsn import parse_mysql_url
from atx.testing import ManagedProcess, free_port, start_process

MYSQL_URL = os.environ.get("ATX_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/")


@contextlib.contextmanager
def scratch_database(rows: int = 1000) -> Iterator[str]:
    """A fresh database with table ``t(id INT PRIMARY KEY, v INT)``; dropped afterwards."""
    target = parse_mysql_url(MYSQL_URL)
    name = f"atx_bench_{uuid.uuid4().hex[:10]}"
    admin = pymysql.connect(**{**target.connect_kwargs(), "database": None, "autocommit": True})
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
        cursor.execute(f"CREATE TABLE `{name}`.t (id INT PRIMARY KEY, v INT NOT NULL)")
        values = ",".join(f"({i}, 0)" for i in range(1, rows + 1))
        cursor.execute(f"INSERT INTO `{name}`.t (id, v) VALUES {values}")
    try:
        yield target.url(name)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@contextlib.contextmanager
def tc_process() -> Iterator[ManagedProcess]:
    """A TC on a free port with a SQLite store in a temporary directory."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        process = start_process(
            ["tc", "--port", str(port), "--store", f"sqlite:///{tmp}/tc.db"], port, None
        )
        try:
            yield process
        finally:
            process.kill()
