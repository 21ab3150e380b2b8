"""A transaction coordinator in your own process, for your tests.

    from atx.tc.testing import InProcessTC
    import atx.rm as rm

    with InProcessTC() as tc:            # a free port, a temporary SQLite store
        rm.configure(tc_addresses=[tc.address], application_id="my-tests")
        ...                              # run global transactions against it
        rm.shutdown()

With pytest, ``pytest_plugins = ["atx.tc.pytest_plugin"]`` gives the ``atx_tc``
fixture (one TC per test). The server runs on its own thread and event loop,
so it serves synchronous and asyncio tests alike.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import tempfile
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from atx.tc.config import TCConfig
from atx.tc.errors import TCError
from atx.tc.server import TCServer
from atx.testing import free_port

__all__ = ["InProcessTC", "test_config"]

T = TypeVar("T")


def test_config(directory: str | Path, **overrides: Any) -> TCConfig:
    """A TC configuration for tests: loopback, a free port, SQLite in ``directory``,
    and short job intervals and timeouts so that phase two and retries happen fast."""
    base = TCConfig(
        host="127.0.0.1",
        port=free_port(),
        store_url=f"sqlite:///{Path(directory).resolve()}/tc.db",
        job_interval_ms=100,
        retry_backoff_base_ms=100,
        retry_backoff_max_ms=300,
        branch_timeout_ms=2000,
        heartbeat_interval_ms=1000,
        shutdown_grace_s=2.0,
    )
    return dataclasses.replace(base, **overrides)


test_config.__test__ = False  # type: ignore[attr-defined]  # not a test, for pytest


class InProcessTC:
    """A TC started on a thread of its own; a context manager.

    ``config`` defaults to :func:`test_config` in a temporary directory that is
    removed on :meth:`stop`. ``address`` is ``127.0.0.1:<port>``.
    """

    def __init__(self, config: TCConfig | None = None, **overrides: Any) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if config is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="atx-tc-")
            config = test_config(self._tmp.name, **overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.server = TCServer(config)
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def start(self, timeout: float = 20.0) -> InProcessTC:
        self._thread = threading.Thread(target=self._main, name="atx-tc-testing", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TCError(f"the in-process TC did not start within {timeout:g} s")
        if self._failure is not None:
            raise self._failure
        return self

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as error:  # reported to start() in the caller's thread
            self._failure = error
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_until_complete(self.server.wait_closed())

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the TC's loop (e.g. a coordinator method) and wait."""
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            coroutine, self.loop
        )
        return future.result(timeout)

    def stop(self, grace: float = 1.0) -> None:
        if self._thread is not None and self.server.server is not None:
            self.call(self.server.stop(grace), timeout=grace + 20)
            self._thread.join(10)
        self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> InProcessTC:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
