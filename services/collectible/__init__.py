"""Collectibles, stock reservations and holdings."""

from atx.shop.collectible.service import SCHEMA, CollectibleServicer, serve

__all__ = ["SCHEMA", "CollectibleServicer", "serve"]
