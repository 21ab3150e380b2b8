"""@global_transactional: validation at decoration time, definitions, propagation rules.

What needs a TC (begin, commit, rollback, hooks) is in test_transactional_tc.py.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import atx.rm as rm
from atx.rm.tm.scope import Propagation, _Action, decide


def test_bare_and_with_arguments() -> None:
    @rm.global_transactional
    def bare() -> int:
        return 1

    @rm.global_transactional(name="buy", timeout=5, propagation="requires_new")
    def configured() -> int:
        return 2

    bare_def = rm.definition_of(bare)
    assert bare_def is not None
    assert bare_def.name.endswith("bare")
    assert bare_def.timeout == 60.0
    assert bare_def.propagation is Propagation.REQUIRED
    assert (bare_def.lock_retry_interval, bare_def.lock_retry_times) == (0.01, 30)
    configured_def = rm.definition_of(configured)
    assert configured_def is not None
    assert (configured_def.name, configured_def.timeout) == ("buy", 5.0)
    assert configured_def.propagation is Propagation.REQUIRES_NEW
    assert configured.__name__ == "configured"
    with pytest.raises(dataclasses.FrozenInstanceError):
        configured_def.timeout = 1.0  # type: ignore[misc]


def test_async_functions_stay_coroutine_functions() -> None:
    @rm.global_transactional(timeout=1.5)
    async def handler() -> None:
        return None

    assert inspect.iscoroutinefunction(handler)
    assert rm.definition_of(handler) is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"propagation": "SOMETIMES"}, "SOMETIMES"),
        ({"lock_retry_interval": -0.1}, "lock_retry_interval"),
        ({"lock_retry_times": -1}, "lock_retry_times"),
        ({"lock_retry_times": 1.5}, "lock_retry_times"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_arguments_fail_at_decoration(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rm.global_transactional(**kwargs)(lambda: None)  # type: ignore[call-overload]


def test_bad_exception_rules_fail_at_decoration() -> None:
    with pytest.raises(TypeError, match="rollback_for"):
        rm.global_transactional(rollback_for=[ValueError, "KeyError"])(lambda: None)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="no_rollback_for"):
        rm.global_transactional(no_rollback_for=42)(lambda: None)  # type: ignore[call-overload]


def test_generators_are_refused() -> None:
    def gen() -> object:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        rm.global_transactional(gen)


class Business(Exception):
    pass


class Expected(Business):
    pass


def test_rollback_rules_nearest_wins() -> None:
    definition = rm.global_transactional(rollback_for=Business, no_rollback_for=[Expected])(
        lambda: None
    )
    rules = rm.definition_of(definition)
    assert rules is not None
    assert rules.rolls_back_on(Business())
    assert not rules.rolls_back_on(Expected())
    assert rules.rolls_back_on(KeyError())  # no rule matches: roll back
    plain = rm.definition_of(rm.global_transactional(lambda: None))
    assert plain is not None and plain.rolls_back_on(KeyboardInterrupt())


@pytest.mark.parametrize(
    ("propagation", "outside", "inside"),
    [
        (Propagation.REQUIRED, _Action.BEGIN, _Action.JOIN),
        (Propagation.REQUIRES_NEW, _Action.BEGIN, _Action.BEGIN),
        (Propagation.NOT_SUPPORTED, _Action.NONE, _Action.SUSPEND),
        (Propagation.SUPPORTS, _Action.NONE, _Action.JOIN),
    ],
)
def test_propagation_decisions(propagation: Propagation, outside: _Action, inside: _Action) -> None:
    assert decide(propagation, None) is outside
    assert decide(propagation, "tc:1:1") is inside


def test_never_and_mandatory() -> None:
    assert decide(Propagation.NEVER, None) is _Action.NONE
    with pytest.raises(rm.PropagationError, match="NEVER"):
        decide(Propagation.NEVER, "tc:1:1")
    assert decide(Propagation.MANDATORY, "tc:1:1") is _Action.JOIN
    with pytest.raises(rm.NotInGlobalTransactionError):
        decide(Propagation.MANDATORY, None)


def test_propagations_that_need_no_tc_run_the_body() -> None:
    @rm.global_transactional(propagation=Propagation.NOT_SUPPORTED)
    def outside() -> str | None:
        return rm.current_xid()

    @rm.global_transactional(propagation=Propagation.SUPPORTS)
    def supports() -> str | None:
        return rm.current_xid()

    @rm.global_transactional(propagation=Propagation.MANDATORY)
    def mandatory() -> str | None:
        return rm.current_xid()

    @rm.global_transactional(propagation=Propagation.NEVER)
    def never() -> str | None:
        return rm.current_xid()

    assert outside() is None and supports() is None and never() is None
    with rm.bind_xid("tc:1:7"):
        assert outside() is None
        assert supports() == "tc:1:7"
        assert mandatory() == "tc:1:7"
        with pytest.raises(rm.PropagationError):
            never()
    with pytest.raises(rm.NotInGlobalTransactionError):
        mandatory()


def test_public_api_is_pinned() -> None:
    assert set(rm.__all__) >= {
        "global_transactional",
        "global_transaction",
        "global_lock",
        "bind_xid",
        "current_xid",
        "in_global_transaction",
        "connect_mysql",
        "connect_sqlite",
        "wrap",
        "configure",
        "XidClientInterceptor",
        "XidServerInterceptor",
        "AioXidClientInterceptor",
        "AioXidServerInterceptor",
        "GlobalLockWaitTimeout",
    }
    for name in rm.__all__:
        assert hasattr(rm, name), name
