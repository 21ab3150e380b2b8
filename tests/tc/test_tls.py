"""TLS through the TC's flags: a TLS client is served, a plaintext one is not."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from atx.testing import self_signed_cert
from atx.v1 import transaction_manager_pb2 as tm_pb2
from atx.v1 import transaction_manager_pb2_grpc as tm_grpc
from atx.v1 import types_pb2
from tests.tc.conftest import TCFactory


def test_tls_serves_tls_clients_only(tc_factory: TCFactory, tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
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
