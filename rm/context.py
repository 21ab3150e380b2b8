"""The transaction context of the current task, in contextvars.

Temporal-style: :func:`current_xid` returns None outside a global
transaction; :func:`require_xid` raises. Each asyncio task and each thread
has its own view, and ``contextvars.copy_context`` carries it along.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

from atx.logs import add_xid_source
from atx.rm import launched as launched_transactions
from atx.rm.errors import InvalidConfigurationError

__all__ = [
    "DEFAULT_LOCK_RETRY_INTERVAL",
    "DEFAULT_LOCK_RETRY_TIMES",
    "LockRetryPolicy",
    "bind_global_lock",
    "bind_xid",
    "current_lock_retry_policy",
    "current_xid",
    "in_global_lock",
    "in_global_transaction",
    "require_xid",
    "unbind_xid",
]

#: Seata's defaults: retry a conflicting branch registration every 10 ms, 30 times.
DEFAULT_LOCK_RETRY_INTERVAL = 0.010
DEFAULT_LOCK_RETRY_TIMES = 30


@dataclass(frozen=True)
class LockRetryPolicy:
    """How a branch waits for global row locks: ``times`` retries, ``interval`` seconds apart."""

    interval: float = DEFAULT_LOCK_RETRY_INTERVAL
    times: int = DEFAULT_LOCK_RETRY_TIMES


_DEFAULT_POLICY = LockRetryPolicy()

_xid: contextvars.ContextVar[str | None] = contextvars.ContextVar("atx_xid", default=None)
_global_lock: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "atx_global_lock", default=False
)
#: True inside a global transaction or a global lock scope: the proxy's hot path reads only this.
_active: contextvars.ContextVar[bool] = contextvars.ContextVar("atx_active", default=False)
_lock_retry: contextvars.ContextVar[LockRetryPolicy] = contextvars.ContextVar(
    "atx_lock_retry", default=_DEFAULT_POLICY
)
#: ``_active.get``, bound once for the proxy's hot path. Called as a plain function: a
#: name imported with ``from ... import`` makes CPython 3.11 compile ``name.get()`` as an
#: attribute load plus call (it guesses a module), which allocates a bound method per call.
scope_active = _active.get


#: The bound XID as atx's own code reads it: the branch, the proxies, log records.
#: Unlike :func:`current_xid` it never begins a launched XID at the TC.
bound_xid = _xid.get


def hand_out_xid(xid: str | None) -> str | None:
    """``xid``, begun at the TC first if this process launched it and the TC may not
    know it yet: it is about to reach code that may carry it anywhere (one Begin call,
    the first time only; see :mod:`atx.rm.launched`)."""
    if xid is not None:
        transaction = launched_transactions.find(xid)
        if transaction is not None:
            transaction.ensure_begun()
    return xid


def current_xid() -> str | None:
    """The XID of the current global transaction, or None outside one.

    The XID may be passed on by any means (a header, a message): a transaction
    this process launched is begun at the TC before its XID is returned (a short
    blocking call the first time, also in asyncio code)."""
    return hand_out_xid(_xid.get())


def require_xid() -> str:
    """The current XID; raises NotInGlobalTransactionError outside a global transaction."""
    xid = _xid.get()
    if xid is None:
        from atx.rm.errors import NotInGlobalTransactionError

        raise NotInGlobalTransactionError("no global transaction is bound to this context")
    hand_out_xid(xid)
    return xid


def in_global_transaction() -> bool:
    """Whether an XID is bound to this context."""
    return _xid.get() is not None


def in_global_lock() -> bool:
    """Whether this context runs under ``@global_lock`` (and outside a global transaction)."""
    return _global_lock.get()


def current_lock_retry_policy() -> LockRetryPolicy:
    """The lock retry policy set by the innermost decorator (Seata's defaults otherwise)."""
    return _lock_retry.get()


@contextlib.contextmanager
def bind_xid(xid: str | None, policy: LockRetryPolicy | None = None) -> Iterator[str | None]:
    """Bind ``xid`` (None unbinds: a suspended transaction) for the block; restores after."""
    if xid is not None and not (isinstance(xid, str) and xid):
        raise InvalidConfigurationError(f"xid must be a non-empty string, got {xid!r}")
    token = _xid.set(xid)
    active_token = _active.set(xid is not None or _global_lock.get())
    policy_token = _lock_retry.set(policy) if policy is not None else None
    try:
        yield xid
    finally:
        if policy_token is not None:
            _lock_retry.reset(policy_token)
        _active.reset(active_token)
        _xid.reset(token)


@contextlib.contextmanager
def unbind_xid() -> Iterator[str | None]:
    """Suspend the current global transaction for the block; yields the suspended XID."""
    suspended = _xid.get()
    token = _xid.set(None)
    active_token = _active.set(_global_lock.get())
    try:
        yield suspended
    finally:
        _active.reset(active_token)
        _xid.reset(token)


@contextlib.contextmanager
def bind_global_lock(policy: LockRetryPolicy | None = None) -> Iterator[None]:
    """Mark the block as a ``@global_lock`` scope."""
    token = _global_lock.set(True)
    active_token = _active.set(True)
    policy_token = _lock_retry.set(policy) if policy is not None else None
    try:
        yield
    finally:
        if policy_token is not None:
            _lock_retry.reset(policy_token)
        _active.reset(active_token)
        _global_lock.reset(token)


# Every log record emitted inside a global transaction carries its XID (atx.logs).
add_xid_source(bound_xid)
