"""``atx service channel``: run the payment-channel simulator as a process.

services/cli.py wires it: ``add_arguments(subparser)`` then ``run(args)``.
``python -m atx.shop.payment.channel.cli ...`` runs it directly.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

__all__ = ["add_arguments", "main", "run"]


def _schedule(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of milliseconds: {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"negative interval in {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0, help="gRPC port (default: any free)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: 127.0.0.1)")
    parser.add_argument(
        "--name", default="alipay_sim", help="the channel's name (default: alipay_sim)"
    )
    parser.add_argument(
        "--keys-dir",
        default=None,
        help="PEM keys of the channel, shared with the payment service; made if missing "
        "(default: $TMPDIR/atx-channel-keys)",
    )
    parser.add_argument(
        "--db", default=":memory:", help="SQLite file for the channel's state (default: memory)"
    )
    parser.add_argument(
        "--app-id", default=None, help="our merchant app_id at the channel (default: the shop's)"
    )
    parser.add_argument(
        "--seller-id", default=None, help="our seller_id at the channel (default: the shop's)"
    )
    parser.add_argument(
        "--notify-schedule-ms",
        type=_schedule,
        default=None,
        help="comma-separated retry intervals of unacknowledged notifications "
        "(default: Alipay's 4m,10m,10m,1h,2h,6h,15h)",
    )
    parser.add_argument(
        "--failure-rate",
        type=float,
        default=0.0,
        metavar="RATIO",
        help="share of calls that fail, 0..1 (default: 0)",
    )
    parser.add_argument(
        "--latency-ms",
        type=int,
        default=0,
        metavar="MS",
        help="added to every call, ms (default: 0)",
    )
    parser.add_argument(
        "--drop-notifications",
        action="store_true",
        help="never send payment notifications (default: send)",
    )


def run(args: argparse.Namespace) -> int:
    from atx.shop.payment.channel.protocol import (
        ALIPAY_NOTIFY_SCHEDULE_MS,
        DEFAULT_APP_ID,
        DEFAULT_SELLER_ID,
    )
    from atx.shop.payment.channel.signing import default_keys_dir
    from atx.shop.payment.channel.simulator import SimulatorConfig
    from atx.shop.payment.channel.simulator_server import serve_simulator

    config = SimulatorConfig(
        name=args.name,
        db_path=args.db,
        app_id=args.app_id or DEFAULT_APP_ID,
        seller_id=args.seller_id or DEFAULT_SELLER_ID,
        notify_schedule_ms=(
            args.notify_schedule_ms
            if args.notify_schedule_ms is not None
            else ALIPAY_NOTIFY_SCHEDULE_MS
        ),
    )
    keys_dir = args.keys_dir or default_keys_dir()
    running = serve_simulator(config, keys_dir, args.port, args.host)
    running.simulator.set_faults(args.failure_rate, args.latency_ms, args.drop_notifications)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    running.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="atx service channel", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
