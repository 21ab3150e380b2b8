"""The payment service: pay orders, channels and their guards.

The channel adapter, the simulator and the guards live in
``atx.shop.payment.channel``; this package wires them into the service.
"""

from atx.shop.payment.processing import SuccessProcessor
from atx.shop.payment.server import serve
from atx.shop.payment.service import PaymentServicer
from atx.shop.payment.settings import PaymentSettings

__all__ = ["PaymentServicer", "PaymentSettings", "SuccessProcessor", "serve"]
