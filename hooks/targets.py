"""The registry of deferred-call targets: name → handler.

A handler is called as ``handler(payload, request_id)`` after its global
transaction committed. It must be idempotent by ``request_id`` (it may run
again after a crash or a lost answer); any exception means "retry later".
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from atx.errors import InvalidArgumentError, NotFoundError

__all__ = ["Handler", "TargetRegistry", "default_registry", "register_target"]

Handler = Callable[[dict[str, Any], str], object]


class UnknownTargetError(NotFoundError):
    """No handler is registered under this name."""

    code = "HOOKS_UNKNOWN_TARGET"

    def __init__(self, target: str) -> None:
        super().__init__(f"no deferred-call target registered as {target!r}", target=target)


class TargetRegistry:
    """Handlers by name (thread-safe)."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()

    def register(self, name: str, handler: Handler) -> None:
        if not name:
            raise InvalidArgumentError("target name must not be empty")
        with self._lock:
            self._handlers[name] = handler

    def get(self, name: str) -> Handler:
        with self._lock:
            handler = self._handlers.get(name)
        if handler is None:
            raise UnknownTargetError(name)
        return handler

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._handlers)


default_registry = TargetRegistry()


def register_target(name: str, handler: Handler) -> None:
    """Register ``handler`` for deferred calls to ``name`` in this process."""
    default_registry.register(name, handler)
