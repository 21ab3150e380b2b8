"""The success processing of a paid pay order, and the deferred mint.

Success processing is one global transaction launched here:

1. payment branch: pay order PENDING -> SUCCESS (a conditional UPDATE: a
   duplicate finds it SUCCESS and changes nothing), the notification id
   recorded, and one outbox row per holding (target ``chain.mint``,
   request id ``mint:<holding id>``, stable across redeliveries);
2. order branch: OrderService.MarkPaid over gRPC;
3. collectible branch: CollectibleService.ConvertReservation over gRPC.

The chain is never called inside the transaction: the dispatcher runs the
mint after the commit, so a chain outage cannot roll back a paid purchase.

Duplicates: the conditional UPDATE (``state IN (PENDING, ABANDONED)``) is the
row lock; the loser sees SUCCESS. Because AT branches commit locally in phase
one, that SUCCESS may belong to a settlement still in flight (or about to roll
back), so the pay order records ``settled_xid`` and a duplicate asks the TC
about it: committed (or forgotten while the row still says SUCCESS) means
"already processed"; anything else answers "fail" so the channel retries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import atx.rm as rm
from atx.clock import now_ms
from atx.errors import GlobalTransactionNotFoundError, NotFoundError
from atx.hooks.dispatcher import COMMITTED_STATUSES as _COMMITTED
from atx.hooks.outbox import defer
from atx.shop.collectible.service import holding_id
from atx.shop.common.db import Database, execute
from atx.shop.common.errors import InvalidStateError, SettlementInProgressError
from atx.shop.common.faults import check_fault
from atx.shop.common.rpc import call
from atx.shop.common.server import client_channel
from atx.shop.v1 import chain_pb2, chain_pb2_grpc, order_pb2, order_pb2_grpc
from atx.shop.v1 import collectible_pb2 as col_pb
from atx.shop.v1 import collectible_pb2_grpc as col_grpc
from atx.status import GlobalStatus

__all__ = ["MINT_TARGET", "Settlement", "SuccessProcessor"]

logger = logging.getLogger(__name__)

MINT_TARGET = "chain.mint"


@dataclass(frozen=True)
class Settlement:
    pay_order_id: str
    xid: str
    #: False when the pay order was already SUCCESS (a duplicate).
    processed: bool


class SuccessProcessor:
    def __init__(
        self,
        db: Database,
        order_address: str,
        collectible_address: str,
        chain_address: str,
        tx_timeout: float = 30.0,
    ) -> None:
        self.db = db
        self.orders = order_pb2_grpc.OrderServiceStub(client_channel(order_address))
        self.collectibles = col_grpc.CollectibleServiceStub(client_channel(collectible_address))
        self.chain = chain_pb2_grpc.ChainServiceStub(client_channel(chain_address))
        self.tx_timeout = tx_timeout
        self._committed: set[str] = set()

    def settle(
        self, pay_order_id: str, trade_no: str, paid_ms: int, notify_id: str = "", status: str = ""
    ) -> Settlement:
        """Run the success processing once; a duplicate returns ``processed=False``.

        Raises whatever made the global transaction roll back (the caller
        answers the channel "fail", so it retries).
        """
        with rm.global_transaction("pay_success", timeout=self.tx_timeout) as tx:
            xid = tx.xid or ""
            with self.db.transaction() as connection:
                cursor = execute(
                    connection,
                    self.db,
                    "UPDATE pay_orders SET state = ?, channel_trade_no = ?, paid_at = ?,"
                    " settled_xid = ?, updated_at = ? WHERE pay_order_id = ? AND state IN (?, ?)",
                    (
                        "SUCCESS",
                        trade_no,
                        paid_ms,
                        xid,
                        now_ms(),
                        pay_order_id,
                        "PENDING",
                        "ABANDONED",
                    ),
                )
                updated = cursor.rowcount
                cursor.close()
                row = self._pay_order(connection, pay_order_id)
                if updated != 1:
                    if row[1] == "SUCCESS" and self._settled(pay_order_id, row):
                        logger.info(
                            "pay order %s already SUCCESS: duplicate ignored (%s)",
                            pay_order_id,
                            xid,
                            extra={"xid": xid},
                        )
                        return Settlement(pay_order_id, xid, False)
                    # CLOSED / REFUNDED: paid after our close; the robustness jobs refund it.
                    raise InvalidStateError("pay order", pay_order_id, str(row[1]), "settle")
                if notify_id:
                    execute(
                        connection,
                        self.db,
                        "INSERT INTO pay_notifications VALUES (?, ?, ?, ?, ?)",
                        (notify_id, row[3], pay_order_id, status, now_ms()),
                    ).close()
                order = call(
                    self.orders.GetOrder, order_pb2.GetOrderRequest(order_id=str(row[0]))
                ).order
                for index in range(order.quantity):
                    hid = holding_id(order.order_id, index)
                    defer(
                        connection,
                        MINT_TARGET,
                        {
                            "holding_id": hid,
                            "order_id": order.order_id,
                            "user_id": order.user_id,
                            "collectible_id": order.collectible_id,
                        },
                        request_id=f"mint:{hid}",
                    )
            check_fault("pay_success")
            call(
                self.orders.MarkPaid,
                order_pb2.MarkPaidRequest(order_id=order.order_id, pay_order_id=pay_order_id),
            )
            call(
                self.collectibles.ConvertReservation,
                col_pb.ConvertReservationRequest(order_id=order.order_id),
            )
        logger.info("pay order %s settled in %s", pay_order_id, xid, extra={"xid": xid})
        return Settlement(pay_order_id, xid, True)

    def _settled(self, pay_order_id: str, row: tuple[Any, ...]) -> bool:
        """Whether the SUCCESS we read is committed, not another transaction's phase one.

        AT reads are uncommitted across branches: a settlement still in flight
        (or about to roll back) shows SUCCESS too. Raises SettlementInProgressError
        for one in flight, so the channel retries later.
        """
        settled_xid = str(row[4] or "")
        status = self.settlement_status(settled_xid)
        if status is None:
            return True
        raise SettlementInProgressError(pay_order_id, settled_xid, status.seata_name)

    def settlement_status(self, settled_xid: str) -> GlobalStatus | None:
        """None when the settlement by ``settled_xid`` committed, else its global status.

        A forgotten xid whose write is still there committed: a rollback
        restores the row before the TC forgets the transaction.
        """
        if not settled_xid or settled_xid in self._committed:
            return None
        try:
            status = rm.get_tc_client().get_status(settled_xid)
        except GlobalTransactionNotFoundError:
            status = GlobalStatus.FINISHED
        if status in _COMMITTED:
            if len(self._committed) > 10_000:
                self._committed.clear()
            self._committed.add(settled_xid)
            return None
        return status

    def _pay_order(self, connection: Any, pay_order_id: str) -> tuple[Any, ...]:
        cursor = execute(
            connection,
            self.db,
            "SELECT order_id, state, amount, channel, settled_xid FROM pay_orders"
            " WHERE pay_order_id = ?",
            (pay_order_id,),
        )
        row = cursor.fetchone()
        cursor.close()
        if row is None:
            raise NotFoundError(f"no pay order {pay_order_id!r}", pay_order_id=pay_order_id)
        return tuple(row)

    # --- the deferred mint (run by the dispatcher after the commit) -------------------

    def mint(self, payload: dict[str, Any], request_id: str) -> None:
        """Mint on chain (idempotent by request id), record it, complete the order."""
        answer = call(
            self.chain.Mint,
            chain_pb2.MintRequest(
                request_id=request_id,
                holding_id=str(payload["holding_id"]),
                user_id=str(payload.get("user_id", "")),
                collectible_id=str(payload.get("collectible_id", "")),
            ),
        )
        call(
            self.collectibles.MarkMinted,
            col_pb.MarkMintedRequest(
                holding_id=str(payload["holding_id"]),
                token_id=answer.token_id,
                chain_tx_hash=answer.tx_hash,
            ),
        )
        order_id = str(payload.get("order_id", ""))
        if order_id:
            holdings = call(
                self.collectibles.ListHoldings, col_pb.ListHoldingsRequest(order_id=order_id)
            ).holdings
            if holdings and all(h.state == col_pb.HOLDING_STATE_MINTED for h in holdings):
                call(self.orders.CompleteOrder, order_pb2.CompleteOrderRequest(order_id=order_id))
