"""The one retry-delay rule: exponential, capped, jittered downwards."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atx.backoff import Backoff


def test_exponential_then_capped() -> None:
    backoff = Backoff(0.1, 1.0, jitter=0)
    assert [backoff.delay(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert Backoff(0.01, 0.01, factor=1, jitter=0).delay(30) == 0.01


@given(st.integers(min_value=1, max_value=10_000), st.floats(0, 1))
def test_jitter_stays_within_its_share(attempt: int, jitter: float) -> None:
    backoff = Backoff(0.05, 5.0, jitter=jitter)
    delay = backoff.delay(attempt)
    assert (1 - jitter) * backoff.ceiling(attempt) - 1e-12 <= delay <= backoff.ceiling(attempt)


def test_jitter_spreads_retries() -> None:
    delays = {Backoff(1.0, 1.0, jitter=0.5).delay(1) for _ in range(50)}
    assert len(delays) > 40 and min(delays) >= 0.5


@pytest.mark.parametrize("bad", [(-1, 1), (2, 1)])
def test_bad_backoffs_are_refused(bad: tuple[float, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(*bad)
