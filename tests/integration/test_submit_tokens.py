"""Order submission tokens in Redis (PAYMENT-GUARDS' module wired into the
order service): replay, concurrent duplicates, other parameters."""

from __future__ import annotations

import threading

import pytest

import atx.shop.payment.channel.errors  # noqa: F401  (registers the token error codes)
from atx.errors import AtxError
from atx.shop.v1 import order_pb2
from tests.integration import harness as h
from tests.integration.conftest import ShopFactory

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["sqlite"])
def test_redis_submission_tokens(shop_factory: ShopFactory, redis_url: str) -> None:
    shop = shop_factory(redis_url=redis_url)
    cid = h.collectible(shop, total=10)

    def token() -> str:
        reply = h.rpc(
            shop.orders.IssueSubmitToken, order_pb2.IssueSubmitTokenRequest(user_id="kim")
        )
        return str(reply.submit_token)

    def submit(tok: str, quantity: int = 1) -> order_pb2.CreateOrderResponse:
        reply: order_pb2.CreateOrderResponse = h.rpc(
            shop.orders.CreateOrder,
            order_pb2.CreateOrderRequest(
                user_id="kim", collectible_id=cid, quantity=quantity, submit_token=tok
            ),
        )
        return reply

    first_token = token()
    first = submit(first_token)
    assert submit(first_token).order.order_id == first.order.order_id  # replayed
    with pytest.raises(AtxError) as mismatch:
        submit(first_token, quantity=2)
    assert mismatch.value.code == "IDEMPOTENCY_MISMATCH"

    # A concurrent double submit: one order; a duplicate is refused or replayed.
    second_token = token()
    outcomes: list[str] = []
    lock = threading.Lock()

    def race() -> None:
        try:
            outcome = submit(second_token).order.order_id
        except AtxError as error:
            outcome = error.code
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    orders = {o for o in outcomes if o.startswith("o-")}
    assert len(orders) == 1, outcomes
    refused = [o for o in outcomes if not o.startswith("o-")]
    assert set(refused) <= {"SUBMISSION_IN_PROGRESS"}, outcomes
    rows = h.db(shop, "order").query("SELECT COUNT(*) FROM orders WHERE user_id = 'kim'")
    assert rows == [(2,)]
    assert h.stock(shop, cid) == 8

    # Deterministic concurrent duplicate: a first submission still in flight
    # (begun, not finished) makes the duplicate be refused, and the refusal says so.
    from atx.shop.payment.channel.tokens import SubmissionTokens, fingerprint

    in_flight = token()
    tokens = SubmissionTokens(redis_url)
    try:
        params = {"collectible_id": cid, "quantity": 1}
        assert tokens.begin(in_flight, fingerprint(params), "kim") is None
        with pytest.raises(AtxError) as duplicate:
            submit(in_flight)
        assert duplicate.value.code == "SUBMISSION_IN_PROGRESS"
        assert "already in progress" in duplicate.value.message
        assert h.stock(shop, cid) == 8  # nothing created for the duplicate
    finally:
        tokens.close()
