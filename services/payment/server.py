"""Run the payment service: servicer, outbox dispatcher, DeferredCallService."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from atx.shop.v1 import payment_pb2 as pb
from atx.shop.v1 import payment_pb2_grpc as pb_grpc
from atx.v1 import deferred_call_pb2 as dc_pb2
from hooks.dispatcher import Dispatcher, DispatcherConfig
from hooks.service import add_deferred_call_service
from hooks.store import OutboxStore
from hooks.targets import TargetRegistry
from services.common.db import Database
from services.common.server import ServiceRuntime, start_server
from services.payment.channels import ChannelRegistry
from services.payment.processing import MINT_TARGET, SuccessProcessor
from services.payment.schema import SCHEMA
from services.payment.service import PaymentServicer

__all__ = ["serve"]


def serve(
    port: int,
    db_url: str,
    *,
    order_address: str,
    collectible_address: str,
    chain_address: str,
    channels: Sequence[str],
    keys_dir: str | Path,
    dispatcher_config: DispatcherConfig | None = None,
    host: str = "127.0.0.1",
    notify_address: str = "",
) -> ServiceRuntime:
    db = Database(db_url, "payment")
    db.execute_script(SCHEMA)
    store = OutboxStore(db.raw)
    store.ensure_table()
    processor = SuccessProcessor(db, order_address, collectible_address, chain_address)
    registry = TargetRegistry()
    registry.register(MINT_TARGET, processor.mint)
    dispatcher = Dispatcher(store, registry=registry, config=dispatcher_config, name="payment")
    channel_registry = ChannelRegistry(channels, keys_dir)
    holder: dict[str, PaymentServicer] = {}

    def register(server: object) -> None:
        servicer = PaymentServicer(
            db,
            channel_registry,
            processor,
            order_address,
            notify_address or f"127.0.0.1:{port}",
        )
        holder["servicer"] = servicer
        pb_grpc.add_PaymentServiceServicer_to_server(servicer, server)
        add_deferred_call_service(server, store, dispatcher)

    runtime = start_server(
        port,
        register,
        [
            pb.DESCRIPTOR.services_by_name["PaymentService"].full_name,
            dc_pb2.DESCRIPTOR.services_by_name["DeferredCallService"].full_name,
        ],
        host=host,
    )
    dispatcher.start()
    runtime.on_stop.append(dispatcher.stop)
    runtime.on_stop.append(channel_registry.close)
    return runtime
