"""ChainService: a slow, sometimes unavailable chain platform.

Mint is idempotent by request id: a repeated request returns the first
token. Every mint is recorded in the service's own database (``chain_mints``)
so tests can count them. Not an rm resource: the chain is external, never part
of a global transaction.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

import grpc

from atx.clock import now_ms
from atx.errors import InvalidArgumentError, map_errors
from atx.shop.common.db import Database
from atx.shop.common.errors import ChainUnavailableError
from atx.shop.common.server import ServiceRuntime, start_server
from atx.shop.v1 import chain_pb2 as pb
from atx.shop.v1 import chain_pb2_grpc as pb_grpc

__all__ = ["SCHEMA", "ChainServicer", "serve"]

logger = logging.getLogger(__name__)

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS chain_mints ("
    " request_id VARCHAR(255) NOT NULL PRIMARY KEY,"
    " holding_id VARCHAR(64) NOT NULL,"
    " user_id VARCHAR(64) NOT NULL,"
    " collectible_id VARCHAR(64) NOT NULL,"
    " token_id VARCHAR(80) NOT NULL,"
    " tx_hash VARCHAR(80) NOT NULL,"
    " minted_at BIGINT NOT NULL)"
]


class ChainServicer(pb_grpc.ChainServiceServicer):
    def __init__(self, db: Database, available: bool = True, latency_ms: int = 0) -> None:
        self.db = db
        self.available = available
        self.latency_ms = latency_ms
        self._lock = threading.Lock()  # one mint at a time: the platform's nonce

    @map_errors
    def Mint(self, request: pb.MintRequest, context: grpc.ServicerContext) -> pb.MintResponse:
        if not request.request_id or not request.holding_id:
            raise InvalidArgumentError("request_id and holding_id are required")
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        if not self.available:
            raise ChainUnavailableError("the chain platform is unavailable")
        with self._lock:
            rows = self.db.query(
                "SELECT token_id, tx_hash FROM chain_mints WHERE request_id = ?",
                (request.request_id,),
            )
            if rows:
                return pb.MintResponse(token_id=rows[0][0], tx_hash=rows[0][1])
            digest = hashlib.sha256(request.request_id.encode()).hexdigest()
            token_id, tx_hash = f"token-{digest[:16]}", f"0x{digest}"
            connection = self.db.raw()
            try:
                cursor = connection.cursor()
                cursor.execute(
                    self.db.sql("INSERT INTO chain_mints VALUES (?, ?, ?, ?, ?, ?, ?)"),
                    (
                        request.request_id,
                        request.holding_id,
                        request.user_id,
                        request.collectible_id,
                        token_id,
                        tx_hash,
                        now_ms(),
                    ),
                )
                connection.commit()
            finally:
                connection.close()
        logger.info("minted %s for holding %s", token_id, request.holding_id)
        return pb.MintResponse(token_id=token_id, tx_hash=tx_hash)

    @map_errors
    def ListMints(
        self, request: pb.ListMintsRequest, context: grpc.ServicerContext
    ) -> pb.ListMintsResponse:
        sql = "SELECT request_id, holding_id, token_id, tx_hash, minted_at FROM chain_mints"
        params: tuple[Any, ...] = ()
        if request.request_id:
            sql, params = sql + " WHERE request_id = ?", (request.request_id,)
        rows = self.db.query(sql + " ORDER BY minted_at", params)
        return pb.ListMintsResponse(
            mints=[
                pb.MintRecord(
                    request_id=r[0],
                    holding_id=r[1],
                    token_id=r[2],
                    tx_hash=r[3],
                    minted_time_ms=r[4],
                )
                for r in rows
            ]
        )

    @map_errors
    def SetAvailability(
        self, request: pb.SetAvailabilityRequest, context: grpc.ServicerContext
    ) -> pb.SetAvailabilityResponse:
        if request.latency_ms < 0:
            raise InvalidArgumentError(f"latency_ms must be >= 0, got {request.latency_ms}")
        self.available = request.available
        self.latency_ms = request.latency_ms
        logger.info("chain available=%s latency=%dms", self.available, self.latency_ms)
        return pb.SetAvailabilityResponse()


def serve(
    port: int, db_url: str, available: bool = True, latency_ms: int = 0, host: str = "127.0.0.1"
) -> ServiceRuntime:
    db = Database(db_url, "chain")
    db.execute_script(SCHEMA)
    servicer = ChainServicer(db, available, latency_ms)
    return start_server(
        port,
        lambda server: pb_grpc.add_ChainServiceServicer_to_server(servicer, server),
        [pb.DESCRIPTOR.services_by_name["ChainService"].full_name],
        host=host,
    )
