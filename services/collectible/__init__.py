"""Collectibles, stock reservations and holdings."""

from services.collectible.service import SCHEMA, CollectibleServicer, serve

__all__ = ["SCHEMA", "CollectibleServicer", "serve"]
