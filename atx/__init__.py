"""atx: Seata-style AT distributed transactions for Python over gRPC.

This package holds what every part shares: the generated gRPC contract
(``atx.v1``, ``atx.shop.v1``), the error hierarchy with its gRPC mapping,
metadata keys, and the ``atx`` command line.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("atx")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
