"""The payment service's robustness settings and their command-line flags.

Defaults suit production (Sentinel-like breaker, a 15 minute pay deadline,
jobs every 30-60 s); tests pass short windows and intervals.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from atx.shop.payment.channel.breaker import BreakerConfig

__all__ = ["PaymentSettings", "add_payment_arguments", "settings_from_args"]


@dataclass(frozen=True)
class PaymentSettings:
    #: Redis URL for the breaker, replay guard and job lock ('' = fallbacks, see guards.py).
    redis_url: str = ""
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    #: Our pay deadline, and how much earlier the channel's is.
    pay_ttl_s: float = 900.0
    channel_margin_s: float = 60.0
    #: Merchant call timeout towards a channel.
    channel_timeout_s: float = 5.0
    #: Compensation: query pending pay orders older than this, every interval (0 = never).
    compensate_after_s: float = 60.0
    compensation_interval_s: float = 60.0
    #: Timeout close: every interval (0 = never).
    timeout_close_interval_s: float = 30.0
    #: Expiry of a job's lock (renewed while the job runs).
    job_lock_ttl_s: float = 30.0
    #: Test knob: a job run holds its lock at least this long.
    job_hold_s: float = 0.0


def add_payment_arguments(parser: argparse.ArgumentParser) -> None:
    d = PaymentSettings()
    b = d.breaker
    add = parser.add_argument
    add(
        "--redis",
        default="",
        help="Redis URL: breaker, replay guard, job lock (default: none, in-process fallbacks)",
    )
    add(
        "--breaker-error-ratio",
        type=float,
        default=b.error_ratio,
        metavar="RATIO",
        help="trip above this share of failed calls, 0..1",
    )
    add(
        "--breaker-window-ms",
        type=int,
        default=b.stat_interval_ms,
        metavar="MS",
        help="breaker statistics window, ms",
    )
    add(
        "--breaker-min-requests",
        type=int,
        default=b.min_requests,
        metavar="N",
        help="calls in a window before the breaker may trip",
    )
    add(
        "--breaker-open-ms",
        type=int,
        default=b.open_ms,
        metavar="MS",
        help="time OPEN before a probe, ms",
    )
    add(
        "--breaker-probe-ttl-ms",
        type=int,
        default=b.probe_ttl_ms,
        metavar="MS",
        help="how long a half-open probe may take, ms",
    )
    add(
        "--breaker-open-share",
        type=float,
        default=b.open_share,
        metavar="RATIO",
        help="share of users still offered an OPEN channel, 0..1",
    )
    add(
        "--pay-ttl-s",
        type=float,
        default=d.pay_ttl_s,
        metavar="S",
        help="our pay order deadline, s",
    )
    add(
        "--channel-margin-s",
        type=float,
        default=d.channel_margin_s,
        metavar="S",
        help="the channel's deadline comes this much earlier, s",
    )
    add(
        "--channel-timeout-s",
        type=float,
        default=d.channel_timeout_s,
        metavar="S",
        help="timeout of one call to a channel, s",
    )
    add(
        "--compensate-after-s",
        type=float,
        default=d.compensate_after_s,
        metavar="S",
        help="query pending pay orders older than this, s",
    )
    add(
        "--compensation-interval-s",
        type=float,
        default=d.compensation_interval_s,
        metavar="S",
        help="run the compensation job every S seconds (0: never)",
    )
    add(
        "--timeout-close-interval-s",
        type=float,
        default=d.timeout_close_interval_s,
        metavar="S",
        help="run the timeout close job every S seconds (0: never)",
    )
    add(
        "--job-lock-ttl-s",
        type=float,
        default=d.job_lock_ttl_s,
        metavar="S",
        help="expiry of a job's lock, renewed while it runs, s",
    )
    add("--job-hold-s", type=float, default=d.job_hold_s, help=argparse.SUPPRESS)


def settings_from_args(opts: argparse.Namespace) -> PaymentSettings:
    return PaymentSettings(
        redis_url=opts.redis,
        breaker=BreakerConfig(
            error_ratio=opts.breaker_error_ratio,
            stat_interval_ms=opts.breaker_window_ms,
            min_requests=opts.breaker_min_requests,
            open_ms=opts.breaker_open_ms,
            probe_ttl_ms=opts.breaker_probe_ttl_ms,
            open_share=opts.breaker_open_share,
        ),
        pay_ttl_s=opts.pay_ttl_s,
        channel_margin_s=opts.channel_margin_s,
        channel_timeout_s=opts.channel_timeout_s,
        compensate_after_s=opts.compensate_after_s,
        compensation_interval_s=opts.compensation_interval_s,
        timeout_close_interval_s=opts.timeout_close_interval_s,
        job_lock_ttl_s=opts.job_lock_ttl_s,
        job_hold_s=opts.job_hold_s,
    )
