"""What one TC request would cost as a message on an open stream instead of a unary call.

The TC serves every TM and RM request as a unary gRPC call; the RM already keeps one
bidirectional stream (Attach) open to it. This measures the transport alone, on the
TC's stack (a grpc.aio server in its own process, the RM's sync client): the same
bytes echoed by a unary call and as one message on an open stream (ping-pong, one
request in flight per stream), one caller and 8 threads, wall time and the server's
CPU per request. Nothing of atx is in the loop: it is the floor either design starts from.

Run: .venv/bin/python bench/bench_stream_rpc.py [--rounds 5] [--n 2000]
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc
from _common import ECHO_METHOD, ECHO_STREAM_METHOD, cpu_seconds, echo_process

from atx.v1 import resource_manager_pb2 as rm_pb2

PAYLOAD = rm_pb2.BranchRegisterRequest(
    xid="127.0.0.1:8091:1234567890123", resource_id="bench-register", lock_keys="t:1"
).SerializeToString()

Caller = Callable[[], None]


def unary_caller(channel: grpc.Channel) -> tuple[Caller, Callable[[], None]]:
    call = channel.unary_unary(ECHO_METHOD)
    return (lambda: call(PAYLOAD, timeout=10)), (lambda: None)


def stream_caller(channel: grpc.Channel) -> tuple[Caller, Callable[[], None]]:
    outgoing: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def requests() -> Iterator[bytes]:
        while (item := outgoing.get()) is not None:
            yield item

    replies = channel.stream_stream(ECHO_STREAM_METHOD)(requests())

    def op() -> None:
        outgoing.put(PAYLOAD)
        next(replies)

    def close() -> None:
        outgoing.put(None)
        for _ in replies:
            pass

    return op, close


def run(
    make: Callable[[grpc.Channel], tuple[Caller, Callable[[], None]]],
    channel: grpc.Channel,
    threads: int,
    n: int,
    pid: int,
) -> tuple[float, float, float]:
    """Per request over ``threads`` callers: wall, server CPU and client CPU seconds."""
    callers = [make(channel) for _ in range(threads)]
    for op, _close in callers:
        for _ in range(20):
            op()
    per = n // threads
    cpu = cpu_seconds(pid)
    client_cpu = time.process_time()
    started = time.perf_counter()
    workers = [
        threading.Thread(target=lambda op=op: [op() for _ in range(per)]) for op, _ in callers
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    server = cpu_seconds(pid) - cpu
    client = time.process_time() - client_cpu
    for _op, close in callers:
        close()
    total = per * threads
    return wall / total, server / total, client / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    kinds = {"unary": unary_caller, "stream": stream_caller}
    results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    with echo_process() as echo:
        assert echo.process is not None
        pid = echo.process.pid
        channel = grpc.insecure_channel(echo.address)
        print(f"# {args.rounds} rounds of {args.n} requests, {os.cpu_count()} CPUs", flush=True)
        for round_ in range(args.rounds):
            for threads in (1, 8):
                order = list(kinds) if round_ % 2 == 0 else list(kinds)[::-1]
                for kind in order:
                    result = run(kinds[kind], channel, threads, args.n, pid)
                    results.setdefault((kind, threads), []).append(result)
        channel.close()
    print("| callers | transport | wall per request | requests/s | CPU: server / client |")
    print("|---|---|---|---|---|")
    for (kind, threads), rounds in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        wall = statistics.median(r[0] for r in rounds)
        server = statistics.median(r[1] for r in rounds)
        client = statistics.median(r[2] for r in rounds)
        print(
            f"| {threads} | {kind} | {wall * 1e3:.3f} ms | {1 / wall:,.0f} |"
            f" {server * 1e6:.0f} / {client * 1e6:.0f} µs |"
        )


if __name__ == "__main__":
    main()
