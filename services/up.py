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
        metavar="URL",
        help="server URL such as mysql://root@127.0.0.1:3306: each service gets a database "
        "PREFIX<service> (created if missing) instead of a SQLite file (default: SQLite)",
    )
    parser.add_argument(
        "--mysql-prefix",
        default="atx_",
        metavar="PREFIX",
        help="with --mysql: the services' databases are PREFIXorder, PREFIXpayment,"
        " PREFIXcollectible, PREFIXchain (default: atx_)",
    )
    parser.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help="TC store and submission tokens on Redis, e.g. redis://127.0.0.1:6379/0"
        " (default: SQLite)",
    )
    parser.add_argument(
        "--tc-metrics-port",
        type=int,
        default=0,
        metavar="PORT",
        help="port of the TC's Prometheus metrics, served on 127.0.0.1 (default: a free one;"
        " -1: off)",
    )
    parser.add_argument(
        "--tc-store",
        default=None,
        metavar="URL",
        help="explicit TC store URL (default: --redis, else SQLite in --dir)",
    )


def _mysql_urls(server: str, prefix: str = "atx_") -> dict[str, str]:
    import pymysql

    from atx.cli_errors import opening
    from atx.dsn import parse_mysql_url

    with opening(server, flag="--mysql"):
        target = parse_mysql_url(server)
        kwargs = {**target.connect_kwargs(), "database": None}
        kwargs.setdefault("connect_timeout", 5)
        admin = pymysql.connect(**kwargs)
        try:
            with admin.cursor() as cursor:
                for name in _DATABASES:
                    database = f"{prefix}{name}".replace("`", "``")
                    cursor.execute(
                        f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4"
                    )
        finally:
            admin.close()
    return {name: target.url(f"{prefix}{name}") for name in _DATABASES}


def _check_tc_store(url: str, flag: str) -> None:
    """Open and close the TC's store here first: a bad one is then one clear
    line, not a TC process that never comes up."""
    from atx.tc.cli import open_store

    open_store(url, history_size=1, flag=flag).close()


def run(args: argparse.Namespace) -> int:
    from atx.cli_output import console as new_console
    from atx.cli_output import table as new_table
    from atx.dsn import redact_url
    from atx.errors import ConfigurationError
    from atx.shop.topology import ShopConfig, start_shop
    from atx.testing import free_port

    console = new_console()
    directory = Path(args.dir).resolve()
    if args.tc_store or args.redis:
        _check_tc_store(args.tc_store or args.redis, "--tc-store" if args.tc_store else "--redis")
    config = ShopConfig(
        directory,
        db_urls=_mysql_urls(args.mysql, args.mysql_prefix) if args.mysql else {},
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
    metrics_port = args.tc_metrics_port or free_port()
    if metrics_port > 0:
        config.tc_extra = ["--metrics-port", str(metrics_port)]
    try:
        shop = start_shop(config)
    except TimeoutError as error:  # a process that did not come up; its output follows
        lines = str(error).splitlines()
        said = [line for line in lines if line.startswith(("error:", "hint:"))]
        raise ConfigurationError(
            lines[0], hint=" ".join(said) or "run with --log-level DEBUG for its output"
        ) from error
    columns = ("process", "address", "database / store", "log")
    # Addresses and names never wrap: they are what one copies from here.
    table = new_table(f"atx shop (state in {directory})", columns, keep=columns[:2])
    for name, process in shop.processes.items():
        where = (config.tc_store or "sqlite (tc.db)") if name == "tc" else config.db(name)
        table.add_row(name, process.address, redact_url(where), str(process.log_path))
    console.print(table)
    if metrics_port > 0:
        console.print(f"TC metrics: http://127.0.0.1:{metrics_port}/metrics")
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
