"""The atx transaction coordinator (TC)."""

from tc.config import TCConfig
from tc.coordinator import TransactionCoordinator
from tc.server import TCServer, serve
from tc.store.base import SessionStore, create_store

__all__ = [
    "SessionStore",
    "TCConfig",
    "TCServer",
    "TransactionCoordinator",
    "create_store",
    "serve",
]
