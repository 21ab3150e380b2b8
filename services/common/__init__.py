"""What every shop service shares: database handling and the gRPC server bootstrap."""

from atx.shop.common.db import Database, execute
from atx.shop.common.server import ServiceRuntime, client_channel, start_server

__all__ = ["Database", "ServiceRuntime", "client_channel", "execute", "start_server"]
