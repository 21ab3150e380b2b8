"""OrderService. CreateOrder and CloseOrder each launch a global transaction.

CreateOrder: the order row (order DB) and the stock reservation (collectible
service, over gRPC with the XID) commit or roll back together; a sold-out
collectible rolls the order row back. Submission tokens make CreateOrder
idempotent: the token is consumed in the same branch as the order row, so a
rolled-back creation gives the token back.

The scheduled job ``order_timeout_close`` (jobs.py) closes expired orders no
pay order holds; RunJob runs it now.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import grpc

import atx.rm as rm
from atx.clock import now_ms
from atx.errors import AtxError, InvalidArgumentError, NotFoundError, map_errors
from atx.shop.common.db import Database, execute
from atx.shop.common.errors import InvalidStateError, SubmitTokenError
from atx.shop.common.faults import check_fault
from atx.shop.common.jobs import NEVER_S, JobRunner, build_runner
from atx.shop.common.rpc import call
from atx.shop.common.server import ServiceRuntime, client_channel, start_server
from atx.shop.order.jobs import ORDER_TIMEOUT_CLOSE_JOB, OrderTimeoutClose
from atx.shop.v1 import collectible_pb2 as col_pb
from atx.shop.v1 import collectible_pb2_grpc as col_grpc
from atx.shop.v1 import order_pb2 as pb
from atx.shop.v1 import order_pb2_grpc as pb_grpc

__all__ = ["SCHEMA", "OrderServicer", "OrderSettings", "serve"]

logger = logging.getLogger(__name__)

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS orders ("
    " order_id VARCHAR(64) NOT NULL PRIMARY KEY,"
    " user_id VARCHAR(64) NOT NULL,"
    " collectible_id VARCHAR(64) NOT NULL,"
    " quantity INT NOT NULL,"
    " amount BIGINT NOT NULL,"
    " state VARCHAR(16) NOT NULL,"
    " pay_order_id VARCHAR(64) NOT NULL,"
    " submit_token VARCHAR(128) NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " expire_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS submit_tokens ("
    " token VARCHAR(128) NOT NULL PRIMARY KEY,"
    " user_id VARCHAR(64) NOT NULL,"
    " state VARCHAR(16) NOT NULL,"
    " params_hash VARCHAR(64) NOT NULL,"
    " order_id VARCHAR(64) NOT NULL,"
    " created_at BIGINT NOT NULL)",
]

_STATE = {
    "CREATED": pb.ORDER_STATE_CREATED,
    "PAID": pb.ORDER_STATE_PAID,
    "COMPLETED": pb.ORDER_STATE_COMPLETED,
    "CLOSED": pb.ORDER_STATE_CLOSED,
}
_COLS = (
    "order_id, user_id, collectible_id, quantity, amount, state, pay_order_id,"
    " created_at, expire_at"
)


def _order(row: tuple[Any, ...]) -> pb.Order:
    return pb.Order(
        order_id=row[0],
        user_id=row[1],
        collectible_id=row[2],
        quantity=row[3],
        amount=row[4],
        state=_STATE.get(row[5], pb.ORDER_STATE_UNSPECIFIED),
        pay_order_id=row[6],
        created_time_ms=row[7],
        expire_time_ms=row[8],
    )


class OrderServicer(pb_grpc.OrderServiceServicer):
    def __init__(
        self,
        db: Database,
        collectible_address: str,
        order_ttl: float = 900.0,
        tx_timeout: float = 30.0,
        redis_url: str = "",
    ) -> None:
        self.db = db
        # With Redis, PAYMENT-GUARDS' submission tokens (Stripe semantics);
        # otherwise tokens live in the order database (consumed in the order's branch).
        self.tokens: Any = None
        if redis_url:
            from atx.shop.payment.channel.tokens import SubmissionTokens

            self.tokens = SubmissionTokens(redis_url)
        self.collectibles = col_grpc.CollectibleServiceStub(client_channel(collectible_address))
        self.order_ttl = order_ttl
        self.tx_timeout = tx_timeout
        self._last_xid = threading.local()
        #: The scheduled jobs (set by serve when it runs them).
        self.runner: JobRunner | None = None

    def _find(self, connection: Any, order_id: str) -> tuple[Any, ...] | None:
        cursor = execute(
            connection, self.db, f"SELECT {_COLS} FROM orders WHERE order_id = ?", (order_id,)
        )
        row = cursor.fetchone()
        cursor.close()
        return tuple(row) if row else None

    def get(self, order_id: str) -> pb.Order:
        rows = self.db.query(f"SELECT {_COLS} FROM orders WHERE order_id = ?", (order_id,))
        if not rows:
            raise NotFoundError(f"no order {order_id!r}", order_id=order_id)
        return _order(rows[0])

    @map_errors
    def IssueSubmitToken(
        self, request: pb.IssueSubmitTokenRequest, context: grpc.ServicerContext
    ) -> pb.IssueSubmitTokenResponse:
        if not request.user_id:
            raise InvalidArgumentError("user_id is required")
        if self.tokens is not None:
            return pb.IssueSubmitTokenResponse(submit_token=self.tokens.issue(request.user_id))
        token = uuid.uuid4().hex
        with self.db.transaction(proxy=False) as connection:
            execute(
                connection,
                self.db,
                "INSERT INTO submit_tokens VALUES (?, ?, ?, ?, ?, ?)",
                (token, request.user_id, "ISSUED", "", "", now_ms()),
            ).close()
        return pb.IssueSubmitTokenResponse(submit_token=token)

    def _consume_token(self, connection: Any, request: pb.CreateOrderRequest, order_id: str) -> str:
        """Consume the token in the order's branch; returns an existing order id on replay."""
        digest = hashlib.sha256(
            f"{request.user_id}|{request.collectible_id}|{request.quantity}".encode()
        ).hexdigest()
        cursor = execute(
            connection,
            self.db,
            "UPDATE submit_tokens SET state = ?, params_hash = ?, order_id = ?"
            " WHERE token = ? AND state = ? AND user_id = ?",
            ("CONSUMED", digest, order_id, request.submit_token, "ISSUED", request.user_id),
        )
        consumed = cursor.rowcount == 1
        cursor.close()
        if consumed:
            return ""
        rows = self.db.query(
            "SELECT state, params_hash, order_id, user_id FROM submit_tokens WHERE token = ?",
            (request.submit_token,),
        )
        if not rows or rows[0][3] != request.user_id:
            raise SubmitTokenError(f"unknown submit token {request.submit_token!r}")
        if rows[0][1] != digest:
            raise SubmitTokenError("submit token reused with different parameters")
        if rows[0][0] != "CONSUMED":
            raise SubmitTokenError("a concurrent submission with this token is in progress")
        return str(rows[0][2])

    @map_errors
    def CreateOrder(
        self, request: pb.CreateOrderRequest, context: grpc.ServicerContext
    ) -> pb.CreateOrderResponse:
        if not request.user_id or not request.collectible_id or request.quantity <= 0:
            raise InvalidArgumentError(
                f"bad order: user={request.user_id!r} collectible={request.collectible_id!r}"
                f" quantity={request.quantity}"
            )
        if self.tokens is not None and request.submit_token:
            return self._create_with_redis_token(request)
        return self._create_order(request)

    def _create_with_redis_token(self, request: pb.CreateOrderRequest) -> pb.CreateOrderResponse:
        from atx.shop.payment.channel.tokens import fingerprint

        token = request.submit_token
        params = {"collectible_id": request.collectible_id, "quantity": request.quantity}
        replay = self.tokens.begin(token, fingerprint(params), request.user_id)
        if replay is not None:
            return pb.CreateOrderResponse.FromString(replay.unwrap())
        untokened = pb.CreateOrderRequest()
        untokened.CopyFrom(request)
        untokened.submit_token = ""
        try:
            response = self._create_order(untokened)
        except AtxError as error:
            if error.retryable:
                self.tokens.release(token)
            else:
                self.tokens.fail(token, error)  # a final answer is replayed, errors included
            raise
        except BaseException:
            self.tokens.release(token)
            raise
        self.tokens.complete(token, response.SerializeToString())
        return response

    def _create_order(self, request: pb.CreateOrderRequest) -> pb.CreateOrderResponse:
        collectible = call(
            self.collectibles.GetCollectible,
            col_pb.GetCollectibleRequest(collectible_id=request.collectible_id),
        ).collectible
        order_id = f"o-{uuid.uuid4().hex[:16]}"
        self._last_xid.xid = ""
        try:
            return self._create(request, order_id, collectible.price)
        except AtxError as error:
            # Name the rolled-back transaction, so callers and the demo can show it.
            if self._last_xid.xid:
                error.details["rolled_back_xid"] = self._last_xid.xid
            raise

    def _create(
        self, request: pb.CreateOrderRequest, order_id: str, price: int
    ) -> pb.CreateOrderResponse:
        now = now_ms()
        with rm.global_transaction("create_order", timeout=self.tx_timeout) as tx:
            xid = tx.xid or ""
            self._last_xid.xid = xid
            with self.db.transaction() as connection:
                if request.submit_token:
                    existing = self._consume_token(connection, request, order_id)
                    if existing:
                        return pb.CreateOrderResponse(order=self.get(existing))
                execute(
                    connection,
                    self.db,
                    f"INSERT INTO orders ({_COLS}, submit_token, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        order_id,
                        request.user_id,
                        request.collectible_id,
                        request.quantity,
                        price * request.quantity,
                        "CREATED",
                        "",
                        now,
                        now + int(self.order_ttl * 1000),
                        request.submit_token,
                        now,
                    ),
                ).close()
            call(
                self.collectibles.ReserveStock,
                col_pb.ReserveStockRequest(
                    order_id=order_id,
                    collectible_id=request.collectible_id,
                    user_id=request.user_id,
                    quantity=request.quantity,
                ),
            )
            check_fault("create_order")
        logger.info("order %s created in %s", order_id, xid, extra={"xid": xid})
        return pb.CreateOrderResponse(order=self.get(order_id), xid=xid)

    @map_errors
    def GetOrder(
        self, request: pb.GetOrderRequest, context: grpc.ServicerContext
    ) -> pb.GetOrderResponse:
        return pb.GetOrderResponse(order=self.get(request.order_id))

    @map_errors
    def MarkPaid(
        self, request: pb.MarkPaidRequest, context: grpc.ServicerContext
    ) -> pb.MarkPaidResponse:
        check_fault("mark_paid")
        with self.db.transaction() as connection:
            row = self._find(connection, request.order_id)
            if row is None:
                raise NotFoundError(f"no order {request.order_id!r}", order_id=request.order_id)
            if row[5] in ("PAID", "COMPLETED") and row[6] == request.pay_order_id:
                return pb.MarkPaidResponse(order=_order(row))
            if row[5] != "CREATED":
                raise InvalidStateError("order", request.order_id, row[5], "mark paid")
            execute(
                connection,
                self.db,
                "UPDATE orders SET state = ?, pay_order_id = ?, updated_at = ? WHERE order_id = ?",
                ("PAID", request.pay_order_id, now_ms(), request.order_id),
            ).close()
        return pb.MarkPaidResponse(order=_order((*row[:5], "PAID", request.pay_order_id, *row[7:])))

    @map_errors
    def CompleteOrder(
        self, request: pb.CompleteOrderRequest, context: grpc.ServicerContext
    ) -> pb.CompleteOrderResponse:
        with self.db.transaction() as connection:
            row = self._find(connection, request.order_id)
            if row is None:
                raise NotFoundError(f"no order {request.order_id!r}", order_id=request.order_id)
            if row[5] == "PAID":
                execute(
                    connection,
                    self.db,
                    "UPDATE orders SET state = ?, updated_at = ? WHERE order_id = ?",
                    ("COMPLETED", now_ms(), request.order_id),
                ).close()
            elif row[5] != "COMPLETED":
                raise InvalidStateError("order", request.order_id, row[5], "complete")
        return pb.CompleteOrderResponse(order=self.get(request.order_id))

    @map_errors
    def CloseOrder(
        self, request: pb.CloseOrderRequest, context: grpc.ServicerContext
    ) -> pb.CloseOrderResponse:
        return pb.CloseOrderResponse(order=self.close(request.order_id, request.reason))

    def close(self, order_id: str, reason: str) -> pb.Order:
        """CREATED -> CLOSED and the reservation released: one global transaction."""
        with rm.global_transaction("close_order", timeout=self.tx_timeout) as tx:
            with self.db.transaction() as connection:
                row = self._find(connection, order_id)
                if row is None:
                    raise NotFoundError(f"no order {order_id!r}")
                if row[5] == "CLOSED":
                    return _order(row)
                if row[5] != "CREATED":
                    raise InvalidStateError("order", order_id, row[5], "close")
                execute(
                    connection,
                    self.db,
                    "UPDATE orders SET state = ?, updated_at = ? WHERE order_id = ?",
                    ("CLOSED", now_ms(), order_id),
                ).close()
            call(
                self.collectibles.ReleaseReservation,
                col_pb.ReleaseReservationRequest(order_id=order_id),
            )
        logger.info("order %s closed (%s) in %s", order_id, reason, tx.xid, extra={"xid": tx.xid})
        return self.get(order_id)

    @map_errors
    def RunJob(
        self, request: pb.OrderServiceRunJobRequest, context: grpc.ServicerContext
    ) -> pb.OrderServiceRunJobResponse:
        if not request.job:
            raise InvalidArgumentError(f"job is required ({ORDER_TIMEOUT_CLOSE_JOB})")
        if self.runner is None:
            raise InvalidArgumentError(
                f"no job {request.job!r}: the order service runs no jobs (no --payment)"
            )
        run = self.runner.run_now(request.job)
        return pb.OrderServiceRunJobResponse(ran=run.ran, processed=run.processed)


