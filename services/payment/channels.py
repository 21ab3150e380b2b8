"""The payment service's channels: name → merchant-side client.

A channel is configured as ``name=host:port`` (the simulator's address);
keys come from a shared directory (see atx.shop.payment.channel.signing).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from atx.errors import InvalidArgumentError, NotFoundError

__all__ = ["StreamRegistry", "parse_channel_spec"]


def parse_channel_spec(spec: str) -> tuple[str, str]:
    name, sep, address = spec.partition("=")
    if not sep or not name or ":" not in address:
        raise InvalidArgumentError(f"channel must be name=host:port, got {spec!r}", spec=spec)
    return name, address


class StreamRegistry:
    """Channel clients by name, built lazily from ``name=address`` specs."""

    def __init__(
        self,
        specs: Sequence[str],
        keys_dir: str | Path,
        *,
        breaker: Any = None,
        timeout_s: float = 5.0,
    ) -> None:
        self._addresses = dict(parse_channel_spec(s) for s in specs)
        self._keys_dir = keys_dir
        self._clients: dict[str, Any] = {}
        #: A ChannelBreaker every client records its calls' outcomes in (None: disabled).
        self.breaker = breaker
        self._timeout_s = timeout_s

    def names(self) -> list[str]:
        return list(self._addresses)

    def get(self, name: str) -> Any:
        """The ChannelClient of ``name``; NotFoundError for an unknown channel."""
        client = self._clients.get(name)
        if client is not None:
            return client
        address = self._addresses.get(name)
        if address is None:
            raise NotFoundError(f"unknown payment channel {name!r}", channel=name)
        from atx.shop.payment.channel.client import ChannelClient
        from atx.shop.payment.channel.signing import load_or_create_keys

        client = ChannelClient(
            name,
            address,
            load_or_create_keys(self._keys_dir, name),
            breaker=self.breaker,
            timeout_s=self._timeout_s,
        )
        self._clients[name] = client
        return client

    def clients(self) -> dict[str, Any]:
        """Every channel's client, by name (for the recovery jobs)."""
        return {name: self.get(name) for name in self._addresses}

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
