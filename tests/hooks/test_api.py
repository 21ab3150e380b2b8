"""The public names of the hooks package stay put."""

from __future__ import annotations

import atx.hooks as hooks


def test_public_api_is_pinned() -> None:
    assert sorted(hooks.__all__) == sorted(
        [
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
    )
    for name in hooks.__all__:
        assert getattr(hooks, name) is not None
