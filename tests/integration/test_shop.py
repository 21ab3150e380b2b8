"""The shop end to end: TC and services as separate processes talking gRPC,
on SQLite and on MariaDB (issue 5's acceptance list)."""

from __future__ import annotations

import threading

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from atx.errors import AtxError
from atx.shop.v1 import order_pb2
from tests.integration import harness as h
from tests.integration.conftest import ShopFactory

pytestmark = pytest.mark.slow


def test_purchases_sold_out_chain_down_and_bad_notifications(shop_factory: ShopFactory) -> None:
    shop = shop_factory()
    cid = h.collectible(shop, total=5, price=8800)

    # 1. A normal purchase: order, pay, notification, success processing, mint.
    order = h.order(shop, "alice", cid)
    assert order.state == 1 and order.amount == 8800
    pay = h.pay_order(shop, order.order_id)
    h.simulate_pay(shop, pay.pay_order_id)
    h.wait_for(lambda: h.minted(shop, order.order_id), "alice's holding MINTED")
    h.wait_for(lambda: h.order_state(shop, order.order_id) == "COMPLETED", "order COMPLETED")
    assert h.pay_state(shop, pay.pay_order_id) == "SUCCESS"
    holding = h.holdings(shop, order.order_id)[0]
    assert holding.token_id and holding.chain_tx_hash
    assert len(h.mints(shop, f"mint:{holding.holding_id}")) == 1
    assert h.notify_answers(shop, pay.pay_order_id)[-1] == "success"

    # 2. Sold out: the order rolls back; nothing changes anywhere.
    last = h.collectible(shop, total=1)
    assert h.try_order(shop, "carol", last).startswith("o-")
    before = h.snapshot(shop)
    assert h.try_order(shop, "dave", last) == "SHOP_SOLD_OUT"
    h.wait_for(lambda: h.snapshot(shop) == before, "every database unchanged")
    assert h.stock(shop, last) == 0

    # Closing an unpaid order releases its reservation in the same transaction.
    closing = h.order(shop, "ivy", cid)
    stock_before = h.stock(shop, cid)
    h.rpc(shop.orders.CloseOrder, order_pb2.CloseOrderRequest(order_id=closing.order_id))
    assert h.order_state(shop, closing.order_id) == "CLOSED"
    assert h.stock(shop, cid) == stock_before + 1

    # Submission tokens: a replay returns the first order; other parameters fail.
    token = h.rpc(
        shop.orders.IssueSubmitToken, order_pb2.IssueSubmitTokenRequest(user_id="jo")
    ).submit_token
    request = order_pb2.CreateOrderRequest(
        user_id="jo", collectible_id=cid, quantity=1, submit_token=token
    )
    first = h.rpc(shop.orders.CreateOrder, request).order
    assert h.rpc(shop.orders.CreateOrder, request).order.order_id == first.order_id
    with pytest.raises(AtxError) as reused:
        h.rpc(
            shop.orders.CreateOrder,
            order_pb2.CreateOrderRequest(
                user_id="jo", collectible_id=cid, quantity=2, submit_token=token
            ),
        )
    assert reused.value.code == "SHOP_SUBMIT_TOKEN"
    h.rpc(shop.orders.CloseOrder, order_pb2.CloseOrderRequest(order_id=first.order_id))

    # 3. Chain down during the success processing: commits, mint retried, one mint.
    h.set_chain(shop, False)
    order = h.order(shop, "erin", cid)
    pay = h.pay_order(shop, order.order_id)
    h.simulate_pay(shop, pay.pay_order_id)
    h.wait_for(lambda: h.pay_state(shop, pay.pay_order_id) == "SUCCESS", "pay order SUCCESS")
    # GetPayOrder shows SUCCESS only once committed, so the rest is visible too.
    assert h.order_state(shop, order.order_id) == "PAID"
    assert [x.state for x in h.holdings(shop, order.order_id)] == [1]  # MINTING
    h.wait_for(lambda: any(r[2] >= 2 for r in h.outbox_rows(shop)), "the mint to be retried twice")
    assert not h.minted(shop, order.order_id)
    h.set_chain(shop, True)
    h.wait_for(lambda: h.minted(shop, order.order_id), "erin's holding MINTED")
    holding = h.holdings(shop, order.order_id)[0]
    assert len(h.mints(shop, f"mint:{holding.holding_id}")) == 1
    assert h.notify_answers(shop, pay.pay_order_id) == ["success"]

    # Bad notifications: forged, tampered, amount mismatch are refused; a
    # duplicate is processed once.
    order = h.order(shop, "frank", cid)
    pay = h.pay_order(shop, order.order_id)
    before = h.snapshot(shop)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert h.notify(shop, h.notification(shop, pay, key=stranger)) == "fail"
    tampered = h.notification(shop, pay)
    tampered["total_amount"] = "0.01"
    assert h.notify(shop, tampered) == "fail"
    assert h.notify(shop, h.notification(shop, pay, amount=pay.amount + 1)) == "fail"
    assert h.snapshot(shop) == before
    assert h.pay_state(shop, pay.pay_order_id) == "PENDING"

    genuine = h.notification(shop, pay)
    answers: list[str] = []
    threads = [
        threading.Thread(target=lambda: answers.append(h.notify(shop, genuine))) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Concurrent duplicates may be told to retry, never processed twice.
    assert "success" in answers
    assert h.notify(shop, genuine) == "success"  # a later duplicate: acknowledged, no-op
    h.wait_for(lambda: h.minted(shop, order.order_id), "frank's holding MINTED")
    holding = h.holdings(shop, order.order_id)[0]
    assert len(h.mints(shop, f"mint:{holding.holding_id}")) == 1
    requests = [r[0] for r in h.outbox_rows(shop)]
    assert requests.count(f"mint:{holding.holding_id}") == 1
    assert h.db(shop, "payment").query(
        "SELECT COUNT(*) FROM pay_notifications WHERE pay_order_id = ?", (pay.pay_order_id,)
    ) == [(1,)]


def test_failing_branch_crash_before_mint_and_concurrent_buyers(
    shop_factory: ShopFactory, tmp_path: object
) -> None:
    from pathlib import Path

    fault = Path(str(tmp_path)) / "convert-fault"
    # The channel's first retry comes 3 s later: time to look at the databases
    # between two deliveries (a delivery in flight has uncommitted phase-one rows).
    shop = shop_factory(
        env={"collectible": {"ATX_FAULT_CONVERT_RESERVATION_AFTER": f"file:{fault}"}},
        notify_schedule_ms="3000,300,500,1000,2000,4000",
    )
    cid = h.collectible(shop, total=20)

    # A failing branch: the collectible branch fails after its local commit.
    order = h.order(shop, "gina", cid)
    pay = h.pay_order(shop, order.order_id)
    before = h.snapshot(shop)
    fault.touch()
    h.simulate_pay(shop, pay.pay_order_id)
    h.wait_for(lambda: "fail" in h.notify_answers(shop, pay.pay_order_id), "a refused delivery")
    # One read of everything at once: the channel keeps retrying while the fault is on,
    # and each delivery's phase one commits its branches locally (visible until undone).
    h.wait_for(
        lambda: (
            h.snapshot(shop) == before  # the outbox and the chain's mints included
            and "success" not in h.notify_answers(shop, pay.pay_order_id)
        ),
        "all three databases as before",
    )
    fault.unlink()
    # The channel's retry settles the purchase.
    h.wait_for(lambda: h.minted(shop, order.order_id), "gina's holding MINTED", timeout=60)
    assert h.notify_answers(shop, pay.pay_order_id)[-1] == "success"
    assert len(h.mints(shop)) == 1

    # Crash before the mint: kill -9 right after the global commit, restart.
    h.set_chain(shop, False)
    order = h.order(shop, "hank", cid)
    pay = h.pay_order(shop, order.order_id)
    h.simulate_pay(shop, pay.pay_order_id)
    # The acknowledgement is sent only after the global commit.
    h.wait_for(lambda: "success" in h.notify_answers(shop, pay.pay_order_id), "the commit")
    shop.processes["payment"].kill()
    assert not h.minted(shop, order.order_id)
    h.set_chain(shop, True)
    shop.processes["payment"].start(timeout=60)
    h.wait_for(lambda: h.minted(shop, order.order_id), "the pending mint after restart")
    holding = h.holdings(shop, order.order_id)[0]
    assert len(h.mints(shop, f"mint:{holding.holding_id}")) == 1

    # Sold out under concurrency: reservations never exceed stock.
    scarce = h.collectible(shop, total=3)
    results: list[str] = []
    lock = threading.Lock()

    def buy(user: str) -> None:
        outcome = h.try_order(shop, user, scarce)
        with lock:
            results.append(outcome)

    buyers = [threading.Thread(target=buy, args=(f"u{i}",)) for i in range(8)]
    for thread in buyers:
        thread.start()
    for thread in buyers:
        thread.join(90)
    created = [r for r in results if r.startswith("o-")]
    assert len(results) == 8
    assert 1 <= len(created) <= 3
    assert set(results) - set(created) <= {"SHOP_SOLD_OUT"}, results
    reserved = h.db(shop, "collectible").query(
        "SELECT COALESCE(SUM(quantity), 0) FROM reservations WHERE collectible_id = ?"
        " AND state = 'RESERVED'",
        (scarce,),
    )[0][0]
    assert h.stock(shop, scarce) == 3 - len(created) >= 0
    assert int(reserved) == len(created)
