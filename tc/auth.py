"""Bearer-token authentication of TC calls (a grpc.aio server interceptor).

With a token configured, every RPC must carry ``authorization: Bearer
<token>``; AdminService calls need the admin token when one is set (else the
token). Health checks and reflection stay open so that probes work.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from atx.errors import AtxError, PermissionDeniedError, UnauthenticatedError, to_status
from atx.metadata import AUTHORIZATION_KEY

__all__ = ["TokenAuthInterceptor"]

_OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_ADMIN_PREFIX = "/atx.v1.AdminService/"


def _refusal(handler: grpc.RpcMethodHandler, error: AtxError) -> grpc.RpcMethodHandler:
    status = to_status(error)

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(status.code, status.details, status.trailing_metadata)

    async def refuse_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(status.code, status.details, status.trailing_metadata)
        yield  # pragma: no cover - makes this an async generator

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse_stream)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse_stream)
    return grpc.unary_unary_rpc_method_handler(refuse)


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, token: str, admin_token: str = "") -> None:
        self.token = token
        self.admin_token = admin_token

    def _check(self, method: str, metadata: Any) -> AtxError | None:
        if method.startswith(_OPEN_PREFIXES):
            return None
        needed = self.token
        if method.startswith(_ADMIN_PREFIX) and self.admin_token:
            needed = self.admin_token
        if not needed:
            return None
        presented = ""
        for key, value in metadata or ():
            if key == AUTHORIZATION_KEY:
                presented = value if isinstance(value, str) else value.decode()
        if not presented:
            return UnauthenticatedError(f"{method} needs an authorization bearer token")
        scheme, _, token = presented.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), needed):
            if method.startswith(_ADMIN_PREFIX) and hmac.compare_digest(token.strip(), self.token):
                return PermissionDeniedError(f"{method} needs the admin token")
            return UnauthenticatedError(f"invalid token for {method}")
        return None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        error = self._check(handler_call_details.method, handler_call_details.invocation_metadata)
        return handler if error is None else _refusal(handler, error)
