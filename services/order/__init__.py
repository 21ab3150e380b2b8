"""Orders: CREATED -> PAID -> COMPLETED, or CLOSED."""

from atx.shop.order.jobs import ORDER_TIMEOUT_CLOSE_JOB, OrderTimeoutClose
from atx.shop.order.service import SCHEMA, OrderServicer, OrderSettings, serve

__all__ = [
    "ORDER_TIMEOUT_CLOSE_JOB",
    "SCHEMA",
    "OrderServicer",
    "OrderSettings",
    "OrderTimeoutClose",
    "serve",
]
