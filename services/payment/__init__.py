"""The payment service: pay orders, channels and their guards."""
