"""Submission tokens in real Redis (Stripe Idempotency-Key semantics)."""

from __future__ import annotations

import threading
import time

import pytest

from atx.errors import NotFoundError
from atx.shop.payment.channel import (
    DuplicateSubmissionInProgressError,
    IdempotencyMismatchError,
    SubmissionTokenNotFoundError,
    SubmissionTokens,
    fingerprint,
)

PARAMS = fingerprint({"collectible_id": "c-1", "quantity": 1})
OTHER = fingerprint({"collectible_id": "c-2", "quantity": 1})


@pytest.fixture
def tokens(redis_url: str) -> SubmissionTokens:
    return SubmissionTokens(redis_url)


def test_reuse_returns_the_first_result(tokens: SubmissionTokens) -> None:
    token = tokens.issue("u1")
    assert tokens.begin(token, PARAMS, "u1") is None
    assert tokens.complete(token, b"order-1")
    for _ in range(3):
        replay = tokens.begin(token, PARAMS, "u1")
        assert replay is not None and replay.unwrap() == b"order-1"


def test_errors_are_replayed_too(tokens: SubmissionTokens) -> None:
    token = tokens.issue("u1")
    assert tokens.begin(token, PARAMS) is None
    assert tokens.fail(token, NotFoundError("collectible 'c-1' not found", id="c-1"))
    replay = tokens.begin(token, PARAMS)
    assert replay is not None and isinstance(replay.error, NotFoundError)
    with pytest.raises(NotFoundError, match="c-1"):
        replay.unwrap()


def test_same_token_with_different_params_is_an_error(tokens: SubmissionTokens) -> None:
    token = tokens.issue("u1")
    assert tokens.begin(token, PARAMS) is None
    with pytest.raises(IdempotencyMismatchError):
        tokens.begin(token, OTHER)
    tokens.complete(token, b"order-1")
    with pytest.raises(IdempotencyMismatchError):
        tokens.begin(token, OTHER)


def test_a_concurrent_double_submit_is_refused_and_says_so(
    tokens: SubmissionTokens, redis_url: str
) -> None:
    token = tokens.issue("u1")
    other_process = SubmissionTokens(redis_url)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def submit(store: SubmissionTokens) -> None:
        barrier.wait()
        try:
            outcomes.append("proceed" if store.begin(token, PARAMS) is None else "replay")
        except DuplicateSubmissionInProgressError as error:
            assert "already in progress" in error.message
            assert error.grpc_code.name == "ABORTED"
            outcomes.append("refused")

    threads = [threading.Thread(target=submit, args=(s,)) for s in [tokens, other_process] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["proceed"] + ["refused"] * 7


def test_unknown_expired_and_foreign_tokens(redis_url: str) -> None:
    tokens = SubmissionTokens(redis_url, ttl_s=1)
    with pytest.raises(SubmissionTokenNotFoundError):
        tokens.begin("never-issued", PARAMS)
    token = tokens.issue("u1")
    with pytest.raises(SubmissionTokenNotFoundError):
        tokens.begin(token, PARAMS, "u2")
    time.sleep(1.2)
    with pytest.raises(SubmissionTokenNotFoundError):
        tokens.begin(token, PARAMS, "u1")


def test_release_and_lease_takeover(redis_url: str) -> None:
    tokens = SubmissionTokens(redis_url, lease_ms=1_000)
    token = tokens.issue("u1")
    assert tokens.begin(token, PARAMS) is None
    assert tokens.release(token)  # a retryable failure: try again
    assert tokens.begin(token, OTHER) is None  # released tokens start afresh
    with pytest.raises(DuplicateSubmissionInProgressError):
        tokens.begin(token, OTHER)
    time.sleep(1.1)  # the holder crashed: its lease ran out
    assert tokens.begin(token, OTHER) is None
    assert tokens.complete(token, b"done")
    assert not tokens.complete(token, b"again")
