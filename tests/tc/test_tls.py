"""TLS through the TC's flags: a TLS client is served, a plaintext one is not."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from atx.v1 import transaction_manager_pb2 as tm_pb2
from atx.v1 import transaction_manager_pb2_grpc as tm_grpc
from atx.v1 import types_pb2
from tests.tc.conftest import TCFactory


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tc.crt", directory / "tc.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_serves_tls_clients_only(tc_factory: TCFactory, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    tc = tc_factory(tls_cert=str(cert), tls_key=str(key))
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    with grpc.secure_channel(tc.address, credentials) as channel:
        stub = tm_grpc.TransactionManagerServiceStub(channel)
        xid = stub.Begin(tm_pb2.BeginRequest(transaction_name="tls"), timeout=10).xid
        status = stub.Commit(tm_pb2.CommitRequest(xid=xid), timeout=10).status
        assert status == types_pb2.GLOBAL_STATUS_COMMITTED
    with grpc.insecure_channel(tc.address) as plain:
        with pytest.raises(grpc.RpcError) as refused:
            tm_grpc.TransactionManagerServiceStub(plain).Begin(tm_pb2.BeginRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
