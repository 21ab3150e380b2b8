"""Transaction hooks: callbacks around a global transaction's lifecycle.

A hook is registered for the *current* global transaction with
:func:`register_hook` (usually from inside the transaction's body). Only the
launcher, the TM that began the transaction, fires hooks; a participant that
joined through a propagated XID does not.

Failure policy (as in Seata and seata-go's SQL hooks): an exception in
``before_commit`` makes the launcher roll back instead of committing; an
exception in any ``before_*`` other than ``before_commit`` propagates; an
exception in ``after_*`` is logged and swallowed, because the outcome is
already decided.

It lives with the TM, which fires the hooks; ``atx.hooks`` (the outbox) builds on it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from atx.status import GlobalStatus

__all__ = [
    "NoTransactionForHookError",
    "TransactionHook",
    "TransactionHookBase",
    "fire_after",
    "fire_before",
    "hook_scope",
    "register_hook",
    "registered_hooks",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class TransactionHook(Protocol):
    """What a hook may implement. Every method is optional at runtime:
    missing ones are skipped; subclass :class:`TransactionHookBase` for no-op
    defaults."""

    def before_begin(self) -> None: ...
    def after_begin(self, xid: str) -> None: ...
    def before_commit(self, xid: str) -> None: ...
    def after_commit(self, xid: str) -> None: ...
    def before_rollback(self, xid: str) -> None: ...
    def after_rollback(self, xid: str) -> None: ...
    def after_completion(self, xid: str, status: GlobalStatus) -> None: ...


class TransactionHookBase:
    """A hook whose every method does nothing; override what you need."""

    def before_begin(self) -> None:
        return None

    def after_begin(self, xid: str) -> None:
        return None

    def before_commit(self, xid: str) -> None:
        return None

    def after_commit(self, xid: str) -> None:
        return None

    def before_rollback(self, xid: str) -> None:
        return None

    def after_rollback(self, xid: str) -> None:
        return None

    def after_completion(self, xid: str, status: GlobalStatus) -> None:
        return None


# The hook list of the innermost launched transaction; None outside one.
_hooks: contextvars.ContextVar[list[object] | None] = contextvars.ContextVar(
    "atx_transaction_hooks", default=None
)


class NoTransactionForHookError(RuntimeError):
    """register_hook was called outside any launched global transaction."""


def register_hook(hook: object) -> None:
    """Register ``hook`` for the current global transaction.

    Raises:
        RuntimeError: outside a global transaction's scope (nothing would fire it).
    """
    hooks = _hooks.get()
    if hooks is None:
        raise NoTransactionForHookError(
            "register_hook() needs a current global transaction (inside @global_transactional)"
        )
    hooks.append(hook)


def registered_hooks() -> list[object]:
    """A copy of the hooks registered for the current transaction ([] outside one)."""
    hooks = _hooks.get()
    return list(hooks) if hooks is not None else []


@contextlib.contextmanager
def hook_scope(inherit: bool = False) -> Iterator[list[object]]:
    """Open a fresh hook list for a transaction the caller launches.

    The launcher enters this before ``before_begin`` and keeps the returned
    list to fire. A joining participant does not open a scope, so its
    registrations land in the launcher's list when it runs in the same
    context. ``inherit`` copies the hooks of an enclosing scope.
    """
    parent = _hooks.get()
    hooks: list[object] = list(parent) if inherit and parent is not None else []
    token = _hooks.set(hooks)
    try:
        yield hooks
    finally:
        _hooks.reset(token)


def fire_before(hooks: list[object], event: str, *args: object) -> None:
    """Call ``event`` on every hook in order; the first exception propagates."""
    for hook in list(hooks):
        method = getattr(hook, event, None)
        if method is not None:
            method(*args)


def fire_after(hooks: list[object], event: str, *args: object) -> None:
    """Call ``event`` on every hook; exceptions are logged and swallowed."""
    xid = args[0] if args else ""
    for hook in list(hooks):
        method = getattr(hook, event, None)
        if method is None:
            continue
        try:
            method(*args)
        except Exception:
            logger.exception(
                "transaction hook %r failed in %s for %s", hook, event, xid, extra={"xid": xid}
            )
