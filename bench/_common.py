"""Shared set-up for the benchmarks: scratch MariaDB databases, TC processes (SQLite or
Redis store; optionally running the code of another git revision, for A/B runs), and a
bare gRPC echo server on the TC's server stack (grpc.aio) to compare RPC costs against.

``python bench/_common.py --serve-echo PORT`` runs the echo server (used by echo_process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pymysql
import redis

from atx.dsn import parse_mysql_url
from atx.testing import ManagedProcess, free_port, start_process

ECHO_METHOD = "/bench.Echo/Echo"
#: The same echo as a bidirectional stream: each message answered by itself.
ECHO_STREAM_METHOD = "/bench.Echo/Stream"

MYSQL_URL = os.environ.get("ATX_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/")
REDIS_URL = os.environ.get("ATX_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    """CPU time of a process's live threads, in nanosecond resolution (Linux
    /proc/PID/task/*/schedstat; /proc/PID/stat counts 10 ms clock ticks)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


@contextlib.contextmanager
def scratch_database(rows: int = 1000, table: str = "t", column: str = "v") -> Iterator[str]:
    """A fresh database with table ``table(id INT PRIMARY KEY, column BIGINT)`` holding
    rows 1..``rows`` at 0; dropped afterwards."""
    target = parse_mysql_url(MYSQL_URL)
    name = f"atx_bench_{uuid.uuid4().hex[:10]}"
    admin = pymysql.connect(**{**target.connect_kwargs(), "database": None, "autocommit": True})
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
        cursor.execute(
            f"CREATE TABLE `{name}`.`{table}` (id INT PRIMARY KEY, `{column}` BIGINT NOT NULL)"
        )
        values = ",".join(f"({i}, 0)" for i in range(1, rows + 1))
        cursor.execute(f"INSERT INTO `{name}`.`{table}` (id, `{column}`) VALUES {values}")
    try:
        yield target.url(name)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@contextlib.contextmanager
def scratch_redis_url() -> Iterator[str]:
    """A Redis store URL with a key prefix of its own; its keys are deleted afterwards."""
    prefix = f"atx_bench_{uuid.uuid4().hex[:10]}:"
    separator = "&" if "?" in REDIS_URL else "?"
    try:
        yield f"{REDIS_URL}{separator}key_prefix={prefix}"
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()


@contextlib.contextmanager
def source_tree(ref: str) -> Iterator[str]:
    """The code of git revision ``ref`` laid out as the installed ``atx`` namespace
    (as scripts/typecheck does): the ``PYTHONPATH`` entry under which a child process
    imports that revision's atx.tc, atx.rm, ... instead of the working tree's."""
    with tempfile.TemporaryDirectory(prefix="atx-bench-tree-") as tmp:
        src, pkg = Path(tmp) / "src", Path(tmp) / "pkg"
        src.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        (pkg / "atx").mkdir(parents=True)
        for entry in (src / "atx").iterdir():
            (pkg / "atx" / entry.name).symlink_to(entry)
        for folder, name in (("tc", "tc"), ("rm", "rm"), ("hooks", "hooks"), ("services", "shop")):
            (pkg / "atx" / name).symlink_to(src / folder)
        yield str(pkg)


@contextlib.contextmanager
def tc_process(
    store: str | None = None, pythonpath: str | None = None, env: dict[str, str] | None = None
) -> Iterator[ManagedProcess]:
    """A TC on a free port, on ``store`` (a store URL; default a SQLite file in a
    temporary directory), running the code under ``pythonpath`` when given
    (see :func:`source_tree`), else the working tree's."""
    port = free_port()
    env = {**(env or {}), **({"PYTHONPATH": pythonpath} if pythonpath else {})}
    with tempfile.TemporaryDirectory() as tmp:
        url = store or f"sqlite:///{tmp}/tc.db"
        # -P: no working directory on sys.path, where the checkout's atx/ would shadow
        # the tree's (and pull the working tree's atx.tc in through the editable install).
        argv = [sys.executable, "-P", "-m", "atx.cli", "--log-level", "WARNING", "tc"]
        argv += ["--port", str(port), "--store", url]
        process = start_process(argv, port, env)
        try:
            yield process
        finally:
            process.kill()


@contextlib.contextmanager
def echo_process() -> Iterator[ManagedProcess]:
    """A grpc.aio echo server (returns its request bytes) on a free port."""
    port = free_port()
    process = ManagedProcess(
        [sys.executable, os.path.abspath(__file__), "--serve-echo", str(port)], port
    )
    process.start()
    try:
        yield process
    finally:
        process.kill()


def echo_handlers(threaded: bool = False) -> grpc.GenericRpcHandler:
    """``/bench.Echo/Echo`` returning its request bytes (sync handler for a threaded server)."""
    if threaded:

        def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
            return request

        handler = grpc.unary_unary_rpc_method_handler(echo)
    else:

        async def echo_async(request: bytes, context: object) -> bytes:
            return request

        handler = grpc.unary_unary_rpc_method_handler(echo_async)

    async def stream(requests: Any, context: object) -> Any:
        async for request in requests:
            yield request

    handlers = {"Echo": handler}
    if not threaded:
        handlers["Stream"] = grpc.stream_stream_rpc_method_handler(stream)
    return grpc.method_handlers_generic_handler("bench.Echo", handlers)


async def serve_aio(port: int, add: Callable[[grpc.aio.Server], None]) -> None:
    """A grpc.aio server built like the TC's, with what ``add`` puts on it and
    health SERVING, on 127.0.0.1:``port`` until killed."""
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    add(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)  # type: ignore[no-untyped-call]
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def _add_echo(server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers((echo_handlers(),))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve-echo", type=int, required=True, metavar="PORT")
    asyncio.run(serve_aio(parser.parse_args().serve_echo, _add_echo))
