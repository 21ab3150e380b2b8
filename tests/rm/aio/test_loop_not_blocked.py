"""A grpc.aio service over an async proxy serves 32 concurrent global transactions
while a timer ticks on the same loop: no two ticks are late by more than 50 ms, and
none by 0.5 s (not counting time the OS kept the thread off the CPU), so no
statement, TC call or lock-retry wait blocks the loop. One late tick is allowed: on
the loaded 2-core CI machine another thread of the process (phase two, the RM's
stream) may keep the GIL from the loop once, which schedstat does not count.

Six or seven transactions contend for each of four rows (global lock retries,
InnoDB row lock waits); every fifth one changes a row of its own and rolls back
(phase two runs on the RM's threads). Rollbacks stay off the contended rows: a
transaction waiting on a row whose holder is rolling back gives up at once
(AT's deadlock rule), which is another test's subject.
"""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio

import atx.rm as rm
from atx.rm.tc_client import TCClient
from tests.rm.conftest import Database, wait_until

CALLS = 32
ROWS = 4
TICK = 0.005
METHOD = "/atx.test.Bank/Transfer"


class Refused(Exception):
    pass


def _run_queue_wait() -> float:
    """Seconds this thread has spent runnable but not running (Linux schedstat)."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def row(number: int) -> int:
    return ROWS + 1 + number if number % 5 == 0 else number % ROWS + 1


def test_loop_keeps_ticking_through_32_global_transactions(mariadb_url: str, tc: TCClient) -> None:
    db = Database("mariadb", mariadb_url, "maria-aio-tick")
    db.setup_accounts(ROWS + CALLS, 1000)
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(10)

    async def main() -> tuple[list[float], list[bytes]]:
        pool: asyncio.Queue[rm.AsyncConnectionProxy] = asyncio.Queue()
        for conn in await asyncio.gather(*(db.connect_async() for _ in range(CALLS))):
            pool.put_nowait(conn)

        @rm.global_transactional(name="tick", lock_retry_interval=0.02, lock_retry_times=500)
        async def transfer(number: int) -> None:
            conn = await pool.get()
            try:
                async with conn.cursor() as cur:
                    await cur.execute(
                        "UPDATE account SET balance = balance + 1 WHERE id = %s", (row(number),)
                    )
                await conn.commit()
            finally:
                pool.put_nowait(conn)
            if number % 5 == 0:
                raise Refused()

        async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            try:
                await transfer(int(request))
            except Refused:
                return b"refused"
            return b"ok"

        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "atx.test.Bank",
                    {"Transfer": grpc.unary_unary_rpc_method_handler(handle)},
                )
            ]
        )
        port = server.add_insecure_port("127.0.0.1:0")  # a free port (the TC has `port`)
        await server.start()
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        lates: list[float] = []

        async def tick() -> None:
            while not done.is_set():
                started, queued = loop.time(), _run_queue_wait()
                await asyncio.sleep(TICK)
                # Time the OS kept this thread waiting for a core (the 2-core CI machine
                # runs other tests beside this one) is not the loop being blocked.
                lates.append(loop.time() - started - TICK - (_run_queue_wait() - queued))

        ticker = asyncio.create_task(tick())
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as client:
            call = client.unary_unary(METHOD)
            replies = await asyncio.gather(*(call(str(n).encode()) for n in range(CALLS)))
        done.set()
        await ticker
        await server.stop(None)
        while not pool.empty():
            await pool.get_nowait().close()
        return lates, list(replies)

    lates, replies = asyncio.run(main())
    late = sorted(lates)
    # One tick may lose the GIL to another thread of this process (phase two, the RM's
    # stream) on a loaded machine; a call that blocks the loop delays many.
    assert late[-2] < 0.050, f"ticks were {late[-1] * 1000:.1f} and {late[-2] * 1000:.1f} ms late"
    assert late[-1] < 0.5, f"a tick was {late[-1] * 1000:.1f} ms late"
    assert replies == [b"refused" if n % 5 == 0 else b"ok" for n in range(CALLS)]
    wait_until(lambda: db.undo_rows() == 0, what="no undo rows")
    committed = [n for n in range(CALLS) if n % 5]
    expected = [sum(1 for n in committed if row(n) == i) for i in range(1, ROWS + CALLS + 1)]
    assert [b - 1000 for _, b, _ in db.accounts()] == expected
