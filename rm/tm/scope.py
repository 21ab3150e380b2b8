"""``@global_transactional`` and ``with global_transaction(...)``.

Units: ``timeout`` and ``lock_retry_interval`` are in **seconds** (floats),
like the rest of Python's APIs; Seata's ``timeoutMills=60000`` is
``timeout=60.0`` here.

Rollback rules follow Seata: the rule whose exception class is nearest in
the raised exception's MRO wins; with no matching rule every exception rolls
back. A body that ends with an exception that does not roll back commits,
and the exception still propagates.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from atx import tracing
from atx.rm.aio.bridge import spawn
from atx.rm.aio.tc_client import bridged_tc
from atx.rm.context import (
    DEFAULT_LOCK_RETRY_INTERVAL,
    DEFAULT_LOCK_RETRY_TIMES,
    LockRetryPolicy,
    bind_xid,
    bound_xid,
    hand_out_xid,
    unbind_xid,
)
from atx.rm.errors import (
    InvalidConfigurationError,
    InvalidUsageError,
    NotInGlobalTransactionError,
    PropagationError,
)
from atx.rm.tm.global_transaction import GlobalTransaction
from atx.rm.tm.hooks import hook_scope

__all__ = [
    "DEFAULT_TIMEOUT",
    "Propagation",
    "TransactionDefinition",
    "TransactionScope",
    "definition_of",
    "global_transaction",
    "global_transactional",
]

logger = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

#: Seata's default timeout (60000 ms), in seconds.
DEFAULT_TIMEOUT = 60.0
_ATTRIBUTE = "__atx_transaction__"


class Propagation(enum.Enum):
    """How a transactional call relates to a global transaction already in the context."""

    REQUIRED = "REQUIRED"  # join the current one, or begin one
    REQUIRES_NEW = "REQUIRES_NEW"  # suspend the current one, begin a new one
    NOT_SUPPORTED = "NOT_SUPPORTED"  # suspend the current one, run outside
    SUPPORTS = "SUPPORTS"  # join the current one, or run outside
    NEVER = "NEVER"  # fail inside one, run outside
    MANDATORY = "MANDATORY"  # join the current one, fail outside


class _Action(enum.Enum):
    BEGIN = "begin"
    JOIN = "join"
    SUSPEND = "suspend"
    NONE = "none"


def decide(propagation: Propagation, xid: str | None) -> _Action:
    """What a call with ``propagation`` does when ``xid`` (or None) is current."""
    if propagation is Propagation.REQUIRED:
        return _Action.JOIN if xid else _Action.BEGIN
    if propagation is Propagation.REQUIRES_NEW:
        return _Action.BEGIN
    if propagation is Propagation.NOT_SUPPORTED:
        return _Action.SUSPEND if xid else _Action.NONE
    if propagation is Propagation.SUPPORTS:
        return _Action.JOIN if xid else _Action.NONE
    if propagation is Propagation.NEVER:
        if xid:
            raise PropagationError(
                f"propagation NEVER, but global transaction {xid} is current", xid=xid
            )
        return _Action.NONE
    if not xid:
        raise NotInGlobalTransactionError("propagation MANDATORY needs a global transaction")
    return _Action.JOIN


def _mro_depth(exc_type: type[BaseException], rule: type[BaseException]) -> int:
    try:
        return exc_type.__mro__.index(rule)
    except ValueError:
        return -1


@dataclass(frozen=True)
class TransactionDefinition:
    """The validated settings of one transactional function or block."""

    name: str
    timeout: float = DEFAULT_TIMEOUT
    rollback_for: tuple[type[BaseException], ...] = ()
    no_rollback_for: tuple[type[BaseException], ...] = ()
    propagation: Propagation = Propagation.REQUIRED
    lock_retry_interval: float = DEFAULT_LOCK_RETRY_INTERVAL
    lock_retry_times: int = DEFAULT_LOCK_RETRY_TIMES

    @property
    def lock_retry_policy(self) -> LockRetryPolicy:
        return LockRetryPolicy(self.lock_retry_interval, self.lock_retry_times)

    def rolls_back_on(self, error: BaseException) -> bool:
        """Seata's RollbackRule: the nearest matching rule wins; no rule means roll back."""
        best_depth, rollback = -1, True
        exc_type = type(error)
        for rules, verdict in ((self.rollback_for, True), (self.no_rollback_for, False)):
            for rule in rules:
                depth = _mro_depth(exc_type, rule)
                if depth >= 0 and (best_depth < 0 or depth < best_depth):
                    best_depth, rollback = depth, verdict
        return rollback


