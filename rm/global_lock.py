"""``@global_lock`` and ``with global_lock_scope()``: local transactions that
must not overwrite rows a global transaction holds (Seata's ``@GlobalLock``).

Inside the scope, DML and SELECT ... FOR UPDATE through a proxy connection
collect their rows' lock keys. SELECT ... FOR UPDATE asks the TC at once;
``commit()`` asks before committing locally. Both retry every
``lock_retry_interval`` seconds up to ``lock_retry_times`` times, then roll
the local transaction back and raise GlobalLockWaitTimeout. No branch is
registered and no undo log written. Inside a global transaction the scope
does nothing: the transaction takes the locks itself.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ParamSpec, TypeVar, overload

from atx.rm.context import (
    DEFAULT_LOCK_RETRY_INTERVAL,
    DEFAULT_LOCK_RETRY_TIMES,
    LockRetryPolicy,
    bind_global_lock,
    in_global_transaction,
)
from atx.rm.errors import InvalidConfigurationError, InvalidUsageError

__all__ = ["global_lock", "global_lock_scope"]

P = ParamSpec("P")
R = TypeVar("R")


def _policy(interval: float, times: int) -> LockRetryPolicy:
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 0:
        raise InvalidConfigurationError(
            f"lock_retry_interval must be >= 0 seconds, got {interval!r}"
        )
    if isinstance(times, bool) or not isinstance(times, int) or times < 0:
        raise InvalidConfigurationError(f"lock_retry_times must be an int >= 0, got {times!r}")
    return LockRetryPolicy(float(interval), times)


@contextlib.contextmanager
def global_lock_scope(
    *,
    lock_retry_interval: float = DEFAULT_LOCK_RETRY_INTERVAL,
    lock_retry_times: int = DEFAULT_LOCK_RETRY_TIMES,
) -> Iterator[None]:
    """The block runs under global-lock checks (commit its connections inside it)."""
    policy = _policy(lock_retry_interval, lock_retry_times)
    if in_global_transaction():
        yield
        return
    with bind_global_lock(policy):
        yield


@contextlib.asynccontextmanager
async def _async_scope(policy: LockRetryPolicy) -> AsyncIterator[None]:
    if in_global_transaction():
        yield
        return
    with bind_global_lock(policy):
        yield


@overload
def global_lock(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def global_lock(
    *,
    lock_retry_interval: float = DEFAULT_LOCK_RETRY_INTERVAL,
    lock_retry_times: int = DEFAULT_LOCK_RETRY_TIMES,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def global_lock(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    lock_retry_interval: float = DEFAULT_LOCK_RETRY_INTERVAL,
    lock_retry_times: int = DEFAULT_LOCK_RETRY_TIMES,
) -> Any:
    """Run the function under global-lock checks; bare or with arguments, sync or async."""
    policy = _policy(lock_retry_interval, lock_retry_times)

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(function):
            raise InvalidUsageError(f"@global_lock needs a function, got {function!r}")
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with _async_scope(policy):
                    return await function(*args, **kwargs)

            return async_wrapper

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with global_lock_scope(
                lock_retry_interval=policy.interval, lock_retry_times=policy.times
            ):
                return function(*args, **kwargs)

        return wrapper

    if fn is not None:
        return decorate(fn)
    return decorate
