"""Recognition with a cache: each distinct SQL text is parsed once per data source."""

from __future__ import annotations

import threading
from collections import OrderedDict

from atx.dialect import Dialect
from atx.rm.sql.parser import parse
from atx.rm.types.sql import SQLRecognition

__all__ = ["Recognizer"]


class Recognizer:
    """An LRU cache of recognitions by SQL text, shared by every connection of a data source.

    Thread-safe: lookups take no lock (an ``OrderedDict`` read is atomic under the
    GIL); inserts and evictions do.
    """

    def __init__(self, dialect: Dialect, cache_size: int = 2048) -> None:
        self.dialect = dialect
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[str, bool], SQLRecognition] = OrderedDict()
        self._lock = threading.Lock()

    def recognize(self, sql: str, has_params: bool = True) -> SQLRecognition:
        """The statement's recognition; ``has_params``: the caller passes parameters
        (pymysql leaves ``%`` alone without them; sqlite3 always binds)."""
        key = (sql, has_params or self.dialect is Dialect.SQLITE)
        cache = self._cache
        found = cache.get(key)
        if found is not None:
            try:  # noqa: SIM105 - suppress() costs more on this hot path
                cache.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile
                pass
            return found
        recognition = parse(sql, self.dialect, key[1])
        with self._lock:
            cache[key] = recognition
            while len(cache) > self._cache_size:
                cache.popitem(last=False)
        return recognition
