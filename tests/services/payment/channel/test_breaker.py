"""The per-channel breaker in real Redis, fed by real channel calls."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from atx.errors import InvalidArgumentError
from atx.shop.payment.channel import (
    BreakerConfig,
    BreakerState,
    ChannelBreaker,
    ChannelClient,
    ChannelKeys,
    ChannelUnavailableError,
    SimulatorServer,
    TradeNotFoundError,
)

CONFIG = BreakerConfig(stat_interval_ms=10_000, min_requests=5, open_ms=400, probe_ttl_ms=5_000)
CHANNELS = ["alipay_sim", "wechat_sim"]


def _call(client: ChannelClient) -> bool:
    try:
        client.query("po-none")
    except ChannelUnavailableError:
        return False
    except TradeNotFoundError:
        return True  # a business answer: the channel works
    return True


def _wait_state(breaker: ChannelBreaker, want: BreakerState, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while breaker.state("alipay_sim") != want:
        assert time.monotonic() < deadline, f"breaker never became {want}"
        time.sleep(0.05)


@pytest.fixture
def breaker(redis_url: str) -> ChannelBreaker:
    return ChannelBreaker(redis_url, CONFIG)


@pytest.fixture
def guarded(
    simulator: SimulatorServer, keys: ChannelKeys, breaker: ChannelBreaker
) -> ChannelClient:
    return ChannelClient("alipay_sim", simulator.address, keys, breaker=breaker)


def test_a_channel_failing_30_percent_opens_and_leaves_the_list(
    guarded: ChannelClient, simulator: SimulatorServer, breaker: ChannelBreaker
) -> None:
    simulator.simulator.set_faults(failure_rate=0.3)
    assert breaker.available_channels(CHANNELS, "u1") == CHANNELS
    calls = 0
    while breaker.state("alipay_sim") == BreakerState.CLOSED:
        _call(guarded)
        calls += 1
        assert calls < 30, "the breaker did not open within one window"
    assert breaker.state("alipay_sim") == BreakerState.OPEN
    assert breaker.available_channels(CHANNELS, "u1") == ["wechat_sim"]
    assert breaker.state("wechat_sim") == BreakerState.CLOSED


def test_it_returns_after_a_successful_half_open_probe(
    guarded: ChannelClient, simulator: SimulatorServer, breaker: ChannelBreaker
) -> None:
    simulator.simulator.set_faults(failure_rate=1.0)
    while breaker.state("alipay_sim") == BreakerState.CLOSED:
        _call(guarded)
    # Still failing when half-open: the probe fails and it opens again.
    _wait_state(breaker, BreakerState.HALF_OPEN)
    assert breaker.available_channels(CHANNELS, "prober") == CHANNELS
    assert not _call(guarded)
    assert breaker.state("alipay_sim") == BreakerState.OPEN
    # Recovered: one user gets the probe, the others wait for its outcome.
    simulator.simulator.set_faults(failure_rate=0.0)
    _wait_state(breaker, BreakerState.HALF_OPEN)
    assert breaker.allow("alipay_sim", "prober")
    assert breaker.allow("alipay_sim", "prober")  # the probe holder keeps it
    assert breaker.available_channels(CHANNELS, "someone") == ["wechat_sim"]
    assert _call(guarded)
    assert breaker.state("alipay_sim") == BreakerState.CLOSED
    assert breaker.available_channels(CHANNELS, "someone") == CHANNELS


def test_abandoned_payments_count_as_neither(breaker: ChannelBreaker) -> None:
    for _ in range(4):
        breaker.record_success("alipay_sim")
    for _ in range(20):
        breaker.record_ignored("alipay_sim", "u1")
    breaker.record_failure("alipay_sim")  # 1 of 5: exactly 20%, not above
    assert breaker.state("alipay_sim") == BreakerState.CLOSED
    breaker.record_failure("alipay_sim")  # 2 of 6
    assert breaker.state("alipay_sim") == BreakerState.OPEN


def test_an_abandoned_probe_goes_to_the_next_user(breaker: ChannelBreaker) -> None:
    for _ in range(5):
        breaker.record_failure("alipay_sim")
    _wait_state(breaker, BreakerState.HALF_OPEN)
    assert breaker.allow("alipay_sim", "u1")
    assert not breaker.allow("alipay_sim", "u2")
    breaker.record_ignored("alipay_sim", "u1")
    assert breaker.allow("alipay_sim", "u2")
    assert breaker.state("alipay_sim") == BreakerState.HALF_OPEN


def test_two_breakers_and_two_processes_share_the_state(redis_url: str) -> None:
    config = BreakerConfig(min_requests=5, open_ms=60_000)  # stays OPEN while we look
    first, second = ChannelBreaker(redis_url, config), ChannelBreaker(redis_url, config)
    for _ in range(3):
        first.record_failure("alipay_sim")
    for _ in range(2):
        second.record_failure("alipay_sim")
    assert first.state("alipay_sim") == second.state("alipay_sim") == BreakerState.OPEN
    script = (
        "import sys;from atx.shop.payment.channel import ChannelBreaker as B;"
        "b=B(sys.argv[1]);print(b.state('alipay_sim').value);"
        "[b.record_failure('wechat_sim') for _ in range(5)]"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, redis_url], capture_output=True, text=True, timeout=60
    )
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == "OPEN"
    assert first.state("wechat_sim") == BreakerState.OPEN
    assert first.available_channels(CHANNELS, "u1") == []
    first.reset("wechat_sim")
    assert second.available_channels(CHANNELS, "u1") == ["wechat_sim"]


def test_an_open_channel_is_offered_to_a_stable_share_of_users(redis_url: str) -> None:
    config = BreakerConfig(min_requests=1, open_ms=60_000, open_share=0.3)
    breaker = ChannelBreaker(redis_url, config)
    breaker.record_failure("alipay_sim")
    users = [f"user-{i}" for i in range(300)]
    offered = {u for u in users if breaker.allow("alipay_sim", u)}
    assert 0 < len(offered) < len(users)
    assert offered == {u for u in users if breaker.allow("alipay_sim", u)}


def test_bad_config_is_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        BreakerConfig(error_ratio=1.5)
    with pytest.raises(InvalidArgumentError):
        BreakerConfig(min_requests=0)
