"""The simulated external chain platform."""

from services.chain.service import ChainServicer, serve

__all__ = ["ChainServicer", "serve"]
