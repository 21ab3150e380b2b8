"""``atx tc``: run a transaction coordinator."""

from __future__ import annotations

import argparse
import os

__all__ = ["add_arguments", "config_from_args", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--host", default=env("ATX_TC_HOST", "127.0.0.1"), help="listen address")
    parser.add_argument("--port", type=int, default=int(env("ATX_TC_PORT", "8091")))
    parser.add_argument(
        "--store",
        default=env("ATX_TC_STORE", ""),
        help="sqlite:///path, redis://host:port/db?key_prefix=p:, mysql://user@host:port/db "
        "(default: sqlite under $ATX_DATA_DIR or ~/.local/share/atx)",
    )
    parser.add_argument("--token", default=env("ATX_TC_TOKEN", ""), help="require this token")
    parser.add_argument(
        "--admin-token", default=env("ATX_TC_ADMIN_TOKEN", ""), help="token for AdminService"
    )
    parser.add_argument("--metrics-port", type=int, default=0, help="Prometheus port (0: off)")
    parser.add_argument("--tls-cert", default="", help="PEM certificate chain")
    parser.add_argument("--tls-key", default="", help="PEM private key")
    parser.add_argument("--job-interval-ms", type=int, default=1000)
    parser.add_argument(
        "--job-lock-ttl-ms",
        type=int,
        default=10_000,
        help="expiry of a background job's lock on a shared store (another node takes over after)",
    )
    parser.add_argument("--default-timeout-ms", type=int, default=60_000)
    parser.add_argument("--max-timeout-ms", type=int, default=24 * 3600 * 1000)
    parser.add_argument("--retry-backoff-ms", type=int, default=1000, help="first retry delay")
    parser.add_argument("--retry-backoff-max-ms", type=int, default=60_000)
    parser.add_argument("--max-commit-retry-timeout-ms", type=int, default=0, help="0: forever")
    parser.add_argument("--max-rollback-retry-timeout-ms", type=int, default=0, help="0: forever")
    parser.add_argument("--branch-timeout-ms", type=int, default=10_000)
    parser.add_argument("--heartbeat-interval-ms", type=int, default=5000)
    parser.add_argument("--history-size", type=int, default=1000)
    parser.add_argument("--node-id", default="", help="default: host-pid-random")
    parser.add_argument("--shutdown-grace-s", type=float, default=10.0)


def config_from_args(args: argparse.Namespace) -> object:
    from atx.tc.config import TCConfig, default_store_url

    if (args.tls_cert == "") != (args.tls_key == ""):
        raise SystemExit("atx tc: --tls-cert and --tls-key go together")
    if args.job_lock_ttl_ms <= args.job_interval_ms:
        raise SystemExit(
            f"atx tc: --job-lock-ttl-ms ({args.job_lock_ttl_ms}) must exceed"
            f" --job-interval-ms ({args.job_interval_ms}), or the lock lapses between runs"
        )
    config = TCConfig(
        host=args.host,
        port=args.port,
        store_url=args.store or default_store_url(),
        default_timeout_ms=args.default_timeout_ms,
        max_timeout_ms=args.max_timeout_ms,
        job_interval_ms=args.job_interval_ms,
        job_lock_ttl_ms=args.job_lock_ttl_ms,
        retry_backoff_base_ms=args.retry_backoff_ms,
        retry_backoff_max_ms=args.retry_backoff_max_ms,
        max_commit_retry_timeout_ms=args.max_commit_retry_timeout_ms,
        max_rollback_retry_timeout_ms=args.max_rollback_retry_timeout_ms,
        branch_timeout_ms=args.branch_timeout_ms,
        heartbeat_interval_ms=args.heartbeat_interval_ms,
        history_size=args.history_size,
        token=args.token,
        admin_token=args.admin_token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        metrics_port=args.metrics_port,
        shutdown_grace_s=args.shutdown_grace_s,
    )
    if args.node_id:
        config.node_id = args.node_id
    return config


def run(args: argparse.Namespace) -> int:
    import asyncio

    from atx.tc.config import TCConfig
    from atx.tc.server import serve

    config = config_from_args(args)
    assert isinstance(config, TCConfig)
    return asyncio.run(serve(config))
