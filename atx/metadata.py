"""gRPC metadata keys shared by every atx client and server."""

from typing import Final

__all__ = ["AUTHORIZATION_KEY", "ERROR_DOMAIN", "XID_KEY", "bearer"]

#: The XID of the caller's global transaction (Seata's key; metadata keys are lowercase).
XID_KEY: Final = "tx_xid"
#: Carries ``Bearer <token>`` when the TC or a service requires a token.
AUTHORIZATION_KEY: Final = "authorization"
#: ``google.rpc.ErrorInfo.domain`` of every atx error.
ERROR_DOMAIN: Final = "atx"


def bearer(token: str) -> tuple[str, str]:
    """The metadata pair that authenticates with ``token``."""
    return (AUTHORIZATION_KEY, f"Bearer {token}")
