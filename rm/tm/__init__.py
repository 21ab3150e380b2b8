"""The transaction manager (TM): begin, commit and roll back global transactions.

:mod:`.scope` has the ``@global_transactional`` decorator and the propagation
rules; :mod:`.global_transaction` the launcher's begin/commit/rollback;
:mod:`.hooks` the transaction hooks it fires.
"""

from atx.rm.tm.global_transaction import GlobalTransaction
from atx.rm.tm.hooks import (
    NoTransactionForHookError,
    TransactionHook,
    TransactionHookBase,
    fire_after,
    fire_before,
    hook_scope,
    register_hook,
    registered_hooks,
)
from atx.rm.tm.scope import (
    Propagation,
    TransactionDefinition,
    TransactionScope,
    definition_of,
    global_transaction,
    global_transactional,
)

__all__ = [
    "GlobalTransaction",
    "NoTransactionForHookError",
    "Propagation",
    "TransactionDefinition",
    "TransactionHook",
    "TransactionHookBase",
    "TransactionScope",
    "definition_of",
    "fire_after",
    "fire_before",
    "global_transaction",
    "global_transactional",
    "hook_scope",
    "register_hook",
    "registered_hooks",
]
