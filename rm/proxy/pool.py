"""A pool of proxied connections, for threaded servers: SQLAlchemy's QueuePool.

A proxy is one connection for one thread at a time. A threaded server takes a
connection from the pool per request (or per global transaction) and gives it
back: ``conn = pool.connect()`` ... ``conn.close()``. On return the pool rolls
back whatever the borrower left open, so no branch leaks into the next one.

SQLAlchemy is a well-kept pool; atx does not write its own. Install it with
``pip install 'atx[pool]'`` (or any SQLAlchemy 2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from atx.dsn import is_postgres_url
from atx.rm.errors import InvalidConfigurationError
from atx.rm.proxy.connect import connect_mysql, connect_postgres
from atx.rm.proxy.connection import ConnectionProxy

if TYPE_CHECKING:
    from sqlalchemy.pool import QueuePool

__all__ = ["pool"]


def pool(
    source: str | Callable[[], ConnectionProxy],
    resource_id: str | None = None,
    *,
    size: int = 5,
    max_overflow: int = 10,
    timeout: float = 30.0,
    recycle: float = -1,
    pre_ping: bool = False,
    **connect_kwargs: Any,
) -> QueuePool:
    """A QueuePool of proxies: ``source`` is a ``mysql://`` or ``postgresql://`` URL (with
    ``resource_id`` and PyMySQL / psycopg ``connect_kwargs``) or a function making one proxy.

    ``size`` connections are kept, up to ``max_overflow`` more are opened under
    load, and ``connect()`` waits ``timeout`` seconds for a free one. ``recycle``
    (seconds) replaces connections older than that; ``pre_ping`` checks each one
    on checkout.
    """
    try:
        from sqlalchemy.pool import QueuePool
    except ImportError as missing:  # an optional dependency: say how to get it
        raise InvalidConfigurationError(
            "atx.rm.pool needs SQLAlchemy: pip install 'atx[pool]'"
        ) from missing
    if size < 1 or max_overflow < 0 or timeout <= 0:
        raise InvalidConfigurationError(
            f"pool size must be >= 1, max_overflow >= 0 and timeout > 0"
            f" (got {size}, {max_overflow}, {timeout})"
        )
    # Any: SQLAlchemy types the creator as returning its DBAPIConnection protocol.
    creator: Callable[[], Any]
    if isinstance(source, str):
        url = source

        connect = connect_postgres if is_postgres_url(url) else connect_mysql

        def creator() -> Any:
            return connect(url, resource_id, **connect_kwargs)

    else:
        if resource_id is not None or connect_kwargs:
            raise InvalidConfigurationError(
                "resource_id and connect arguments go with a URL, not with a connect function"
            )
        creator = source
    return QueuePool(
        cast("Callable[[], Any]", creator),
        pool_size=size,
        max_overflow=max_overflow,
        timeout=timeout,
        recycle=recycle,
        pre_ping=pre_ping,
        reset_on_return="rollback",
    )
