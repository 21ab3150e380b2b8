"""The payment database: pay orders, processed notifications, refunds, outbox.

Shaped for the robustness work that follows (timeout close, compensation,
refunds of duplicate payments): a pay order has our deadline and the earlier
one given to the channel; refunds carry a stable ``refund_no`` (the channel's
``out_request_no``) so a retried refund never refunds twice.
"""

from __future__ import annotations

__all__ = ["PAY_ORDER_COLUMNS", "SCHEMA"]

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS pay_orders ("
    " pay_order_id VARCHAR(64) NOT NULL PRIMARY KEY,"
    " order_id VARCHAR(64) NOT NULL,"
    " user_id VARCHAR(64) NOT NULL,"
    " channel VARCHAR(64) NOT NULL,"
    " amount BIGINT NOT NULL,"
    " state VARCHAR(16) NOT NULL,"
    " channel_trade_no VARCHAR(128) NOT NULL,"
    " pay_url VARCHAR(500) NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " expire_at BIGINT NOT NULL,"
    " channel_expire_at BIGINT NOT NULL,"
    " paid_at BIGINT NOT NULL,"
    # The global transaction that set SUCCESS: a duplicate checks it committed.
    " settled_xid VARCHAR(128) NOT NULL DEFAULT '',"
    " updated_at BIGINT NOT NULL)",
    # Notification ids already processed (duplicates and replays change nothing).
    "CREATE TABLE IF NOT EXISTS pay_notifications ("
    " notify_id VARCHAR(128) NOT NULL PRIMARY KEY,"
    " channel VARCHAR(64) NOT NULL,"
    " pay_order_id VARCHAR(64) NOT NULL,"
    " trade_status VARCHAR(32) NOT NULL,"
    " received_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pay_refunds ("
    " refund_no VARCHAR(128) NOT NULL PRIMARY KEY,"
    " pay_order_id VARCHAR(64) NOT NULL,"
    " channel VARCHAR(64) NOT NULL,"
    " amount BIGINT NOT NULL,"
    " reason VARCHAR(200) NOT NULL,"
    " state VARCHAR(16) NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL)",
]

PAY_ORDER_COLUMNS = (
    "pay_order_id, order_id, user_id, channel, amount, state, channel_trade_no, pay_url,"
    " created_at, expire_at, channel_expire_at, paid_at"
)
