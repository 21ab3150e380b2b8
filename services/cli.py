"""``atx service NAME [options]``: run one shop service as a process.

NAME is order, payment, collectible, chain or channel (the payment-channel
simulator). Databases are ``sqlite:///path`` (default) or ``mysql://...``.
Every service except chain and channel is an rm resource and needs ``--tc``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

__all__ = ["SERVICES", "add_arguments", "run", "service_parser"]

SERVICES = ("order", "payment", "collectible", "chain", "channel")
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=SERVICES, help="the service to run")
    parser.add_argument(
        "options", nargs=argparse.REMAINDER, help="the service's options (--help for a list)"
    )


def service_parser(name: str) -> argparse.ArgumentParser:
    from atx.cli_errors import ArgumentParser
    from atx.cli_output import DefaultsHelpFormatter

    parser = ArgumentParser(prog=f"atx service {name}", formatter_class=DefaultsHelpFormatter)
    if name == "channel":
        from atx.shop.payment.channel.cli import add_arguments as channel_arguments

        channel_arguments(parser)
        return parser
    parser.add_argument("--port", type=int, required=True, help="gRPC port (required)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address")
    parser.add_argument(
        "--db",
        default=f"sqlite:///atx-{name}.db",
        metavar="URL",
        help="database: sqlite:///relative.db, sqlite:////absolute/path.db or"
        " mysql://user:password@host:3306/db",
    )
    if name != "chain":
        parser.add_argument(
            "--tc", required=True, metavar="HOST:PORT", help="TC address(es), comma-separated"
        )
        parser.add_argument(
            "--token", default=None, help="bearer token for the TC (default: $ATX_TOKEN or none)"
        )
        parser.add_argument(
            "--tc-tls-ca",
            default=None,
            metavar="PATH",
            help="PEM CA bundle: talk TLS to the TC (default: $ATX_TC_TLS_CA; empty = plaintext)",
        )
        parser.add_argument(
            "--tc-tls-server-name",
            default=None,
            metavar="NAME",
            help="host name the TC's certificate carries (default: $ATX_TC_TLS_SERVER_NAME)",
        )
    if name in ("order", "payment"):
        parser.add_argument(
            "--collectible", required=True, metavar="HOST:PORT", help="collectible service address"
        )
    if name == "order":
        parser.add_argument(
            "--redis",
            default="",
            help="Redis URL for submission tokens and the job lock (default: in the DB)",
        )
        parser.add_argument(
            "--payment",
            default="",
            metavar="HOST:PORT",
            help="payment service address, for order_timeout_close (default: none)",
        )
        parser.add_argument(
            "--order-ttl-s", type=float, default=900.0, metavar="S", help="unpaid deadline, s"
        )
        parser.add_argument(
            "--close-interval-s",
            type=float,
            default=30.0,
            metavar="S",
            help="run order_timeout_close every S seconds (0: only on demand)",
        )
        parser.add_argument(
            "--close-grace-s",
            type=float,
            default=30.0,
            metavar="S",
            help="close an unpaid order S seconds after its deadline",
        )
        parser.add_argument(
            "--job-lock-ttl-s",
            type=float,
            default=30.0,
            metavar="S",
            help="expiry of the close job's lock, s",
        )
    if name == "payment":
        parser.add_argument(
            "--order", required=True, metavar="HOST:PORT", help="order service address"
        )
        parser.add_argument(
            "--chain", required=True, metavar="HOST:PORT", help="chain service address"
        )
        parser.add_argument(
            "--channel",
            action="append",
            default=[],
            help="payment channel as name=host:port (repeatable)",
        )
        parser.add_argument(
            "--keys-dir",
            default=None,
            help="channel keys directory (default: $TMPDIR/atx-channel-keys)",
        )
        parser.add_argument(
            "--notify-address",
            default="",
            metavar="HOST:PORT",
            help="address channels call back (default: 127.0.0.1:PORT)",
        )
        parser.add_argument(
            "--dispatch-interval",
            type=float,
            default=0.5,
            metavar="S",
            help="how often the deferred-call dispatcher polls, s",
        )
        parser.add_argument(
            "--dispatch-base-delay",
            type=float,
            default=0.5,
            metavar="S",
            help="first retry delay of a failed deferred call, doubled per attempt, s",
        )
        parser.add_argument(
            "--dispatch-max-delay",
            type=float,
            default=30.0,
            metavar="S",
            help="longest retry delay of a deferred call, s",
        )
        parser.add_argument(
            "--dispatch-max-attempts",
            type=int,
            default=10,
            metavar="N",
            help="attempts before a deferred call is dead-lettered",
        )
        parser.add_argument(
            "--dispatch-lease",
            type=float,
            default=30.0,
            metavar="S",
            help="seconds a claimed call stays hidden (a crash mid-call delays it this long)",
        )
        from atx.shop.payment.settings import add_payment_arguments

        add_payment_arguments(parser)
    if name == "chain":
        parser.add_argument(
            "--latency-ms", type=int, default=0, metavar="MS", help="added to every call, ms"
        )
        parser.add_argument(
            "--unavailable", action="store_true", help="start refusing calls, as if down"
        )
    return parser


def run_service(name: str, argv: Sequence[str]) -> int:
    parser = service_parser(name)
    opts = parser.parse_args(list(argv))
    from atx import tracing

    tracing.configure_from_env(f"atx-shop-{name}")
    if name == "channel":
        from atx.shop.payment.channel.cli import run as run_channel

        return run_channel(opts)
    if name == "chain":
        from atx.shop.chain.service import serve as serve_chain

        return serve_chain(
            opts.port, opts.db, not opts.unavailable, opts.latency_ms, opts.host
        ).wait()

    import atx.rm as rm
    from atx.shop.common.db import Database

    rm.configure(
        tc_addresses=opts.tc.split(","),
        application_id=name,
        token=opts.token,
        tls_ca=opts.tc_tls_ca,
        tls_server_name=opts.tc_tls_server_name,
    )
    from atx.cli_errors import opening

    sqlite_path = opts.db[len("sqlite:///") :] if opts.db.startswith("sqlite:///") else None
    with opening(opts.db, flag="--db", sqlite_path=sqlite_path):
        Database(opts.db, name).prepare_resource()
    if name == "collectible":
        from atx.shop.collectible.service import serve as serve_collectible

        runtime = serve_collectible(opts.port, opts.db, opts.host)
    elif name == "order":
        from atx.shop.order.service import OrderSettings
        from atx.shop.order.service import serve as serve_order

        runtime = serve_order(
            opts.port,
            opts.db,
            opts.collectible,
            opts.host,
            opts.redis,
            OrderSettings(
                order_ttl_s=opts.order_ttl_s,
                payment_address=opts.payment,
                close_interval_s=opts.close_interval_s,
                close_grace_s=opts.close_grace_s,
                job_lock_ttl_s=opts.job_lock_ttl_s,
            ),
        )
    else:
        import tempfile
        from pathlib import Path

        from atx.hooks.dispatcher import DispatcherConfig
        from atx.shop.payment.server import serve as serve_payment
        from atx.shop.payment.settings import settings_from_args

        runtime = serve_payment(
            opts.port,
            opts.db,
            order_address=opts.order,
            collectible_address=opts.collectible,
            chain_address=opts.chain,
            channels=opts.channel,
            keys_dir=opts.keys_dir or str(Path(tempfile.gettempdir()) / "atx-channel-keys"),
            dispatcher_config=DispatcherConfig(
                poll_interval=opts.dispatch_interval,
                base_delay=opts.dispatch_base_delay,
                max_delay=opts.dispatch_max_delay,
                max_attempts=opts.dispatch_max_attempts,
                lease=opts.dispatch_lease,
            ),
            host=opts.host,
            notify_address=opts.notify_address,
            settings=settings_from_args(opts),
        )
    runtime.on_stop.insert(0, rm.shutdown)
    return runtime.wait()


def run(args: argparse.Namespace) -> int:
    return run_service(args.name, args.options)
