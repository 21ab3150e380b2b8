"""``atx demo``: the shop end to end on embedded defaults.

Starts a TC and the services as separate processes (SQLite files in a
temporary or given directory, free ports) and runs three scripted purchases:

1. a normal purchase: order, pay, channel notification, success processing,
   then the mint after the commit;
2. a sold-out collectible: order creation rolls back and nothing changes;
3. a purchase while the chain is down: it commits with the mint pending; the
   chain comes back and the holding becomes MINTED.

Each step is printed with its XIDs and branch tables; exits 0 when every
scenario ended as expected.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["add_arguments", "run"]

T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", default=None, help="directory for databases and logs (default: a temp dir)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait per step")


class DemoFailed(Exception):
    """A scenario did not end as expected."""


def wait_for(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out waiting for {what}")
        time.sleep(0.1)


class Demo:
    def __init__(self, shop: Any, console: Any, timeout: float) -> None:
        from atx.shop.v1 import (
            chain_pb2,
            collectible_pb2,
            order_pb2,
            payment_channel_pb2,
            payment_pb2,
        )
        from atx.v1 import admin_pb2, deferred_call_pb2

        self.shop = shop
        self.console = console
        self.timeout = timeout
        self.order_pb2 = order_pb2
        self.col_pb2 = collectible_pb2
        self.pay_pb2 = payment_pb2
        self.ch_pb2 = payment_channel_pb2
        self.chain_pb2 = chain_pb2
        self.admin_pb2 = admin_pb2
        self.dc_pb2 = deferred_call_pb2

    # --- printing ----------------------------------------------------------------

    def tc_metrics(self, url: str) -> None:
        """A few of the TC's counters, read from its Prometheus endpoint."""
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        wanted = ("begun", "committed", "rolled_back")
        values = {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        shown = ", ".join(
            f"{name} {values.get(f'atx_tc_transactions_{name}_total', 0):g}" for name in wanted
        )
        self.ok(f"TC metrics ({url}): transactions {shown}")

    def step(self, text: str) -> None:
        self.console.print(f"[bold cyan]•[/] {text}")

    def ok(self, text: str) -> None:
        self.console.print(f"  [green]✔[/] {text}")

    def check(self, condition: bool, text: str) -> None:
        if not condition:
            self.console.print(f"  [red]✘ {text}[/]")
            raise DemoFailed(text)
        self.ok(text)

    def branches(self, xid: str) -> None:
        from rich.table import Table

        from atx.status import BranchStatus, GlobalStatus

        try:
            reply = self.shop.admin.GetGlobalSession(
                self.admin_pb2.GetGlobalSessionRequest(xid=xid), timeout=5
            )
        except Exception as error:
            self.console.print(f"  [dim](TC has no session {xid}: {error.__class__.__name__})[/]")
            return
        session = reply.session
        table = Table(
            title=f"global transaction {xid} · {session.transaction_name} · "
            f"{GlobalStatus(session.status).seata_name}",
            title_justify="left",
        )
        for column in ("branch id", "resource", "status", "lock keys"):
            table.add_column(column)
        for branch in session.branches:
            table.add_row(
                str(branch.branch_id),
                branch.resource_id,
                BranchStatus(branch.status).name,
                branch.lock_keys or "-",
            )
        if not session.branches:
            table.add_row("-", "-", "-", "(no branches left)")
        self.console.print(table)

    def counts(self) -> dict[str, int]:
        from atx.shop.common.db import Database

        tables = {
            "order": ["orders"],
            "collectible": ["collectibles", "reservations", "holdings"],
            "payment": ["pay_orders", "atx_outbox"],
            "chain": ["chain_mints"],
        }
        result: dict[str, int] = {}
        for service, names in tables.items():
            db = Database(self.shop.config.db(service), service)
            for name in names:
                result[f"{service}.{name}"] = int(db.query(f"SELECT COUNT(*) FROM {name}")[0][0])
        return result

    def stock(self, collectible_id: str) -> int:
        reply = self.shop.collectibles.GetCollectible(
            self.col_pb2.GetCollectibleRequest(collectible_id=collectible_id), timeout=5
        )
        return int(reply.collectible.stock)

    def holdings(self, order_id: str) -> list[Any]:
        return list(
            self.shop.collectibles.ListHoldings(
                self.col_pb2.ListHoldingsRequest(order_id=order_id), timeout=5
            ).holdings
        )

    def deferred_for(self, order_id: str) -> list[Any]:
        calls = self.shop.deferred_calls.ListDeferredCalls(
            self.dc_pb2.ListDeferredCallsRequest(page_size=500), timeout=5
        ).calls
        return [c for c in calls if f'"{order_id}"' in c.payload]

    def deferred_table(self, calls: list[Any]) -> None:
        from rich.table import Table

        table = Table(title="deferred calls (payment outbox)", title_justify="left")
        for column in ("target", "xid", "state", "attempts", "last error"):
            table.add_column(column)
        for call in calls:
            table.add_row(
                call.target,
                call.xid,
                self.dc_pb2.DeferredCallState.Name(call.state).removeprefix("DEFERRED_CALL_STATE_"),
                str(call.attempts),
                (call.last_error or "-")[:60],
            )
        self.console.print(table)

    # --- the purchase flow ------------------------------------------------------------

    def order(self, user: str, collectible_id: str) -> Any:
        reply = self.shop.orders.CreateOrder(
            self.order_pb2.CreateOrderRequest(
                user_id=user, collectible_id=collectible_id, quantity=1
            ),
            timeout=30,
        )
        self.ok(f"order {reply.order.order_id} CREATED, amount {reply.order.amount}")
        self.branches(reply.xid)
        return reply.order

    def pay(self, order: Any) -> Any:
        pay_order = self.shop.payments.CreatePayOrder(
            self.pay_pb2.CreatePayOrderRequest(order_id=order.order_id, channel="alipay_sim"),
            timeout=30,
        ).pay_order
        self.ok(f"pay order {pay_order.pay_order_id} PENDING at {pay_order.channel}")
        self.step("the buyer pays at the channel; the channel sends a signed notification")
        self.shop.pay_channel.SimulatePay(
            self.ch_pb2.SimulatePayRequest(out_trade_no=pay_order.pay_order_id), timeout=10
        )

        def settled() -> Any:
            reply = self.shop.payments.GetPayOrder(
                self.pay_pb2.GetPayOrderRequest(pay_order_id=pay_order.pay_order_id), timeout=5
            )
            success = reply.pay_order.state == self.pay_pb2.PAY_ORDER_STATE_SUCCESS
            return reply.pay_order if success else None

        paid = wait_for("the pay order to be SUCCESS", settled, self.timeout)
        self.ok(f"notification verified; pay order {paid.pay_order_id} SUCCESS")
        calls = self.deferred_for(order.order_id)
        if calls:
            self.step("success processing: one global transaction over three databases")
            self.branches(calls[0].xid)
        return paid

    def order_state(self, order_id: str) -> str:
        reply = self.shop.orders.GetOrder(
            self.order_pb2.GetOrderRequest(order_id=order_id), timeout=5
        )
        return str(self.order_pb2.OrderState.Name(reply.order.state).removeprefix("ORDER_STATE_"))

    def wait_minted(self, order_id: str) -> list[Any]:
        def minted() -> list[Any] | None:
            found = self.holdings(order_id)
            done = found and all(h.state == self.col_pb2.HOLDING_STATE_MINTED for h in found)
            return found if done else None

        return wait_for("the holding to be MINTED", minted, self.timeout)

    # --- scenarios --------------------------------------------------------------------------

    def setup(self) -> None:
        self.console.rule("[bold]setup")
        for cid, name, price, total in (
            ("moonrise", "Moonrise #1", 8800, 10),
            ("last-light", "Last Light", 12000, 1),
        ):
            self.shop.collectibles.CreateCollectible(
                self.col_pb2.CreateCollectibleRequest(
                    collectible_id=cid, name=name, price=price, total=total
                ),
                timeout=10,
            )
            self.ok(f"collectible {cid} ({name}), price {price}, stock {total}")

    def normal(self) -> None:
        self.console.rule("[bold]1. a normal purchase")
        self.step("alice orders Moonrise #1: order row + stock reservation, one global transaction")
        order = self.order("alice", "moonrise")
        self.pay(order)
        self.step("after the commit the dispatcher mints on chain (deferred call)")
        holdings = self.wait_minted(order.order_id)
        for h in holdings:
            self.ok(f"holding {h.holding_id} MINTED: {h.token_id}, tx {h.chain_tx_hash[:18]}…")
        wait_for(
            "the order to be COMPLETED",
            lambda: self.order_state(order.order_id) == "COMPLETED",
            self.timeout,
        )
        self.ok("order COMPLETED")
        self.deferred_table(self.deferred_for(order.order_id))

    def sold_out(self) -> None:
        import atx.shop.common.errors  # noqa: F401  (registers the shop's error codes)
        from atx.errors import from_rpc_error

        self.console.rule("[bold]2. a sold-out collectible")
        self.step("carol reserves the last unit of Last Light")
        self.order("carol", "last-light")
        before, stock_before = self.counts(), self.stock("last-light")
        self.step("dave orders Last Light too: the reservation fails, the order rolls back")
        try:
            self.shop.orders.CreateOrder(
                self.order_pb2.CreateOrderRequest(
                    user_id="dave", collectible_id="last-light", quantity=1
                ),
                timeout=30,
            )
        except Exception as error:
            converted = from_rpc_error(error)  # type: ignore[arg-type]
            self.ok(f"refused: {converted.code}: {converted.message}")
            xid = converted.details.get("rolled_back_xid", "")
            if xid:
                self.branches(xid)
        else:
            raise DemoFailed("a sold-out order was created")
        after = self.counts()
        self.check(after == before, f"no row changed in any database ({sum(after.values())} rows)")
        self.check(self.stock("last-light") == stock_before == 0, "stock unchanged (0)")

    def chain_down(self) -> None:
        self.console.rule("[bold]3. a purchase while the chain is down")
        self.shop.chain.SetAvailability(
            self.chain_pb2.SetAvailabilityRequest(available=False), timeout=5
        )
        self.step("the chain platform is DOWN")
        order = self.order("erin", "moonrise")
        self.pay(order)
        self.check(self.order_state(order.order_id) == "PAID", "the purchase committed: order PAID")
        holdings = self.holdings(order.order_id)
        self.check(
            bool(holdings) and holdings[0].state == self.col_pb2.HOLDING_STATE_MINTING,
            "holding MINTING: the mint is pending, nothing rolled back",
        )
        wait_for(
            "a failed mint attempt",
            lambda: any(c.attempts > 0 for c in self.deferred_for(order.order_id)),
            self.timeout,
        )
        self.deferred_table(self.deferred_for(order.order_id))
        self.step("the chain platform comes back")
        self.shop.chain.SetAvailability(
            self.chain_pb2.SetAvailabilityRequest(available=True), timeout=5
        )
        for h in self.wait_minted(order.order_id):
            self.ok(f"holding {h.holding_id} MINTED: {h.token_id}")
        self.deferred_table(self.deferred_for(order.order_id))
        mints = self.shop.chain.ListMints(self.chain_pb2.ListMintsRequest(), timeout=5).mints
        self.check(len(mints) == 2, f"the chain recorded {len(mints)} mints, one per purchase")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from atx.shop.topology import ShopConfig, start_shop
    from atx.testing import free_port

    console = Console()
    temp = None
    if args.dir:
        directory = Path(args.dir)
    else:
        temp = tempfile.TemporaryDirectory(prefix="atx-demo-")
        directory = Path(temp.name)
    console.rule("[bold]atx demo: the collectible shop")
    console.print(f"state in {directory}; starting a TC and five services…")
    metrics_port = free_port()
    metrics = ["--metrics-port", str(metrics_port)]
    shop = start_shop(ShopConfig(directory, chain_latency_ms=100, tc_extra=metrics))
    table = Table(title="processes", title_justify="left")
    table.add_column("process")
    table.add_column("address")
    table.add_column("pid")
    for name, process in shop.processes.items():
        pid = process.process.pid if process.process else 0
        table.add_row(name, process.address, str(pid))
    console.print(table)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    console.print(f"TC metrics: {metrics_url}")
    demo = Demo(shop, console, args.timeout)
    code = 0
    try:
        demo.setup()
        demo.normal()
        demo.sold_out()
        demo.chain_down()
        console.rule("[bold green]all three purchases ended as expected")
        demo.tc_metrics(metrics_url)
    except Exception as error:
        console.print(f"[bold red]demo failed:[/] {error}")
        for name, process in shop.processes.items():
            console.print(f"[dim]--- {name} log ({process.log_path})[/]")
            console.print(process.output()[-2000:], markup=False, highlight=False)
        code = 1
    finally:
        shop.stop()
        if temp is not None:
            temp.cleanup()
    return code
