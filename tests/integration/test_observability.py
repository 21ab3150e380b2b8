"""Issue 16's acceptance on the shop as processes (TC and services, real gRPC hops):
one purchase is one trace, and every log record of its transaction carries the XID.

Each process exports its finished spans with the SDK's own exporter into a file
(``ATX_TRACE_FILE``, no collector); the services log as JSON or text
(``ATX_LOG_FORMAT``) at DEBUG into the files the harness keeps.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from atx.shop.topology import Shop
from tests.integration import harness as h
from tests.integration.conftest import ShopFactory

pytestmark = pytest.mark.slow

RMS = ("payment", "order", "collectible")
JSON_LOGS = ("payment", "collectible")
TEXT_LOGS = ("order", "tc")


def _spans(directory: Path) -> list[dict[str, Any]]:
    spans = []
    for path in directory.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            if line.strip():
                span = json.loads(line)
                span["process"] = path.stem
                spans.append(span)
    return spans


def _purchase(shop: Shop) -> str:
    cid = h.collectible(shop, total=3, price=500)
    order = h.order(shop, "olga", cid)
    pay = h.pay_order(shop, order.order_id)
    h.simulate_pay(shop, pay.pay_order_id)
    h.wait_for(lambda: h.minted(shop, order.order_id), "the holding MINTED")
    return str(order.order_id)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_one_purchase_is_one_trace_and_its_logs_carry_the_xid(
    shop_factory: ShopFactory, tmp_path: Path
) -> None:
    traces = tmp_path / "traces"
    traces.mkdir()
    env = {
        name: {
            "ATX_TRACE_FILE": str(traces / f"{name}.jsonl"),
            "ATX_LOG_LEVEL": "DEBUG",
            "ATX_LOG_FORMAT": "json" if name in JSON_LOGS else "text",
        }
        for name in ("tc", "collectible", "order", "chain", "channel", "payment")
    }
    shop = shop_factory(env=env)
    _purchase(shop)

    def settled() -> dict[str, Any] | None:
        # The payment's success processing: TM in payment, branches in every RM.
        roots = [
            s for s in _spans(traces)
            if s["name"] == "atx.global_transaction"
            and s["attributes"].get("atx.transaction") == "pay_success"
        ]  # fmt: skip
        return roots[0] if roots else None

    root = h.wait_for(settled, "the pay_success transaction's span")
    xid = root["attributes"]["atx.xid"]
    trace_id = root["context"]["trace_id"]
    wanted = {
        ("payment", "atx.global_transaction"),
        *((rm, "atx.branch") for rm in RMS),
        *((rm, "atx.rm.branch_commit") for rm in RMS),
        ("tc", "atx.tc.branch_commit"),
        ("tc", "/atx.v1.TransactionManagerService/Begin"),
        ("tc", "/atx.v1.TransactionManagerService/Commit"),
        ("tc", "/atx.v1.ResourceManagerService/BranchRegister"),
        ("payment", "/atx.v1.TransactionManagerService/Commit"),
        ("payment", "/atx.shop.v1.OrderService/MarkPaid"),
        ("order", "/atx.shop.v1.OrderService/MarkPaid"),
        ("collectible", "/atx.shop.v1.CollectibleService/ConvertReservation"),
        ("payment", "atx.deferred_call"),
    }

    def covered() -> list[dict[str, Any]] | None:
        mine = [s for s in _spans(traces) if s["attributes"].get("atx.xid") == xid]
        found = {(s["process"], s["name"]) for s in mine}
        return mine if wanted <= found else None

    try:
        mine = h.wait_for(covered, "every span of the purchase", timeout=60)
    except AssertionError:
        found = {
            (s["process"], s["name"])
            for s in _spans(traces)
            if s["attributes"].get("atx.xid") == xid
        }
        raise AssertionError(f"missing {sorted(wanted - found)}") from None
    assert {s["context"]["trace_id"] for s in mine} == {trace_id}
    deferred = [s for s in mine if s["name"] == "atx.deferred_call"]
    assert {s["attributes"]["atx.target"] for s in deferred} == {"chain.mint"}
    branch_spans = [s for s in mine if s["name"] in ("atx.branch", "atx.rm.branch_commit")]
    assert all(s["attributes"].get("atx.branch_id") for s in branch_spans)

    # Logs: every record that names the transaction carries its XID, in both formats.
    shop.stop()
    for name in JSON_LOGS:
        records = [
            json.loads(line)
            for line in shop.processes[name].log_path.read_text().splitlines()
            if line.startswith("{")
        ]
        inside = [r for r in records if xid in r["message"] or r["xid"] == xid]
        assert all(r["xid"] == xid for r in inside), [r for r in inside if r["xid"] != xid]
        phase_two = [r for r in inside if r["logger"] == "atx.rm.phase_two.handler"]
        assert phase_two and all(r.get("branch_id") for r in phase_two), name
    tag = re.compile(r"^\S+ \S+ \S+ \S+ \[" + re.escape(xid) + r"\]")
    for name in TEXT_LOGS:
        lines = shop.processes[name].log_path.read_text().splitlines()
        inside = [line for line in lines if xid in line]
        assert inside, name
        assert all(tag.match(line) for line in inside), [x for x in inside if not tag.match(x)]
