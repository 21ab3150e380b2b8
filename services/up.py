"""``atx up``: start the whole shop topology as processes, for manual use.

A TC and the five services on free (or given) ports; SQLite files in a
directory by default, MariaDB/MySQL databases with ``--mysql``, the TC's store
on Redis with ``--redis``. Runs until Ctrl-C, then stops every process.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

__all__ = ["add_arguments", "run"]

_DATABASES = ("order", "payment", "collectible", "chain")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default="atx-shop", help="state directory (default: ./atx-shop)")
    parser.add_argument(
        "--mysql",
        default=None,
        help="server URL such as mysql://root@127.0.0.1:3306: each service gets a database "
        "atx_<service> (created if missing) instead of a SQLite file",
    )
    parser.add_argument(
        "--redis",
        default=None,
        help="TC store and submission tokens on Redis, e.g. redis://127.0.0.1:6379/0",
    )
    parser.add_argument("--tc-store", default=None, help="explicit TC store URL")


def _mysql_urls(server: str) -> dict[str, str]:
    import pymysql

    from atx.dsn import parse_mysql_url

    target = parse_mysql_url(server)
    admin = pymysql.connect(
        host=target.host, port=target.port, user=target.user, password=target.password
    )
    try:
        with admin.cursor() as cursor:
            for name in _DATABASES:
                cursor.execute(f"CREATE DATABASE IF NOT EXISTS `atx_{name}` CHARACTER SET utf8mb4")
    finally:
        admin.close()
    return {name: target.url(f"atx_{name}") for name in _DATABASES}


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from atx.shop.topology import ShopConfig, start_shop

    console = Console()
    directory = Path(args.dir).resolve()
    config = ShopConfig(
        directory,
        db_urls=_mysql_urls(args.mysql) if args.mysql else {},
        tc_store=args.tc_store or (args.redis or ""),
        redis_url=args.redis or "",
        notify_schedule_ms="4000,10000,10000,60000,120000",
        dispatch_interval=0.5,
        dispatch_base_delay=1.0,
        dispatch_max_delay=60.0,
        dispatch_max_attempts=15,
        dispatch_lease=30.0,
        chain_latency_ms=200,
    )
    shop = start_shop(config)
    table = Table(title=f"atx shop (state in {directory})", title_justify="left")
    for column in ("process", "address", "database / store", "log"):
        table.add_column(column)
    for name, process in shop.processes.items():
        where = config.tc_store or "sqlite (tc.db)" if name == "tc" else config.db(name)
        table.add_row(name, process.address, where, str(process.log_path))
    console.print(table)
    console.print("Ctrl-C stops everything.")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            for name, process in shop.processes.items():
                if not process.running:
                    console.print(f"[red]{name} exited[/]; see {process.log_path}")
                    stop.set()
    finally:
        shop.stop()
    return 0
