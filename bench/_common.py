"""Shared set-up for the RM benchmarks: a scratch MariaDB database, a TC process, and a
bare gRPC echo server on the TC's server stack (grpc.aio) to compare RPC costs against.

``python bench/_common.py --serve-echo PORT`` runs the echo server (used by echo_process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator

import grpc
import pymysql

from atx.dsn import parse_mysql_url
from atx.testing import ManagedProcess, free_port, start_process

ECHO_METHOD = "/bench.Echo/Echo"

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
    return grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler})


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
