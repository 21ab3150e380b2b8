"""Orders: CREATED -> PAID -> COMPLETED, or CLOSED."""

from services.order.service import SCHEMA, OrderServicer, serve

__all__ = ["SCHEMA", "OrderServicer", "serve"]
