"""atx resource manager and transaction API.

Make a PyMySQL, psycopg 3 or sqlite3 program transactional across databases::

    import atx.rm as rm

    rm.configure(tc_addresses=["127.0.0.1:8091"], application_id="orders")
    conn = rm.connect_mysql("mysql://root@127.0.0.1:3306/orders", resource_id="orders-db")
    # or rm.connect_postgres("postgresql://app@127.0.0.1:5432/orders", ...), rm.connect_sqlite

    @rm.global_transactional(timeout=30.0)
    def place_order(...):
        with conn.cursor() as cursor:
            cursor.execute("UPDATE stock SET qty = qty - %s WHERE id = %s", (n, item))
        conn.commit()          # registers the branch, writes the undo log
        payment_stub.Pay(...)  # the XID travels with XidClientInterceptor

From asyncio, ``await rm.connect_asyncmy(...)``, ``connect_aiosqlite`` or
``connect_psycopg_async`` give async proxies with the same semantics (:mod:`atx.rm.aio`,
``pip install 'atx[aio]'``).
"""

from atx.dialect import Dialect
from atx.rm.aio import (
    AsyncConnectionProxy,
    AsyncCursorProxy,
    connect_aiosqlite,
    connect_asyncmy,
    connect_psycopg_async,
    wrap_async,
)
from atx.rm.config import Config, configure, get_config
from atx.rm.context import (
    LockRetryPolicy,
    bind_xid,
    current_xid,
    in_global_lock,
    in_global_transaction,
    require_xid,
    unbind_xid,
)
from atx.rm.errors import (
    DDLInGlobalTransactionError,
    DirtyWriteError,
    GlobalLockWaitTimeout,
    InvalidConfigurationError,
    InvalidUsageError,
    NotInGlobalTransactionError,
    PropagationError,
    RMError,
    TransactionRolledBackError,
    TransactionTimeoutError,
    UnsupportedSQLError,
)
from atx.rm.global_lock import global_lock, global_lock_scope
from atx.rm.interceptors import (
    AioXidClientInterceptor,
    AioXidServerInterceptor,
    XidClientInterceptor,
    XidServerInterceptor,
)
from atx.rm.proxy import (
    ConnectionProxy,
    CursorProxy,
    connect_mysql,
    connect_postgres,
    connect_sqlite,
    pool,
    wrap,
)
from atx.rm.resource import Resource, get_resource, register_resource
from atx.rm.runtime import RMRuntime, ensure_runtime, get_runtime, shutdown
from atx.rm.tc_client import TCClient, get_tc_client
from atx.rm.tm import (
    Propagation,
    TransactionDefinition,
    TransactionScope,
    definition_of,
    global_transaction,
    global_transactional,
)

__all__ = [
    "AioXidClientInterceptor",
    "AioXidServerInterceptor",
    "AsyncConnectionProxy",
    "AsyncCursorProxy",
    "Config",
    "ConnectionProxy",
    "CursorProxy",
    "DDLInGlobalTransactionError",
    "Dialect",
    "DirtyWriteError",
    "GlobalLockWaitTimeout",
    "InvalidConfigurationError",
    "InvalidUsageError",
    "LockRetryPolicy",
    "NotInGlobalTransactionError",
    "Propagation",
    "PropagationError",
    "RMError",
    "RMRuntime",
    "Resource",
    "TCClient",
    "TransactionDefinition",
    "TransactionRolledBackError",
    "TransactionScope",
    "TransactionTimeoutError",
    "UnsupportedSQLError",
    "XidClientInterceptor",
    "XidServerInterceptor",
    "bind_xid",
    "configure",
    "connect_aiosqlite",
    "connect_asyncmy",
    "connect_mysql",
    "connect_postgres",
    "connect_psycopg_async",
    "connect_sqlite",
    "current_xid",
    "definition_of",
    "ensure_runtime",
    "get_config",
    "get_resource",
    "get_runtime",
    "get_tc_client",
    "global_lock",
    "global_lock_scope",
    "global_transaction",
    "global_transactional",
    "in_global_lock",
    "in_global_transaction",
    "pool",
    "register_resource",
    "require_xid",
    "shutdown",
    "unbind_xid",
    "wrap",
    "wrap_async",
]
