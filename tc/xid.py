"""XIDs: ``host:port:transactionId``, as in Seata."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from atx.tc.errors import InvalidXidError

__all__ = ["Xid", "make_xid", "parse_xid"]

MAX_XID_LENGTH = 128
_SPACE = re.compile(r"\s")


@dataclass(frozen=True)
class Xid:
    host: str
    port: int
    transaction_id: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}:{self.transaction_id}"


def make_xid(host: str, port: int, transaction_id: int) -> str:
    return f"{host}:{port}:{transaction_id}"


@functools.lru_cache(maxsize=4096)
def parse_xid(xid: str) -> Xid:
    """Validate an XID from a request; empty or garbage raises InvalidXidError.

    Cached: a transaction's XID arrives with each of its requests (errors are
    not cached)."""
    if not xid:
        raise InvalidXidError(xid, "it is empty")
    if len(xid) > MAX_XID_LENGTH:
        raise InvalidXidError(xid[:MAX_XID_LENGTH] + "...", "it is too long")
    rest, _, tid = xid.rpartition(":")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit() or not tid.isdigit() or not tid.isascii():
        raise InvalidXidError(xid, "expected host:port:transactionId")
    if _SPACE.search(host):
        raise InvalidXidError(xid, "the host contains white space")
    transaction_id = int(tid)
    if transaction_id <= 0 or not 0 < int(port) < 65536:
        raise InvalidXidError(xid, "port or transaction id out of range")
    return Xid(host, int(port), transaction_id)
