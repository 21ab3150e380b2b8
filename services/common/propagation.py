"""XID propagation over gRPC for the services: rm's interceptors.

The client interceptor sends the current XID in metadata ``tx_xid``; the
server interceptor binds it around the handler, so a servicer's writes
through an rm proxy join the caller's global transaction.
"""

from __future__ import annotations

from typing import Any

__all__ = ["client_interceptor", "server_interceptor"]


def client_interceptor() -> Any:
    from atx.rm import XidClientInterceptor

    return XidClientInterceptor()


def server_interceptor() -> Any:
    from atx.rm import XidServerInterceptor

    return XidServerInterceptor()
