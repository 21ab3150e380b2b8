"""Client channels to the TC (and other atx servers): plaintext or TLS, one way.

``tls_ca`` is the path of a PEM CA bundle; empty means plaintext. With TLS the
server certificate must chain to that CA and name the host dialled, or
``tls_server_name`` when the certificate names another host (an IP-only
address in front of a certificate for a DNS name, say).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from atx import tracing
from atx.errors import InvalidArgumentError

__all__ = ["channel_credentials", "open_aio_channel", "open_channel"]

_Option = tuple[str, Any]


def channel_credentials(tls_ca: str) -> grpc.ChannelCredentials:
    """TLS credentials trusting the PEM CA bundle at ``tls_ca``.

    Raises:
        InvalidArgumentError: the file cannot be read or holds no PEM certificate.
    """
    try:
        pem = Path(tls_ca).read_bytes()
    except OSError as error:
        raise InvalidArgumentError(
            f"cannot read TLS CA bundle {tls_ca!r}: {error.strerror or error}", tls_ca=tls_ca
        ) from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise InvalidArgumentError(
            f"TLS CA bundle {tls_ca!r} holds no PEM certificate", tls_ca=tls_ca
        )
    return grpc.ssl_channel_credentials(root_certificates=pem)


def _options(tls_ca: str, tls_server_name: str, options: Sequence[_Option]) -> list[_Option]:
    merged = list(options)
    if tls_ca and tls_server_name:
        merged.append(("grpc.ssl_target_name_override", tls_server_name))
    return merged


def open_channel(
    address: str,
    *,
    tls_ca: str = "",
    tls_server_name: str = "",
    interceptors: Sequence[Any] = (),
    options: Sequence[_Option] = (),
) -> grpc.Channel:
    """A sync channel to ``address``: TLS when ``tls_ca`` is set, else plaintext.

    ``interceptors`` are client interceptors wrapped around it (outermost first), then
    the tracing ones (:mod:`atx.tracing`; none without the ``otel`` extra).
    """
    merged = _options(tls_ca, tls_server_name, options)
    if tls_ca:
        channel = grpc.secure_channel(address, channel_credentials(tls_ca), options=merged)
    else:
        channel = grpc.insecure_channel(address, options=merged)
    channel = tracing.trace_channel(channel)
    if interceptors:
        channel = grpc.intercept_channel(channel, *interceptors)
    return channel


def open_aio_channel(
    address: str,
    *,
    tls_ca: str = "",
    tls_server_name: str = "",
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    options: Sequence[_Option] = (),
) -> grpc.aio.Channel:
    """The asyncio twin of :func:`open_channel`."""
    merged = _options(tls_ca, tls_server_name, options)
    interceptors = [*interceptors, *tracing.aio_client_interceptors()]
    if tls_ca:
        return grpc.aio.secure_channel(
            address,
            channel_credentials(tls_ca),
            options=merged,
            interceptors=list(interceptors) or None,
        )
    return grpc.aio.insecure_channel(
        address, options=merged, interceptors=list(interceptors) or None
    )
