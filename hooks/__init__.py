"""Transaction hooks and deferred external calls (the transactional outbox).

* :func:`register_hook` and :class:`TransactionHook`: lifecycle callbacks of
  the current global transaction, fired by its launcher.
* :func:`after_commit` / :func:`defer`: record a call that runs only if the
  global transaction commits; :class:`Dispatcher` runs it with retries,
  backoff and a dead-letter state; :class:`DeferredCallServicer` shows and
  retries dead letters.
"""

from atx.hooks.dispatcher import Decision, Dispatcher, DispatcherConfig, tc_status
from atx.hooks.outbox import (
    OUTBOX_TABLE,
    STATE_DEAD,
    STATE_DONE,
    STATE_PENDING,
    after_commit,
    defer,
    ensure_outbox_table,
)
from atx.hooks.service import DeferredCallServicer, add_deferred_call_service
from atx.hooks.store import OutboxRow, OutboxStore
from atx.hooks.targets import TargetRegistry, default_registry, register_target
from atx.rm.tm.hooks import (
    TransactionHook,
    TransactionHookBase,
    hook_scope,
    register_hook,
    registered_hooks,
)

__all__ = [
    "OUTBOX_TABLE",
    "STATE_DEAD",
    "STATE_DONE",
    "STATE_PENDING",
    "Decision",
    "DeferredCallServicer",
    "Dispatcher",
    "DispatcherConfig",
    "OutboxRow",
    "OutboxStore",
    "TargetRegistry",
    "TransactionHook",
    "TransactionHookBase",
    "add_deferred_call_service",
    "after_commit",
    "default_registry",
    "defer",
    "ensure_outbox_table",
    "hook_scope",
    "register_hook",
    "register_target",
    "registered_hooks",
    "tc_status",
]
