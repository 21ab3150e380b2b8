"""What the bank and the wallet share: a JSON-over-gRPC API and a pooled database.

The API needs no .proto file: each method takes and returns a JSON object,
``grpc.unary_unary_rpc_method_handler`` on the server and ``channel.unary_unary``
on the client. The XID travels in the call's metadata (``tx_xid``) either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc

import atx.rm as rm

Message = dict[str, Any]
Handler = Callable[[Message, grpc.ServicerContext], Message]


def _encode(message: Message) -> bytes:
    return json.dumps(message).encode()


def _decode(data: bytes) -> Message:
    result: Message = json.loads(data)
    return result


def json_service(name: str, methods: dict[str, Handler]) -> grpc.GenericRpcHandler:
    """A gRPC service ``name`` whose methods take and return JSON objects."""
    return grpc.method_handlers_generic_handler(
        name,
        {
            method: grpc.unary_unary_rpc_method_handler(
                handler, request_deserializer=_decode, response_serializer=_encode
            )
            for method, handler in methods.items()
        },
    )


def call(channel: grpc.Channel, service: str, method: str, request: Message) -> Message:
    """Call ``service/method`` with a JSON request; raises grpc.RpcError on failure."""
    stub = channel.unary_unary(
        f"/{service}/{method}", request_serializer=_encode, response_deserializer=_decode
    )
    reply: Message = stub(request, timeout=30.0)
    return reply


class Database:
    """One service's database as an rm resource, with a pool of proxies.

    ``url`` is ``mysql://user:password@host:port/db`` (MariaDB or MySQL) or
    ``sqlite:///path`` (SQLite, for a machine without MariaDB).
    """

    def __init__(self, url: str, resource_id: str) -> None:
        self.sqlite = url.startswith("sqlite:///")
        # Every connect_* registers the database as the rm resource `resource_id`
        # (phase two finds it by that name); create_undo_table=True makes its
        # undo_log table, which `atx rm init --dsn URL` does once otherwise.
        # A threaded server needs a pool: a proxy is one thread's at a time.
        if self.sqlite:
            path = url.removeprefix("sqlite:///")
            rm.connect_sqlite(path, resource_id=resource_id, create_undo_table=True).close()
            self.pool = rm.pool(lambda: rm.connect_sqlite(path, resource_id=resource_id), size=4)
        else:
            rm.connect_mysql(url, resource_id=resource_id, create_undo_table=True).close()
            self.pool = rm.pool(url, resource_id=resource_id, size=4)

    def sql(self, text: str) -> str:
        """The SQL here uses PyMySQL's ``%s`` placeholders; sqlite3 wants ``?``."""
        return text.replace("%s", "?") if self.sqlite else text

    def run(self, *statements: str) -> None:
        """Run statements (DDL, seed rows) in one local transaction, outside any global one."""
        conn = self.pool.connect()
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
            conn.commit()
        finally:
            conn.close()

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        """A plain read (outside any global transaction: committed rows only)."""
        conn = self.pool.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(query)
                return [tuple(row) for row in cur.fetchall()]
        finally:
            conn.close()  # back to the pool, rolled back
