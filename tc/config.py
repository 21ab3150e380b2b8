"""Configuration of one TC node."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TCConfig", "default_data_dir", "default_store_url"]


def default_data_dir() -> Path:
    """``$ATX_DATA_DIR``, else ``~/.local/share/atx``."""
    env = os.environ.get("ATX_DATA_DIR")
    return Path(env) if env else Path.home() / ".local" / "share" / "atx"


def default_store_url() -> str:
    return f"sqlite:///{default_data_dir() / 'tc.db'}"


@dataclass
class TCConfig:
    host: str = "127.0.0.1"
    port: int = 8091
    store_url: str = field(default_factory=default_store_url)
    #: Used when Begin asks for 0.
    default_timeout_ms: int = 60_000
    #: Begin refuses larger timeouts (INVALID_ARGUMENT).
    max_timeout_ms: int = 24 * 3600 * 1000
    #: How often the background jobs run.
    job_interval_ms: int = 1000
    #: Backoff of phase-two retries: base * 2**(attempt-1), capped.
    retry_backoff_base_ms: int = 1000
    retry_backoff_max_ms: int = 60_000
    #: Give up phase two after this long (0 = retry forever, Seata's default).
    max_commit_retry_timeout_ms: int = 0
    max_rollback_retry_timeout_ms: int = 0
    #: How long one BranchCommit/BranchRollback may wait for the RM's answer.
    branch_timeout_ms: int = 10_000
    #: RMs must send a heartbeat this often; silent for 3 intervals = dead.
    heartbeat_interval_ms: int = 5000
    history_size: int = 1000
    token: str = ""
    admin_token: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    #: 0 disables the Prometheus endpoint.
    metrics_port: int = 0
    #: Names this node in job locks and logs. Default ``host:port``: a node restarted on
    #: the same address is the same node and retakes its job locks at once.
    node_id: str = ""
    #: Seconds SIGTERM waits for calls in flight.
    shutdown_grace_s: float = 10.0
    #: Distributed job lock lifetime.
    job_lock_ttl_ms: int = 10_000
    #: A BranchRegister waiting for a conflicting holder (its ``lock_wait_ms``) waits
    #: at most this long, and looks again this often for holders on other nodes.
    max_lock_wait_ms: int = 60_000
    lock_wait_poll_ms: int = 10
    #: Transaction ids per ReserveXids block (a TM makes that many XIDs itself).
    xid_block: int = 1000

    @property
    def advertise_host(self) -> str:
        """The host written into XIDs."""
        if self.host in ("", "0.0.0.0", "::", "[::]"):
            return socket.gethostname()
        return self.host
