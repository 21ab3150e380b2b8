"""TC throughput against the bare gRPC echo ceiling of the same gRPC stack.

Run:  .venv/bin/python bench/bench_tc.py [--seconds 3] [--rounds 5] [--clients 2]
      [--concurrency 32] [--threaded-echo]

It starts, each in its own process: an echo server (grpc.aio, the TC's
server type; with ``--threaded-echo`` also the threaded server, to compare),
and a TC on a fresh SQLite store. ``--clients`` client processes (grpc.aio,
``--concurrency`` tasks in all; never in a server's process, so no client
shares a server's GIL) then measure, interleaved round by round, with the
same client setup for every server:

- echo RPC/s (a unary call returning its request),
- empty global transactions/s (Begin + Commit: 2 RPCs),
- two-branch transactions/s (Begin, 2 x BranchRegister, Commit: 4 RPCs) with
  an RM attached over the Attach stream (one per client process) answering
  every BranchCommit; it takes commands in batches, as atx's RM does
  (``two-branch-unbatched``: an RM that does not, for comparison).

efficiency = transactions/s x RPCs per transaction / echo RPC/s (per round,
then the median over rounds); the CPU efficiency is the same ratio in server
CPU time per RPC, which load from other processes disturbs less.

``--ceilings`` measures the same transactions against three more servers (see
bench/_ceilings.py): the TC's services answering at once with no work
("canned": what the TC's protocol costs on this stack), the real TC on a store
that keeps everything in dicts with phase two skipped ("no store/p2": the TC's
request handling), and the same with phase two over Attach ("memory store":
the TC's own work without a durable store).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import ECHO_METHOD, cpu_seconds, echo_handlers, serve_aio  # noqa: E402

from atx.testing import free_port, start_process, wait_for_serving  # noqa: E402
from atx.v1 import resource_manager_pb2 as rm_pb2  # noqa: E402
from atx.v1 import resource_manager_pb2_grpc as rm_grpc  # noqa: E402
from atx.v1 import transaction_manager_pb2 as tm_pb2  # noqa: E402
from atx.v1 import transaction_manager_pb2_grpc as tm_grpc  # noqa: E402

#: The ceilings (bench/_ceilings.py), in the order of the work they add.
_CEILING_NAMES = {"canned": "canned TC", "logic": "TC, no store/p2", "memory": "TC, memory st."}


# --- the echo servers (run as child processes) ----------------------------------------
def serve_echo(port: int, threaded: bool) -> None:
    if not threaded:
        asyncio.run(serve_aio(port, lambda s: s.add_generic_rpc_handlers((echo_handlers(),))))
        return
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((echo_handlers(threaded=True),))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


# --- the load ------------------------------------------------------------------------
#: Set in client processes: every client starts measuring at the same moment.
_BARRIER: Any = None
_MANAGER: Any = None


def _manager() -> Any:
    global _MANAGER
    if _MANAGER is None:
        _MANAGER = multiprocessing.get_context("spawn").Manager()
    return _MANAGER


async def run_load(
    seconds: float, concurrency: int, one: Callable[[], Awaitable[None]]
) -> tuple[int, float]:
    count = 0

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < stop_at:
            await one()
            count += 1

    # Warm up, then measure.
    await asyncio.gather(*(one() for _ in range(concurrency)))
    if _BARRIER is not None:
        await asyncio.to_thread(_BARRIER.wait)
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count, time.perf_counter() - started


async def bench_echo(address: str, seconds: float, concurrency: int) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(ECHO_METHOD)
        payload = b"x" * 32

        async def one() -> None:
            await call(payload)

        count, elapsed = await run_load(seconds, concurrency, one)
    return count / elapsed


def _result(command: rm_pb2.BranchCommand, commit: bool) -> rm_pb2.BranchResult:
    return rm_pb2.BranchResult(
        request_id=command.request_id,
        xid=command.xid,
        branch_id=command.branch_id,
        status=5 if commit else 8,  # type: ignore[arg-type]
    )


async def attach_rm(
    channel: grpc.aio.Channel, resources: list[str], client_id: str, batch: bool
) -> asyncio.Task[None]:
    """An RM that answers every phase-two command at once (batched like atx's RM if asked)."""
    stub = rm_grpc.ResourceManagerServiceStub(channel)
    outbox: asyncio.Queue[rm_pb2.AttachRequest] = asyncio.Queue()
    outbox.put_nowait(
        rm_pb2.AttachRequest(
            register=rm_pb2.RegisterResources(
                client_id=client_id, resource_ids=resources, batch_commands=batch
            )
        )
    )

    async def requests() -> AsyncIterator[rm_pb2.AttachRequest]:
        while True:
            yield await outbox.get()

    call = stub.Attach(requests())
    registered = asyncio.Event()

    async def loop() -> None:
        async for message in call:
            kind = message.WhichOneof("kind")
            if kind == "registered":
                registered.set()
            elif kind in ("branch_commit", "branch_rollback"):
                command = getattr(message, kind)
                result = _result(command, kind == "branch_commit")
                outbox.put_nowait(rm_pb2.AttachRequest(branch_result=result))
            elif kind == "branch_commands":
                results = [_result(c, True) for c in message.branch_commands.commits]
                results += [_result(c, False) for c in message.branch_commands.rollbacks]
                batch_message = rm_pb2.BranchResultBatch(results=results)
                outbox.put_nowait(rm_pb2.AttachRequest(branch_results=batch_message))

    task = asyncio.create_task(loop())
    await asyncio.wait_for(registered.wait(), 10)
    return task


async def bench_tc(
    address: str,
    seconds: float,
    concurrency: int,
    branches: int,
    client: int = 0,
    batch: bool = True,
) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        tm = tm_grpc.TransactionManagerServiceStub(channel)
        rm = rm_grpc.ResourceManagerServiceStub(channel)
        rm_id = f"bench-rm-{client}"
        rm_task = await attach_rm(channel, ["db1", "db2"], rm_id, batch) if branches else None
        keys = (f"{client}-{n}" for n in itertools.count())

        async def one() -> None:
            xid = (await tm.Begin(tm_pb2.BeginRequest(timeout_ms=60_000))).xid
            for b in range(branches):
                await rm.BranchRegister(
                    rm_pb2.BranchRegisterRequest(
                        xid=xid,
                        resource_id=f"db{b + 1}",
                        branch_type=1,  # type: ignore[arg-type]
                        lock_keys=f"t:{next(keys)}",
                        client_id=rm_id,
                    )
                )
            reply = await tm.Commit(tm_pb2.CommitRequest(xid=xid))
            if reply.status != 9:
                raise RuntimeError(f"commit of {xid} answered {reply.status}")

        count, elapsed = await run_load(seconds, concurrency, one)
        if rm_task is not None:
            await asyncio.sleep(0.5)  # let phase two drain
            rm_task.cancel()
    return count / elapsed


def _client(
    barrier: Any, kind: str, address: str, seconds: float, concurrency: int, index: int
) -> float:
    """One client process: its rate (RPC/s for echo, tx/s for the TC)."""
    global _BARRIER
    _BARRIER = barrier
    if kind == "echo":
        return asyncio.run(bench_echo(address, seconds, concurrency))
    branches = 2 if kind.startswith("two-branch") else 0
    batch = kind != "two-branch-unbatched"
    return asyncio.run(bench_tc(address, seconds, concurrency, branches, index, batch))


def measure(
    pool: Any, clients: int, kind: str, address: str, seconds: float, concurrency: int, pid: int
) -> tuple[float, float]:
    """Total rate over ``clients`` processes, and the server's CPU seconds per unit."""
    barrier = _manager().Barrier(clients + 1)
    per_client = max(1, concurrency // clients)
    jobs = [
        pool.apply_async(_client, (barrier, kind, address, seconds, per_client, i))
        for i in range(clients)
    ]
    barrier.wait()
    before = cpu_seconds(pid)
    started = time.perf_counter()
    rates = [job.get(timeout=120 + 4 * seconds) for job in jobs]
    # The window ends when the slowest client stops; CPU after it is only teardown.
    used = cpu_seconds(pid) - before
    rate = sum(rates)
    return rate, used / max(rate * min(seconds, time.perf_counter() - started), 1e-9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32, help="client tasks in all")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument(
        "--threaded-echo", action="store_true", help="also measure the threaded server"
    )
    parser.add_argument(
        "--kinds",
        default="empty,two-branch",
        help="TC transaction kinds to measure (comma-separated: empty, two-branch,"
        " two-branch-unbatched)",
    )
    parser.add_argument(
        "--ceilings",
        action="store_true",
        help="also measure a canned TC (no work) and the TC on an in-memory store,"
        " with and without phase two",
    )
    parser.add_argument("--serve-echo", choices=["aio", "threaded"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--serve-ceiling", choices=["canned", "logic", "memory"], help=argparse.SUPPRESS
    )
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        serve_echo(args.port, args.serve_echo == "threaded")
        return 0
    if args.serve_ceiling:
        from _ceilings import serve_canned, serve_tc_memory

        if args.serve_ceiling == "canned":
            serve_canned(args.port)
        else:
            serve_tc_memory(args.port, phase_two=args.serve_ceiling == "memory")
        return 0

    python = sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = []
    try:
        echo_ports = {}
        for kind in ["aio", *(["threaded"] if args.threaded_echo else [])]:
            port = free_port()
            processes.append(
                subprocess.Popen(
                    [python, __file__, "--serve-echo", kind, "--port", str(port)], env=env
                )
            )
            wait_for_serving(f"127.0.0.1:{port}")
            echo_ports[kind] = port
        ceilings = {}  # name -> (address, pid)
        for name in list(_CEILING_NAMES) if args.ceilings else []:
            port = free_port()
            processes.append(
                subprocess.Popen(
                    [python, __file__, "--serve-ceiling", name, "--port", str(port)], env=env
                )
            )
            wait_for_serving(f"127.0.0.1:{port}")
            ceilings[name] = (f"127.0.0.1:{port}", processes[-1].pid)
        data = Path(tempfile.mkdtemp(prefix="atx-bench-"))
        tc_port = free_port()
        tc = start_process(
            [
                python,
                "-m",
                "atx.cli",
                "--log-level",
                "WARNING",
                "tc",
                "--port",
                str(tc_port),
                "--store",
                f"sqlite:///{data}/tc.db",
            ],
            tc_port,
            env,
        )
        address = f"127.0.0.1:{tc_port}"
        print(
            f"# {args.rounds} interleaved rounds of {args.seconds:.1f} s per measurement, "
            f"{args.clients} client processes with {args.concurrency} aio tasks in all, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
        )
        # Interleaving echo and TC runs keeps a noisy machine from favouring one side.
        rates: dict[str, list[float]] = {}
        cpus: dict[str, list[float]] = {}  # server CPU seconds per unit (RPC or transaction)
        pids = {f"echo-{kind}": processes[i].pid for i, kind in enumerate(echo_ports)}
        assert tc.process is not None
        runs = [(f"echo-{kind}", "echo", f"127.0.0.1:{port}") for kind, port in echo_ports.items()]
        known = ("empty", "two-branch", "two-branch-unbatched")
        kinds = [k for k in known if k in args.kinds.split(",")]
        runs += [(label, label, address) for label in kinds]
        for name, (ceiling_address, ceiling_pid) in ceilings.items():
            runs += [(f"{label}@{name}", label, ceiling_address) for label in kinds]
            pids.update({f"{label}@{name}": ceiling_pid for label in kinds})
        context = multiprocessing.get_context("spawn")
        with context.Pool(args.clients) as pool:
            for _ in range(args.rounds):
                for label, kind, target in runs:
                    pid = pids.get(label, tc.process.pid)
                    rate, cpu = measure(
                        pool, args.clients, kind, target, args.seconds, args.concurrency, pid
                    )
                    rates.setdefault(label, []).append(rate)
                    cpus.setdefault(label, []).append(cpu)
        median = statistics.median
        for kind in echo_ports:
            label = f"echo-{kind}"
            print(
                f"echo ({kind} server): {median(rates[label]):7.0f} RPC/s median "
                f"(rounds: {', '.join(f'{x:.0f}' for x in rates[label])}), "
                f"server CPU {median(cpus[label]) * 1e6:4.0f} us/RPC"
            )
        servers = [("", "TC"), *((f"@{n}", _CEILING_NAMES[n]) for n in ceilings)]
        for label, rpcs in (("empty", 2), ("two-branch", 4), ("two-branch-unbatched", 4)):
            if label not in kinds:
                continue
            for suffix, server in servers:
                key = label + suffix
                eff = [t * rpcs / e for t, e in zip(rates[key], rates["echo-aio"], strict=True)]
                cpu_eff = [e * rpcs / t for t, e in zip(cpus[key], cpus["echo-aio"], strict=True)]
                print(
                    f"{server:15s} {label:20s} {median(rates[key]):6.0f} tx/s median; "
                    f"efficiency {median(eff):.2f} "
                    f"(rounds: {', '.join(f'{x:.2f}' for x in eff)}); "
                    f"server CPU {median(cpus[key]) * 1e6:5.0f} us/tx, "
                    f"CPU efficiency {median(cpu_eff):.2f} "
                    f"(rounds: {', '.join(f'{x:.2f}' for x in cpu_eff)})"
                )
        tc.terminate()
    finally:
        for process in processes:
            process.kill()
            process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
