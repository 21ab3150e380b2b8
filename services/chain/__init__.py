"""The simulated external chain platform."""

from atx.shop.chain.service import ChainServicer, serve

__all__ = ["ChainServicer", "serve"]
