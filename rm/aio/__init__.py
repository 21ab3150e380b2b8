"""The asyncio RM: async proxies over asyncmy, aiosqlite, psycopg; one copy of the AT logic.

Install the drivers with ``pip install 'atx[aio]'`` (psycopg: ``atx[postgres]``)::

    conn = await rm.connect_asyncmy("mysql://root@127.0.0.1:3306/orders", "orders-db")

    @rm.global_transactional(timeout=30.0)
    async def place_order(...):
        async with conn.cursor() as cur:
            await cur.execute("UPDATE stock SET qty = qty - %s WHERE id = %s", (n, item))
        await conn.commit()   # registers the branch over grpc.aio, writes the undo log
"""

from atx.rm.aio.bridge import await_only, spawn
from atx.rm.aio.connect import (
    connect_aiosqlite,
    connect_asyncmy,
    connect_psycopg_async,
    wrap_async,
)
from atx.rm.aio.proxy import AsyncConnectionProxy, AsyncCursorProxy
from atx.rm.aio.tc_client import AioTCClient, get_aio_tc_client

__all__ = [
    "AioTCClient",
    "AsyncConnectionProxy",
    "AsyncCursorProxy",
    "await_only",
    "connect_aiosqlite",
    "connect_asyncmy",
    "connect_psycopg_async",
    "get_aio_tc_client",
    "spawn",
    "wrap_async",
]
