"""Run the transfer example: a TC, the bank and the wallet, three transfers, then clean up.

    python examples/transfer/run.py                 # MariaDB at 127.0.0.1:3306 (root)
    python examples/transfer/run.py --bank-db mysql://u:pw@host:3306/bank \
        --wallet-db mysql://u:pw@host:3306/wallet   # or ATX_EXAMPLE_BANK_DB / _WALLET_DB
    python examples/transfer/run.py --sqlite        # no MariaDB: SQLite files

A database that does not exist is created and dropped afterwards; one that exists
must be empty, and the tables the run made are dropped. Exits 0 when every
transfer ended as expected.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import grpc
import pymysql
from common import Message, call

from atx.dsn import parse_mysql_url

HERE = Path(__file__).resolve().parent
MARIADB = "mysql://root@127.0.0.1:3306/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def scratch_database(url: str) -> Iterator[None]:
    """A database for this run, left as it was found afterwards."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if path.exists():
            sys.exit(f"{path} exists: name a new file")
        try:
            yield
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    target = parse_mysql_url(url)
    try:
        admin = pymysql.connect(**{**target.connect_kwargs(), "database": None}, autocommit=True)
    except pymysql.err.OperationalError as error:
        sys.exit(f"cannot reach MariaDB at {target.host}:{target.port} ({error}); try --sqlite")
    name = target.database
    with admin.cursor() as cur:
        created = cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`") == 1
        cur.execute(f"SHOW TABLES FROM `{name}`")
        if cur.fetchall():
            sys.exit(f"database {name} is not empty: name another (--bank-db, --wallet-db)")
    try:
        yield
    finally:
        with admin.cursor() as cur:
            if created:
                cur.execute(f"DROP DATABASE `{name}`")
            else:
                cur.execute(f"SHOW TABLES FROM `{name}`")
                for (table,) in cur.fetchall():
                    cur.execute(f"DROP TABLE `{name}`.`{table}`")
        admin.close()


@contextmanager
def process(name: str, port: int, args: list[str], **env: str) -> Iterator[grpc.Channel]:
    """Start a server process, wait until it listens, stop it (SIGTERM) afterwards."""
    proc = subprocess.Popen([sys.executable, *args], env={**os.environ, **env})
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                sys.exit(f"{name} exited with {proc.returncode} before it listened")
            try:
                grpc.channel_ready_future(channel).result(timeout=0.5)
                break
            except grpc.FutureTimeoutError:
                if time.monotonic() > deadline:
                    raise
        print(f"  {name} listening on 127.0.0.1:{port}")
        yield channel
    finally:
        channel.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


Balances = tuple[Message, Message]

# (what happens, the request, the status it fails with or None, the balances afterwards)
TRANSFERS: list[tuple[str, Message, grpc.StatusCode | None, Balances]] = [
    (
        "alice sends 30 to bob's wallet",
        {"account": "alice", "wallet": "bob", "amount": 30},
        None,
        ({"alice": 70}, {"bob": 30}),
    ),
    (
        "alice sends 500 to bob: the bank raises after both databases changed",
        {"account": "alice", "wallet": "bob", "amount": 500},
        grpc.StatusCode.FAILED_PRECONDITION,
        ({"alice": 70}, {"bob": 30}),
    ),
    (
        "alice sends 10 to carol, who has no wallet: the wallet refuses",
        {"account": "alice", "wallet": "carol", "amount": 10},
        grpc.StatusCode.NOT_FOUND,
        ({"alice": 70}, {"bob": 30}),
    ),
]


def run_transfers(bank: grpc.Channel, wallet: grpc.Channel) -> bool:
    def balances() -> Balances:
        return call(bank, "Bank", "Balances", {}), call(wallet, "Wallet", "Balances", {})

    def show(state: Balances) -> str:
        return "bank {}, wallet {}".format(
            *(" ".join(f"{k}={v}" for k, v in side.items()) for side in state)
        )

    before = balances()
    print(f"balances: {show(before)}")
    all_ok = True
    for number, (title, request, failure, expected) in enumerate(TRANSFERS, 1):
        print(f"{number}. {title}")
        try:
            reply = call(bank, "Bank", "Transfer", request)
            outcome = None
            print(f"   committed: global transaction {reply['xid']}")
        except grpc.RpcError as error:
            outcome = error.code()
            print(f"   {outcome.name}: {error.details()}")
        after = balances()
        note = "" if failure is None else ": both databases unchanged" if after == before else ""
        ok = outcome == failure and after == expected
        print(f"   balances: {show(after)}{note}{'' if ok else '  UNEXPECTED'}")
        all_ok = all_ok and ok
        before = after
    return all_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bank-db", default=os.environ.get("ATX_EXAMPLE_BANK_DB", MARIADB + "atx_example_bank")
    )
    parser.add_argument(
        "--wallet-db",
        default=os.environ.get("ATX_EXAMPLE_WALLET_DB", MARIADB + "atx_example_wallet"),
    )
    parser.add_argument("--sqlite", action="store_true", help="SQLite files in a temporary dir")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="atx-transfer-")
    if args.sqlite:
        args.bank_db, args.wallet_db = (f"sqlite:///{tmp.name}/{n}.db" for n in ("bank", "wallet"))
    tc_port, wallet_port, bank_port = free_port(), free_port(), free_port()
    tc, wallet_address = f"127.0.0.1:{tc_port}", f"127.0.0.1:{wallet_port}"

    with tmp, ExitStack() as stack:
        print(f"databases: bank {args.bank_db}, wallet {args.wallet_db}")
        stack.enter_context(scratch_database(args.bank_db))
        stack.enter_context(scratch_database(args.wallet_db))
        # The TC as you would run it, `atx tc --port P`; its store is SQLite in ATX_DATA_DIR.
        tc_cmd = ["-m", "atx.cli", "--log-level", "WARNING", "tc", f"--port={tc_port}"]
        stack.enter_context(process("TC", tc_port, tc_cmd, ATX_DATA_DIR=tmp.name))
        wallet_cmd = [f"--port={wallet_port}", f"--db={args.wallet_db}", f"--tc={tc}"]
        wallet = stack.enter_context(
            process("wallet", wallet_port, [str(HERE / "wallet.py"), *wallet_cmd])
        )
        bank_cmd = [f"--port={bank_port}", f"--db={args.bank_db}", f"--tc={tc}"]
        bank = stack.enter_context(
            process(
                "bank", bank_port, [str(HERE / "bank.py"), *bank_cmd, f"--wallet={wallet_address}"]
            )
        )
        ok = run_transfers(bank, wallet)
    print("services stopped, databases cleaned up")
    print("every transfer ended as expected" if ok else "UNEXPECTED outcomes, see above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