def _exception_types(value: object, argument: str) -> tuple[type[BaseException], ...]:
    items: Iterable[object]
    if isinstance(value, type):
        items = (value,)
    elif isinstance(value, Iterable) and not isinstance(value, str | bytes):
        items = value
    else:
        raise InvalidUsageError(f"{argument} must be exception classes, got {value!r}")
    result = tuple(items)
    for item in result:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise InvalidUsageError(f"{argument} must hold exception classes, got {item!r}")
    return result  # type: ignore[return-value]


def make_definition(
    name: str,
    timeout: float = DEFAULT_TIMEOUT,
    rollback_for: object = (),
    no_rollback_for: object = (),
    propagation: Propagation | str = Propagation.REQUIRED,
    lock_retry_interval: float = DEFAULT_LOCK_RETRY_INTERVAL,
    lock_retry_times: int = DEFAULT_LOCK_RETRY_TIMES,
) -> TransactionDefinition:
    """Validate the arguments into a definition; every error names the bad value."""
    if not isinstance(name, str) or not name:
        raise InvalidConfigurationError(f"name must be a non-empty string, got {name!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise InvalidConfigurationError(
            f"timeout must be a positive number of seconds, got {timeout!r}"
        )
    if isinstance(propagation, str):
        try:
            propagation = Propagation[propagation.upper()]
        except KeyError:
            raise InvalidConfigurationError(f"unknown propagation {propagation!r}") from None
    if not isinstance(propagation, Propagation):
        raise InvalidUsageError(f"propagation must be a Propagation, got {propagation!r}")
    if (
        isinstance(lock_retry_interval, bool)
        or not isinstance(lock_retry_interval, int | float)
        or lock_retry_interval < 0
    ):
        raise InvalidConfigurationError(
            f"lock_retry_interval must be a non-negative number of seconds, "
            f"got {lock_retry_interval!r}"
        )
    if isinstance(lock_retry_times, bool) or not isinstance(lock_retry_times, int):
        raise InvalidConfigurationError(
            f"lock_retry_times must be an int, got {lock_retry_times!r}"
        )
    if lock_retry_times < 0:
        raise InvalidConfigurationError(f"lock_retry_times must be >= 0, got {lock_retry_times!r}")
    return TransactionDefinition(
        name=name,
        timeout=float(timeout),
        rollback_for=_exception_types(rollback_for, "rollback_for"),
        no_rollback_for=_exception_types(no_rollback_for, "no_rollback_for"),
        propagation=propagation,
        lock_retry_interval=float(lock_retry_interval),
        lock_retry_times=lock_retry_times,
    )


class TransactionScope:
    """One use of a definition: a sync or async context manager.

    ``xid`` is the bound XID inside the block (None when running outside a
    transaction); like ``rm.current_xid()``, reading it begins a launched
    transaction at the TC first, so that it may be passed on (see
    :mod:`atx.rm.launched`). ``launched`` tells whether this scope began it.
    """

    def __init__(self, definition: TransactionDefinition) -> None:
        self.definition = definition
        self._xid: str | None = None
        self.transaction: GlobalTransaction | None = None
        self._stack: contextlib.ExitStack | None = None
        self._rollback_only = False

    @property
    def xid(self) -> str | None:
        return hand_out_xid(self._xid)

    @property
    def launched(self) -> bool:
        return self.transaction is not None

    def set_rollback_only(self) -> None:
        """Roll back at the end of the block even without an exception (launcher only)."""
        self._rollback_only = True

    def _prepare(self) -> tuple[contextlib.ExitStack, _Action]:
        if self._stack is not None:
            raise RuntimeError("a TransactionScope cannot be entered twice")
        current = bound_xid()
        action = decide(self.definition.propagation, current)
        stack = contextlib.ExitStack()
        policy = self.definition.lock_retry_policy
        if action is _Action.JOIN:
            self._xid = current
            stack.enter_context(bind_xid(current, policy))
        elif action is _Action.SUSPEND:
            stack.enter_context(unbind_xid())
        elif action is _Action.BEGIN:
            stack.enter_context(
                tracing.span("atx.global_transaction", transaction=self.definition.name)
            )
            if current is not None:
                stack.enter_context(unbind_xid())
            hooks = stack.enter_context(hook_scope())
            self.transaction = GlobalTransaction(
                self.definition.name, self.definition.timeout, hooks
            )
        self._stack = stack
        return stack, action

    def _bind_launched(self, stack: contextlib.ExitStack) -> None:
        assert self.transaction is not None
        self._xid = self.transaction.xid
        stack.enter_context(bind_xid(self._xid, self.definition.lock_retry_policy))

    def __enter__(self) -> TransactionScope:
        stack, action = self._prepare()
        if action is _Action.BEGIN:
            try:
                assert self.transaction is not None
                self.transaction.begin()
            except BaseException:
                stack.close()
                raise
            self._bind_launched(stack)
        return self

    def _finish(self, error: BaseException | None) -> None:
        """Commit or roll back the launched transaction (sync; called inside the XID)."""
        tx = self.transaction
        assert tx is not None
        if error is None:
            if self._rollback_only:
                tx.rollback()
            else:
                tx.commit()
            return
        if not self.definition.rolls_back_on(error):
            tx.commit()
            return
        try:
            tx.rollback()
        except Exception:
            logger.exception("rollback of %s failed after %r", tx.xid, error, extra={"xid": tx.xid})

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None
        try:
            if self.transaction is not None:
                self._finish(exc)
        finally:
            self._stack.close()

    async def __aenter__(self) -> TransactionScope:
        stack, action = self._prepare()
        if action is _Action.BEGIN:
            try:
                assert self.transaction is not None
                # The launcher's code in the greenlet bridge, its TC calls over grpc.aio.
                self.transaction.tc = bridged_tc
                await spawn(self.transaction.begin)
            except BaseException:
                stack.close()
                raise
            self._bind_launched(stack)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None
        try:
            if self.transaction is not None:
                await spawn(self._finish, exc)
        finally:
            self._stack.close()


