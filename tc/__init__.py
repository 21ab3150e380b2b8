"""The atx transaction coordinator (TC)."""

from atx.tc.config import TCConfig
from atx.tc.coordinator import TransactionCoordinator
from atx.tc.server import TCServer, serve
from atx.tc.store.base import SessionStore, create_store

__all__ = [
    "SessionStore",
    "TCConfig",
    "TCServer",
    "TransactionCoordinator",
    "create_store",
    "serve",
]
