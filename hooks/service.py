"""DeferredCallService: admins list deferred calls and retry dead-lettered ones.

Every process that dispatches deferred calls registers this servicer on its
gRPC server with :func:`add_deferred_call_service`.
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from atx.errors import InvalidArgumentError, NotFoundError, map_errors
from atx.hooks.dispatcher import Dispatcher
from atx.hooks.outbox import STATE_DEAD, STATE_DONE, STATE_PENDING
from atx.hooks.store import OutboxRow, OutboxStore
from atx.v1 import deferred_call_pb2 as dc_pb2
from atx.v1 import deferred_call_pb2_grpc as dc_grpc

__all__ = ["DeferredCallServicer", "add_deferred_call_service", "to_proto"]

_STATE_TO_PROTO = {
    STATE_PENDING: dc_pb2.DEFERRED_CALL_STATE_PENDING,
    STATE_DONE: dc_pb2.DEFERRED_CALL_STATE_DONE,
    STATE_DEAD: dc_pb2.DEFERRED_CALL_STATE_DEAD,
}
_PROTO_TO_STATE = {v: k for k, v in _STATE_TO_PROTO.items()}


def to_proto(row: OutboxRow) -> dc_pb2.DeferredCall:
    return dc_pb2.DeferredCall(
        id=row.id,
        xid=row.xid,
        target=row.target,
        payload=json.dumps(row.payload, sort_keys=True),
        state=_STATE_TO_PROTO.get(row.state, dc_pb2.DEFERRED_CALL_STATE_UNSPECIFIED),
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_ms=row.next_attempt_at,
        created_time_ms=row.created_at,
    )


class DeferredCallServicer(dc_grpc.DeferredCallServiceServicer):
    def __init__(self, store: OutboxStore, dispatcher: Dispatcher | None = None) -> None:
        self.store = store
        self.dispatcher = dispatcher

    @map_errors
    def ListDeferredCalls(
        self, request: dc_pb2.ListDeferredCallsRequest, context: grpc.ServicerContext
    ) -> dc_pb2.ListDeferredCallsResponse:
        if request.page_size < 0:
            raise InvalidArgumentError(f"page_size must be >= 0, got {request.page_size}")
        state = _PROTO_TO_STATE.get(request.state)
        if request.state and state is None:
            raise InvalidArgumentError(f"unknown deferred call state {request.state}")
        rows = self.store.list(state, request.page_size or 100)
        return dc_pb2.ListDeferredCallsResponse(calls=[to_proto(r) for r in rows])

    @map_errors
    def RetryDeferredCall(
        self, request: dc_pb2.RetryDeferredCallRequest, context: grpc.ServicerContext
    ) -> dc_pb2.RetryDeferredCallResponse:
        if not request.id:
            raise InvalidArgumentError("id must not be empty")
        row = self.store.get(request.id)
        if row is None:
            raise NotFoundError(f"no deferred call with id {request.id!r}", id=request.id)
        if row.state == STATE_DONE:
            return dc_pb2.RetryDeferredCallResponse(call=to_proto(row))
        updated = self.store.retry(request.id)
        if self.dispatcher is not None:
            self.dispatcher.wake_soon()
        assert updated is not None
        return dc_pb2.RetryDeferredCallResponse(call=to_proto(updated))


def add_deferred_call_service(
    server: Any, store: OutboxStore, dispatcher: Dispatcher | None = None
) -> DeferredCallServicer:
    servicer = DeferredCallServicer(store, dispatcher)
    dc_grpc.add_DeferredCallServiceServicer_to_server(servicer, server)
    return servicer
