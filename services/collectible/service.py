"""CollectibleService: stock, reservations made at order time, holdings.

Writes that belong to a caller's global transaction (reserve, release,
convert) go through the rm proxy connection, so they are AT branches. The
stock decrement is one conditional UPDATE (``stock >= qty``): concurrent
buyers can never drive stock below zero, whatever the interleaving.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import grpc

from atx.clock import now_ms
from atx.errors import InvalidArgumentError, NotFoundError, map_errors
from atx.shop.common.db import Database, execute
from atx.shop.common.errors import InvalidStateError, SoldOutError
from atx.shop.common.faults import check_fault
from atx.shop.common.server import ServiceRuntime, start_server
from atx.shop.v1 import collectible_pb2 as pb
from atx.shop.v1 import collectible_pb2_grpc as pb_grpc

__all__ = ["SCHEMA", "CollectibleServicer", "serve"]

logger = logging.getLogger(__name__)

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS collectibles ("
    " collectible_id VARCHAR(64) NOT NULL PRIMARY KEY,"
    " name VARCHAR(200) NOT NULL,"
    " price BIGINT NOT NULL,"
    " total INT NOT NULL,"
    " stock INT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS reservations ("
    " order_id VARCHAR(64) NOT NULL PRIMARY KEY,"
    " collectible_id VARCHAR(64) NOT NULL,"
    " user_id VARCHAR(64) NOT NULL,"
    " quantity INT NOT NULL,"
    " state VARCHAR(16) NOT NULL,"
    " updated_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS holdings ("
    " holding_id VARCHAR(100) NOT NULL PRIMARY KEY,"
    " user_id VARCHAR(64) NOT NULL,"
    " collectible_id VARCHAR(64) NOT NULL,"
    " order_id VARCHAR(64) NOT NULL,"
    " state VARCHAR(16) NOT NULL,"
    " token_id VARCHAR(80) NOT NULL,"
    " chain_tx_hash VARCHAR(80) NOT NULL,"
    " created_at BIGINT NOT NULL)",
]

_RES_STATE = {
    "RESERVED": pb.RESERVATION_STATE_RESERVED,
    "RELEASED": pb.RESERVATION_STATE_RELEASED,
    "CONVERTED": pb.RESERVATION_STATE_CONVERTED,
}
_HOLD_STATE = {"MINTING": pb.HOLDING_STATE_MINTING, "MINTED": pb.HOLDING_STATE_MINTED}
_HOLDING_COLS = "holding_id, user_id, collectible_id, order_id, state, token_id, chain_tx_hash"


def _collectible(row: tuple[Any, ...]) -> pb.Collectible:
    return pb.Collectible(
        collectible_id=row[0], name=row[1], price=row[2], total=row[3], stock=row[4]
    )


def _reservation(row: tuple[Any, ...]) -> pb.Reservation:
    return pb.Reservation(
        order_id=row[0],
        collectible_id=row[1],
        user_id=row[2],
        quantity=row[3],
        state=_RES_STATE.get(row[4], pb.RESERVATION_STATE_UNSPECIFIED),
    )


def _holding(row: tuple[Any, ...]) -> pb.Holding:
    return pb.Holding(
        holding_id=row[0],
        user_id=row[1],
        collectible_id=row[2],
        order_id=row[3],
        state=_HOLD_STATE.get(row[4], pb.HOLDING_STATE_UNSPECIFIED),
        token_id=row[5],
        chain_tx_hash=row[6],
    )


def holding_id(order_id: str, index: int) -> str:
    """Deterministic, so a retried conversion names the same holdings."""
    return f"h-{order_id}-{index}"


class CollectibleServicer(pb_grpc.CollectibleServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    def _reservation_row(self, connection: Any, order_id: str) -> tuple[Any, ...] | None:
        cursor = execute(
            connection,
            self.db,
            "SELECT order_id, collectible_id, user_id, quantity, state FROM reservations"
            " WHERE order_id = ?",
            (order_id,),
        )
        row = cursor.fetchone()
        cursor.close()
        return tuple(row) if row else None

    @map_errors
    def CreateCollectible(
        self, request: pb.CreateCollectibleRequest, context: grpc.ServicerContext
    ) -> pb.CreateCollectibleResponse:
        if not request.name or request.price < 0 or request.total < 0:
            raise InvalidArgumentError(
                f"bad collectible: name={request.name!r} price={request.price}"
                f" total={request.total}"
            )
        cid = request.collectible_id or f"c-{uuid.uuid4().hex[:12]}"
        with self.db.transaction(proxy=False) as connection:
            execute(
                connection,
                self.db,
                "INSERT INTO collectibles (collectible_id, name, price, total, stock)"
                " VALUES (?, ?, ?, ?, ?)",
                (cid, request.name, request.price, request.total, request.total),
            ).close()
        return pb.CreateCollectibleResponse(
            collectible=pb.Collectible(
                collectible_id=cid,
                name=request.name,
                price=request.price,
                total=request.total,
                stock=request.total,
            )
        )

    def get(self, collectible_id: str) -> pb.Collectible:
        rows = self.db.query(
            "SELECT collectible_id, name, price, total, stock FROM collectibles"
            " WHERE collectible_id = ?",
            (collectible_id,),
        )
        if not rows:
            raise NotFoundError(f"no collectible {collectible_id!r}", collectible_id=collectible_id)
        return _collectible(rows[0])

    @map_errors
    def GetCollectible(
        self, request: pb.GetCollectibleRequest, context: grpc.ServicerContext
    ) -> pb.GetCollectibleResponse:
        return pb.GetCollectibleResponse(collectible=self.get(request.collectible_id))

    @map_errors
    def ReserveStock(
        self, request: pb.ReserveStockRequest, context: grpc.ServicerContext
    ) -> pb.ReserveStockResponse:
        if not request.order_id or not request.collectible_id or request.quantity <= 0:
            raise InvalidArgumentError(
                f"bad reservation: order={request.order_id!r}"
                f" collectible={request.collectible_id!r} quantity={request.quantity}"
            )
        check_fault("reserve_stock")
        with self.db.transaction() as connection:
            cursor = execute(
                connection,
                self.db,
                "UPDATE collectibles SET stock = stock - ? WHERE collectible_id = ? AND stock >= ?",
                (request.quantity, request.collectible_id, request.quantity),
            )
            updated = cursor.rowcount
            cursor.close()
            if updated != 1:
                self.get(request.collectible_id)  # NotFound if it does not exist
                raise SoldOutError(request.collectible_id, request.quantity)
            execute(
                connection,
                self.db,
                "INSERT INTO reservations (order_id, collectible_id, user_id, quantity, state,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    request.order_id,
                    request.collectible_id,
                    request.user_id,
                    request.quantity,
                    "RESERVED",
                    now_ms(),
                ),
            ).close()
        return pb.ReserveStockResponse(
            reservation=pb.Reservation(
                order_id=request.order_id,
                collectible_id=request.collectible_id,
                user_id=request.user_id,
                quantity=request.quantity,
                state=pb.RESERVATION_STATE_RESERVED,
            )
        )

    @map_errors
    def ReleaseReservation(
        self, request: pb.ReleaseReservationRequest, context: grpc.ServicerContext
    ) -> pb.ReleaseReservationResponse:
        check_fault("release_reservation")
        with self.db.transaction() as connection:
            row = self._reservation_row(connection, request.order_id)
            if row is None:
                raise NotFoundError(f"no reservation for order {request.order_id!r}")
            if row[4] == "RELEASED":
                return pb.ReleaseReservationResponse(reservation=_reservation(row))
            if row[4] != "RESERVED":
                raise InvalidStateError("reservation", request.order_id, row[4], "release")
            execute(
                connection,
                self.db,
                "UPDATE reservations SET state = ?, updated_at = ? WHERE order_id = ?",
                ("RELEASED", now_ms(), request.order_id),
            ).close()
            execute(
                connection,
                self.db,
                "UPDATE collectibles SET stock = stock + ? WHERE collectible_id = ?",
                (row[3], row[1]),
            ).close()
        return pb.ReleaseReservationResponse(reservation=_reservation((*row[:4], "RELEASED")))

    @map_errors
    def ConvertReservation(
        self, request: pb.ConvertReservationRequest, context: grpc.ServicerContext
    ) -> pb.ConvertReservationResponse:
        check_fault("convert_reservation")
        with self.db.transaction() as connection:
            row = self._reservation_row(connection, request.order_id)
            if row is None:
                raise NotFoundError(f"no reservation for order {request.order_id!r}")
            ids = [holding_id(request.order_id, i) for i in range(int(row[3]))]
            if row[4] == "RESERVED":
                execute(
                    connection,
                    self.db,
                    "UPDATE reservations SET state = ?, updated_at = ? WHERE order_id = ?",
                    ("CONVERTED", now_ms(), request.order_id),
                ).close()
                for hid in ids:
                    execute(
                        connection,
                        self.db,
                        f"INSERT INTO holdings ({_HOLDING_COLS}, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (hid, row[2], row[1], request.order_id, "MINTING", "", "", now_ms()),
                    ).close()
            elif row[4] != "CONVERTED":
                raise InvalidStateError("reservation", request.order_id, row[4], "convert")
        check_fault("convert_reservation_after")
        holdings = [
            pb.Holding(
                holding_id=hid,
                user_id=row[2],
                collectible_id=row[1],
                order_id=request.order_id,
                state=pb.HOLDING_STATE_MINTING,
            )
            for hid in ids
        ]
        return pb.ConvertReservationResponse(holdings=holdings)

    @map_errors
    def MarkMinted(
        self, request: pb.MarkMintedRequest, context: grpc.ServicerContext
    ) -> pb.MarkMintedResponse:
        if not request.holding_id or not request.token_id:
            raise InvalidArgumentError("holding_id and token_id are required")
        # Only the dispatcher calls this, after the commit: a plain local write.
        with self.db.transaction(proxy=False) as connection:
            execute(
                connection,
                self.db,
                "UPDATE holdings SET state = ?, token_id = ?, chain_tx_hash = ?"
                " WHERE holding_id = ?",
                ("MINTED", request.token_id, request.chain_tx_hash, request.holding_id),
            ).close()
        rows = self.db.query(
            f"SELECT {_HOLDING_COLS} FROM holdings WHERE holding_id = ?", (request.holding_id,)
        )
        if not rows:
            raise NotFoundError(f"no holding {request.holding_id!r}")
        return pb.MarkMintedResponse(holding=_holding(rows[0]))

    @map_errors
    def ListHoldings(
        self, request: pb.ListHoldingsRequest, context: grpc.ServicerContext
    ) -> pb.ListHoldingsResponse:
        clauses, params = [], []
        if request.user_id:
            clauses.append("user_id = ?")
            params.append(request.user_id)
        if request.order_id:
            clauses.append("order_id = ?")
            params.append(request.order_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.db.query(
            f"SELECT {_HOLDING_COLS} FROM holdings{where} ORDER BY holding_id", params
        )
        return pb.ListHoldingsResponse(holdings=[_holding(r) for r in rows])


def serve(port: int, db_url: str, host: str = "127.0.0.1") -> ServiceRuntime:
    db = Database(db_url, "collectible")
    db.execute_script(SCHEMA)
    servicer = CollectibleServicer(db)
    runtime = start_server(
        port,
        lambda server: pb_grpc.add_CollectibleServiceServicer_to_server(servicer, server),
        [pb.DESCRIPTOR.services_by_name["CollectibleService"].full_name],
        host=host,
    )
    runtime.on_stop.insert(0, db.close)  # the pooled connections, after everything else
    return runtime
