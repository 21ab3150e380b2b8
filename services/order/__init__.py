"""Orders: CREATED -> PAID -> COMPLETED, or CLOSED."""

from services.order.jobs import ORDER_TIMEOUT_CLOSE_JOB, OrderTimeoutClose
from services.order.service import SCHEMA, OrderServicer, OrderSettings, serve

__all__ = [
    "ORDER_TIMEOUT_CLOSE_JOB",
    "SCHEMA",
    "OrderServicer",
    "OrderSettings",
    "OrderTimeoutClose",
    "serve",
]
