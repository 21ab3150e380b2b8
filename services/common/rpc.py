"""Calling another service: gRPC errors come back as typed AtxErrors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from atx.errors import from_rpc_error

__all__ = ["call"]

T = TypeVar("T")


def call(method: Callable[..., T], request: Any, timeout: float = 15.0) -> T:
    """``method(request)`` with a deadline; a grpc.RpcError becomes its AtxError."""
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None
