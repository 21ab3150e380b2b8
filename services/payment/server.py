"""Run the payment service: servicer, outbox dispatcher, DeferredCallService,
guards (breaker, replay guard, job lock) and the scheduled recovery jobs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from atx.hooks.dispatcher import Dispatcher, DispatcherConfig
from atx.hooks.service import add_deferred_call_service
from atx.hooks.store import OutboxStore
from atx.hooks.targets import TargetRegistry
from atx.shop.common.db import Database
from atx.shop.common.server import ServiceRuntime, start_server
from atx.shop.payment.channel.recovery import close_expired, compensate
from atx.shop.payment.channels import StreamRegistry
from atx.shop.payment.guards import build_guards
from atx.shop.payment.processing import MINT_TARGET, SuccessProcessor
from atx.shop.payment.recovery import Fulfilment, PayOrderStore
from atx.shop.payment.schema import SCHEMA
from atx.shop.payment.service import PaymentServicer
from atx.shop.payment.settings import PaymentSettings
from atx.shop.v1 import payment_pb2 as pb
from atx.shop.v1 import payment_pb2_grpc as pb_grpc
from atx.v1 import deferred_call_pb2 as dc_pb2

__all__ = ["COMPENSATION_JOB", "TIMEOUT_CLOSE_JOB", "serve"]

COMPENSATION_JOB = "compensation"
TIMEOUT_CLOSE_JOB = "timeout_close"
#: A job with interval 0 is only run on demand (RunJob).
_NEVER_S = 10.0**9


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
    settings: PaymentSettings | None = None,
) -> ServiceRuntime:
    settings = settings or PaymentSettings()
    db = Database(db_url, "payment")
    db.execute_script(SCHEMA)
    store = OutboxStore(db.raw)
    store.ensure_table()
    processor = SuccessProcessor(db, order_address, collectible_address, chain_address)
    registry = TargetRegistry()
    registry.register(MINT_TARGET, processor.mint)
    dispatcher = Dispatcher(store, registry=registry, config=dispatcher_config, name="payment")
    guards = build_guards(settings, db)
    channel_registry = StreamRegistry(
        channels, keys_dir, breaker=guards.breaker, timeout_s=settings.channel_timeout_s
    )
    fulfilment = Fulfilment(db, processor, channel_registry, order_address)
    repo = PayOrderStore(db)

    def compensation() -> int:
        older = int(settings.compensate_after_s * 1000)
        return compensate(repo, fulfilment, channel_registry.clients(), older_than_ms=older)

    def timeout_close() -> int:
        return close_expired(repo, fulfilment, channel_registry.clients())

    for name, body, interval in (
        (COMPENSATION_JOB, compensation, settings.compensation_interval_s),
        (TIMEOUT_CLOSE_JOB, timeout_close, settings.timeout_close_interval_s),
    ):
        guards.runner.register(
            name, guards.recorded(db, name, body, settings.job_hold_s), interval or _NEVER_S
        )
    holder: dict[str, PaymentServicer] = {}

    def register(server: object) -> None:
        servicer = PaymentServicer(
            db,
            channel_registry,
            processor,
            order_address,
            notify_address or f"127.0.0.1:{port}",
            pay_ttl=settings.pay_ttl_s,
            channel_margin=settings.channel_margin_s,
            guards=guards,
            fulfilment=fulfilment,
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
    runtime.on_stop.insert(0, db.close)  # the pooled connections, after everything else
    dispatcher.start()
    guards.runner.start()
    runtime.on_stop.append(dispatcher.stop)
    runtime.on_stop.append(channel_registry.close)
    runtime.on_stop.append(guards.close)
    return runtime