@dataclass(frozen=True)
class OrderSettings:
    #: An unpaid order's deadline after creation.
    order_ttl_s: float = 900.0
    #: PaymentService address ('' = no timeout-close job: it must ask payment first).
    payment_address: str = ""
    #: order_timeout_close every interval (0 = only on demand, RunJob).
    close_interval_s: float = 30.0
    #: Close only orders whose deadline passed this long ago.
    close_grace_s: float = 30.0
    job_lock_ttl_s: float = 30.0


def serve(
    port: int,
    db_url: str,
    collectible_address: str,
    host: str = "127.0.0.1",
    redis_url: str = "",
    settings: OrderSettings | None = None,
) -> ServiceRuntime:
    settings = settings or OrderSettings()
    db = Database(db_url, "order")
    db.execute_script(SCHEMA)
    servicer = OrderServicer(
        db, collectible_address, order_ttl=settings.order_ttl_s, redis_url=redis_url
    )
    runner: JobRunner | None = None
    if settings.payment_address:
        runner = build_runner(
            redis_url,
            db,
            table="order_job_locks",
            lock_ttl_ms=int(settings.job_lock_ttl_s * 1000),
        )
        body = OrderTimeoutClose(
            db, settings.payment_address, servicer.close, grace_s=settings.close_grace_s
        )
        runner.register(ORDER_TIMEOUT_CLOSE_JOB, body, settings.close_interval_s or NEVER_S)
        servicer.runner = runner
    else:
        logger.warning("no --payment: expired orders are not closed by the order service")
    runtime = start_server(
        port,
        lambda server: pb_grpc.add_OrderServiceServicer_to_server(servicer, server),
        [pb.DESCRIPTOR.services_by_name["OrderService"].full_name],
        host=host,
    )
    runtime.on_stop.insert(0, db.close)  # the pooled connections, after everything else
    if runner is not None:
        runner.start()
        runtime.on_stop.append(runner.close)
    return runtime