def global_transaction(
    name: str = "global_transaction",
    *,
    timeout: float = DEFAULT_TIMEOUT,
    rollback_for: object = (),
    no_rollback_for: object = (),
    propagation: Propagation | str = Propagation.REQUIRED,
    lock_retry_interval: float = DEFAULT_LOCK_RETRY_INTERVAL,
    lock_retry_times: int = DEFAULT_LOCK_RETRY_TIMES,
) -> TransactionScope:
    """A global transaction around a block: ``with global_transaction("buy") as tx: ...``

    Also ``async with``. The arguments are those of :func:`global_transactional`.
    """
    return TransactionScope(
        make_definition(
            name,
            timeout,
            rollback_for,
            no_rollback_for,
            propagation,
            lock_retry_interval,
            lock_retry_times,
        )
    )


@overload
def global_transactional(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def global_transactional(
    *,
    name: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    rollback_for: object = (),
    no_rollback_for: object = (),
    propagation: Propagation | str = Propagation.REQUIRED,
    lock_retry_interval: float = DEFAULT_LOCK_RETRY_INTERVAL,
    lock_retry_times: int = DEFAULT_LOCK_RETRY_TIMES,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def global_transactional(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    rollback_for: object = (),
    no_rollback_for: object = (),
    propagation: Propagation | str = Propagation.REQUIRED,
    lock_retry_interval: float = DEFAULT_LOCK_RETRY_INTERVAL,
    lock_retry_times: int = DEFAULT_LOCK_RETRY_TIMES,
) -> Any:
    """Run the function in a global transaction (Seata's ``@GlobalTransactional``).

    Args:
        name: the transaction name shown by the TC (default: the function's qualified name).
        timeout: seconds; a commit after it rolls back and raises TransactionTimeoutError.
        rollback_for: exception classes that roll back (every exception does by default).
        no_rollback_for: exception classes that commit (the exception still propagates).
        propagation: a :class:`Propagation` (or its name).
        lock_retry_interval: seconds between branch registrations on a lock conflict.
        lock_retry_times: retries before GlobalLockWaitTimeout.

    Works bare or with arguments, on sync and ``async def`` functions; the
    arguments are checked when decorating. The definition is stored on the
    function (see :func:`definition_of`).
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(function):
            raise InvalidUsageError(f"@global_transactional needs a function, got {function!r}")
        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
            raise InvalidUsageError(
                f"@global_transactional cannot wrap the generator {function.__qualname__}"
            )
        definition = make_definition(
            name if name is not None else str(getattr(function, "__qualname__", "global_tx")),
            timeout,
            rollback_for,
            no_rollback_for,
            propagation,
            lock_retry_interval,
            lock_retry_times,
        )
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with TransactionScope(definition):
                    return await function(*args, **kwargs)

            setattr(async_wrapper, _ATTRIBUTE, definition)
            return async_wrapper

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with TransactionScope(definition):
                return function(*args, **kwargs)

        setattr(wrapper, _ATTRIBUTE, definition)
        return wrapper

    if fn is not None:
        return decorate(fn)
    return decorate


def definition_of(function: Callable[..., Any]) -> TransactionDefinition | None:
    """The definition stored by ``@global_transactional``, if any."""
    definition = getattr(function, _ATTRIBUTE, None)
    return definition if isinstance(definition, TransactionDefinition) else None
