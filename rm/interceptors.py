# mypy: disallow-subclassing-any=False
"""XID propagation over gRPC, in metadata key ``tx_xid``.

Client side: :class:`XidClientInterceptor` (sync channels, via
``grpc.intercept_channel``) and :class:`AioXidClientInterceptor`
(``grpc.aio.insecure_channel(..., interceptors=[...])``) add the current XID.

Server side: :class:`XidServerInterceptor` (sync servers) and
:class:`AioXidServerInterceptor` (grpc.aio servers). A contextvar set in
``intercept_service`` does not reach the handler (it runs later, elsewhere),
so they wrap the handler's behaviour and bind the XID *inside* the call, for
every call shape, including streaming responses and async generators.
"""

from __future__ import annotations

import collections
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import grpc

from atx.metadata import XID_KEY
from atx.rm import launched as launched_transactions
from atx.rm.aio.bridge import spawn
from atx.rm.context import bind_xid, bound_xid, current_xid
from atx.rm.launched import TCState

__all__ = [
    "AioXidClientInterceptor",
    "AioXidServerInterceptor",
    "XidClientInterceptor",
    "XidServerInterceptor",
    "xid_from_metadata",
]


def xid_from_metadata(metadata: Sequence[Any] | None) -> str | None:
    """The XID in invocation metadata, if any (keys are lowercase on the wire)."""
    for item in metadata or ():
        key, value = item[0], item[1]
        if key == XID_KEY and value:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def _metadata_with_xid(metadata: Any, xid: str) -> list[tuple[str, str | bytes]]:
    kept = [(k, v) for k, v in (metadata or ()) if k != XID_KEY]
    kept.append((XID_KEY, xid))
    return kept


# --- client, sync ------------------------------------------------------------------------


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


def _sync_details(details: Any) -> Any:
    xid = current_xid()
    if xid is None:
        return details
    return _CallDetails(
        details.method,
        details.timeout,
        _metadata_with_xid(details.metadata, xid),
        details.credentials,
        getattr(details, "wait_for_ready", None),
        getattr(details, "compression", None),
    )


class XidClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the current XID to every call of a sync channel."""

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_sync_details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_sync_details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(_sync_details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(_sync_details(details), requests)


# --- client, aio -------------------------------------------------------------------------


async def _aio_details(details: Any) -> Any:
    xid = bound_xid()
    if xid is None:
        return details
    launched = launched_transactions.find(xid)
    if launched is not None and launched.state is not TCState.BEGUN:
        # The callee may register a branch: the TC must know the XID first.
        await spawn(launched.ensure_begun)
    metadata = grpc.aio.Metadata(*_metadata_with_xid(details.metadata, xid))
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class AioXidClientInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Adds the current XID to every call of a grpc.aio channel."""

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await _aio_details(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await _aio_details(details), request)

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(await _aio_details(details), requests)

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(await _aio_details(details), requests)


# --- server: wrap the behaviour so the XID is bound inside the handler --------------------


def _bind(behavior: Callable[..., Any], xid: str) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):

        async def async_gen(*args: Any) -> AsyncIterator[Any]:
            with bind_xid(xid):
                async for item in behavior(*args):
                    yield item

        return async_gen
    if inspect.iscoroutinefunction(behavior):

        async def coroutine(*args: Any) -> Any:
            with bind_xid(xid):
                return await behavior(*args)

        return coroutine

    def call(*args: Any) -> Any:
        with bind_xid(xid):
            result = behavior(*args)
        if isinstance(result, Iterator) and not isinstance(result, grpc.Future):
            return _iterate_bound(result, xid)
        return result

    return call


def _iterate_bound(iterator: Iterator[Any], xid: str) -> Iterator[Any]:
    # A streaming response of a sync server runs lazily: bind around each step.
    while True:
        with bind_xid(xid):
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item


def _wrap_handler(handler: Any, xid: str) -> Any:
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_bind(handler.unary_unary, xid), **kwargs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_bind(handler.unary_stream, xid), **kwargs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(_bind(handler.stream_unary, xid), **kwargs)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(_bind(handler.stream_stream, xid), **kwargs)
    return handler


class XidServerInterceptor(grpc.ServerInterceptor):
    """Binds the caller's XID for the handler of a sync ``grpc.server``."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = continuation(handler_call_details)
        xid = xid_from_metadata(handler_call_details.invocation_metadata)
        if handler is None or xid is None:
            return handler
        return _wrap_handler(handler, xid)


class AioXidServerInterceptor(grpc.aio.ServerInterceptor):
    """Binds the caller's XID for the handler of a ``grpc.aio.server``."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        xid = xid_from_metadata(handler_call_details.invocation_metadata)
        if handler is None or xid is None:
            return handler
        return _wrap_handler(handler, xid)
