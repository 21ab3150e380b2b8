"""Process-wide RM/TM configuration: TC addresses, application id, token, client id.

Set by :func:`configure`, or read once from the environment:
``ATX_TC_ADDRESSES`` (comma-separated ``host:port``), ``ATX_APPLICATION_ID``,
``ATX_TOKEN``, ``ATX_CLIENT_ID``, ``ATX_TC_TLS_CA`` (a PEM CA bundle: talk
TLS to the TC; empty = plaintext) and ``ATX_TC_TLS_SERVER_NAME`` (the name
the TC's certificate must carry, when not the dialled host),
``ATX_UNDO_LOG_SAVE_DAYS``, ``ATX_UNDO_LOG_DELETE_PERIOD`` and
``ATX_UNDO_LOG_SWEEP_INTERVAL`` (undo-log retention, see
:mod:`atx.rm.phase_two.retention`), ``ATX_RM_METRICS_PORT`` and
``ATX_RM_METRICS_HOST`` (the RM's Prometheus endpoint, :mod:`atx.rm.metrics`). Arguments to
:func:`configure` win over the environment. Reconfiguring closes the TC client
and restarts the runtime (Attach streams, phase two).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from atx.rm.errors import InvalidConfigurationError

__all__ = [
    "MAX_UNDO_LOG_SAVE_DAYS",
    "Config",
    "configure",
    "get_config",
    "on_reconfigure",
    "validate_tc_addresses",
]

_ENV_ADDRESSES = "ATX_TC_ADDRESSES"
_ENV_APPLICATION = "ATX_APPLICATION_ID"
_ENV_TOKEN = "ATX_TOKEN"
_ENV_CLIENT = "ATX_CLIENT_ID"
_ENV_TLS_CA = "ATX_TC_TLS_CA"
_ENV_TLS_SERVER_NAME = "ATX_TC_TLS_SERVER_NAME"
_ENV_SAVE_DAYS = "ATX_UNDO_LOG_SAVE_DAYS"
_ENV_DELETE_PERIOD = "ATX_UNDO_LOG_DELETE_PERIOD"
_ENV_SWEEP_INTERVAL = "ATX_UNDO_LOG_SWEEP_INTERVAL"
_ENV_METRICS_PORT = "ATX_RM_METRICS_PORT"
_ENV_METRICS_HOST = "ATX_RM_METRICS_HOST"


def _default_client_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Config:
    """The settings of this process's RM and TM."""

    tc_addresses: tuple[str, ...] = ()
    application_id: str = "atx-app"
    token: str | None = None
    client_id: str = field(default_factory=_default_client_id)
    #: Seconds for each TC call.
    rpc_timeout: float = 10.0
    #: Path of a PEM CA bundle: TLS to the TC when set, plaintext when empty.
    tls_ca: str = ""
    #: The host name the TC's certificate must carry (default: the dialled host).
    tls_server_name: str = ""
    #: Days before old undo rows and placeholders may be purged (Seata's logSaveDays); 0 = never.
    undo_log_save_days: float = 7.0
    #: Seconds between two purges (Seata's logDeletePeriod).
    undo_log_delete_period: float = 86400.0
    #: Seconds between two sweeps for undo rows left behind by committed branches (a
    #: process that died before deleting them): normal rows older than one interval
    #: whose transaction the TC reports over are deleted. 0: only the purge's save days.
    undo_log_sweep_interval: float = 300.0
    #: Port of the RM's Prometheus endpoint (atx.rm.metrics); 0: not served.
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"


_lock = threading.Lock()
_config: Config | None = None
_listeners: list[Callable[[], None]] = []


def validate_tc_addresses(addresses: Sequence[str]) -> tuple[str, ...]:
    """``host:port`` strings, stripped; raises InvalidConfigurationError on a malformed one."""
    if isinstance(addresses, str):
        addresses = [addresses]
    cleaned = tuple(a.strip() for a in addresses if a.strip())
    for address in cleaned:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise InvalidConfigurationError(f"TC address {address!r} is not host:port")
    return cleaned


def _validate_tls_ca(path: str) -> str:
    path = path.strip()
    if path and not os.path.isfile(path):
        raise InvalidConfigurationError(f"TLS CA bundle {path!r} is not a readable file")
    return path


#: A century: beyond it the purge cutoff would fall before year 1.
MAX_UNDO_LOG_SAVE_DAYS = 36500.0


