"""The collectible shop: order, payment, collectible and chain services over gRPC.

Run one with ``atx service NAME``, all of them with ``atx up``, and the
scripted end-to-end purchases with ``atx demo``.
"""

__all__: list[str] = []
