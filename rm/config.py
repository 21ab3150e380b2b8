"""Process-wide RM/TM configuration: TC addresses, application id, token, client id.

Set by :func:`configure`, or read once from the environment:
``ATX_TC_ADDRESSES`` (comma-separated ``host:port``), ``ATX_APPLICATION_ID``,
``ATX_TOKEN``, ``ATX_CLIENT_ID``, ``ATX_TC_TLS_CA`` (a PEM CA bundle: talk
TLS to the TC; empty = plaintext) and ``ATX_TC_TLS_SERVER_NAME`` (the name
the TC's certificate must carry, when not the dialled host). Arguments to
:func:`configure` win over the environment. Reconfiguring closes the TC client
and restarts the channel.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rm.errors import InvalidConfigurationError

__all__ = ["Config", "configure", "get_config", "on_reconfigure"]

_ENV_ADDRESSES = "ATX_TC_ADDRESSES"
_ENV_APPLICATION = "ATX_APPLICATION_ID"
_ENV_TOKEN = "ATX_TOKEN"
_ENV_CLIENT = "ATX_CLIENT_ID"
_ENV_TLS_CA = "ATX_TC_TLS_CA"
_ENV_TLS_SERVER_NAME = "ATX_TC_TLS_SERVER_NAME"


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


_lock = threading.Lock()
_config: Config | None = None
_listeners: list[Callable[[], None]] = []


def _validate_addresses(addresses: Sequence[str]) -> tuple[str, ...]:
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


def _from_env() -> Config:
    addresses = os.environ.get(_ENV_ADDRESSES, "")
    return Config(
        tc_addresses=_validate_addresses(addresses.split(",")),
        application_id=os.environ.get(_ENV_APPLICATION) or "atx-app",
        token=os.environ.get(_ENV_TOKEN) or None,
        client_id=os.environ.get(_ENV_CLIENT) or _default_client_id(),
        tls_ca=_validate_tls_ca(os.environ.get(_ENV_TLS_CA, "")),
        tls_server_name=os.environ.get(_ENV_TLS_SERVER_NAME, "").strip(),
    )


def configure(
    tc_addresses: Sequence[str] | None = None,
    application_id: str | None = None,
    token: str | None = None,
    client_id: str | None = None,
    rpc_timeout: float | None = None,
    tls_ca: str | None = None,
    tls_server_name: str | None = None,
) -> Config:
    """Set the configuration (unset arguments come from the environment).

    ``tls_ca`` is the path of a PEM CA bundle that signed the TC's certificate:
    the TM/RM calls and the Attach stream then use TLS; ``""`` forces plaintext.

    Raises:
        InvalidConfigurationError: a malformed TC address, an empty application id, or a
            ``tls_ca`` that is not a file.
    """
    global _config
    base = _from_env()
    config = Config(
        tc_addresses=(
            _validate_addresses(tc_addresses) if tc_addresses is not None else base.tc_addresses
        ),
        application_id=application_id if application_id is not None else base.application_id,
        token=token if token is not None else base.token,
        client_id=client_id if client_id is not None else base.client_id,
        rpc_timeout=rpc_timeout if rpc_timeout is not None else base.rpc_timeout,
        tls_ca=_validate_tls_ca(tls_ca) if tls_ca is not None else base.tls_ca,
        tls_server_name=(
            tls_server_name.strip() if tls_server_name is not None else base.tls_server_name
        ),
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
    """Call ``listener`` after every :func:`configure` (used by the client and channel)."""
    with _lock:
        _listeners.append(listener)