def _number(name: str, value: str | float, low: float, high: float) -> float:
    """``value`` as a float in [low, high]; NaN, infinities and junk are refused."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidConfigurationError(f"{name} must be a number, got {value!r}") from None
    if not low <= number <= high:
        raise InvalidConfigurationError(f"{name} must be in [{low:g}, {high:g}], got {value!r}")
    return number


def _validate_save_days(value: str | float) -> float:
    return _number("undo_log_save_days", value, 0.0, MAX_UNDO_LOG_SAVE_DAYS)


def _validate_delete_period(value: str | float) -> float:
    # threading.TIMEOUT_MAX: the retention thread waits one period on an Event.
    period = _number("undo_log_delete_period", value, 0.0, threading.TIMEOUT_MAX)
    if period == 0:
        raise InvalidConfigurationError("undo_log_delete_period must be positive, got 0")
    return period


def _validate_sweep_interval(value: str | float) -> float:
    return _number("undo_log_sweep_interval", value, 0.0, threading.TIMEOUT_MAX)


def _validate_port(value: str | int) -> int:
    return int(_number("metrics_port", value, 0, 65535))


def _from_env() -> Config:
    addresses = os.environ.get(_ENV_ADDRESSES, "")
    return Config(
        tc_addresses=validate_tc_addresses(addresses.split(",")),
        application_id=os.environ.get(_ENV_APPLICATION) or "atx-app",
        token=os.environ.get(_ENV_TOKEN) or None,
        client_id=os.environ.get(_ENV_CLIENT) or _default_client_id(),
        tls_ca=_validate_tls_ca(os.environ.get(_ENV_TLS_CA, "")),
        tls_server_name=os.environ.get(_ENV_TLS_SERVER_NAME, "").strip(),
        undo_log_save_days=_validate_save_days(os.environ.get(_ENV_SAVE_DAYS) or 7.0),
        undo_log_delete_period=_validate_delete_period(
            os.environ.get(_ENV_DELETE_PERIOD) or 86400.0
        ),
        undo_log_sweep_interval=_validate_sweep_interval(
            os.environ.get(_ENV_SWEEP_INTERVAL) or 300.0
        ),
        metrics_port=_validate_port(os.environ.get(_ENV_METRICS_PORT) or 0),
        metrics_host=os.environ.get(_ENV_METRICS_HOST) or "127.0.0.1",
    )


def configure(
    tc_addresses: Sequence[str] | None = None,
    application_id: str | None = None,
    token: str | None = None,
    client_id: str | None = None,
    rpc_timeout: float | None = None,
    tls_ca: str | None = None,
    tls_server_name: str | None = None,
    undo_log_save_days: float | None = None,
    undo_log_delete_period: float | None = None,
    undo_log_sweep_interval: float | None = None,
    metrics_port: int | None = None,
    metrics_host: str | None = None,
) -> Config:
    """Set the configuration (unset arguments come from the environment).

    ``tls_ca`` is the path of a PEM CA bundle that signed the TC's certificate:
    the TM/RM calls and the Attach stream then use TLS; ``""`` forces plaintext.

    ``undo_log_save_days`` (default 7, 0 disables) and ``undo_log_delete_period``
    (seconds, default 86400) drive the runtime's undo-log purge
    (:mod:`atx.rm.phase_two.retention`); every ``undo_log_sweep_interval`` seconds
    (default 300, 0 disables) it also deletes undo rows of committed branches that
    a process left behind, once the TC reports their transaction over.

    ``metrics_port`` (default 0: off) serves the RM's Prometheus metrics
    (:mod:`atx.rm.metrics`) at ``http://metrics_host:metrics_port/metrics``.

    Raises:
        InvalidConfigurationError: a malformed TC address, an empty application id, a
            ``tls_ca`` that is not a file, negative save days or a non-positive period.
    """
    global _config
    base = _from_env()
    config = Config(
        tc_addresses=(
            validate_tc_addresses(tc_addresses) if tc_addresses is not None else base.tc_addresses
        ),
        application_id=application_id if application_id is not None else base.application_id,
        token=token if token is not None else base.token,
        client_id=client_id if client_id is not None else base.client_id,
        rpc_timeout=rpc_timeout if rpc_timeout is not None else base.rpc_timeout,
        tls_ca=_validate_tls_ca(tls_ca) if tls_ca is not None else base.tls_ca,
        tls_server_name=(
            tls_server_name.strip() if tls_server_name is not None else base.tls_server_name
        ),
        undo_log_save_days=(
            _validate_save_days(undo_log_save_days)
            if undo_log_save_days is not None
            else base.undo_log_save_days
        ),
        undo_log_delete_period=(
            _validate_delete_period(undo_log_delete_period)
            if undo_log_delete_period is not None
            else base.undo_log_delete_period
        ),
        undo_log_sweep_interval=(
            _validate_sweep_interval(undo_log_sweep_interval)
            if undo_log_sweep_interval is not None
            else base.undo_log_sweep_interval
        ),
        metrics_port=_validate_port(metrics_port)
        if metrics_port is not None
        else base.metrics_port,
        metrics_host=metrics_host if metrics_host is not None else base.metrics_host,
    )
    if not config.application_id:
        raise InvalidConfigurationError("application_id must not be empty")
    if config.rpc_timeout <= 0:
        raise InvalidConfigurationError(f"rpc_timeout must be positive, got {config.rpc_timeout!r}")
    with _lock:
        _config = config
        listeners = list(_listeners)
    for listener in listeners:
        listener()
    return config


def get_config() -> Config:
    """The current configuration (from the environment on first use)."""
    global _config
    with _lock:
        if _config is None:
            _config = _from_env()
        return _config


def on_reconfigure(listener: Callable[[], None]) -> None:
    """Call ``listener`` after every :func:`configure` (used by the TC client and the runtime)."""
    with _lock:
        _listeners.append(listener)
