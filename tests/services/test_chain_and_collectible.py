"""The chain and collectible services as processes: idempotent mints, the
conditional stock decrement, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

import atx.shop.common.errors  # noqa: F401  (registers the shop's error codes)
from atx.errors import InvalidArgumentError, NotFoundError, UnavailableError, from_rpc_error
from atx.shop.v1 import chain_pb2, chain_pb2_grpc


def rpc(method: Any, request: Any) -> Any:
    try:
        return method(request, timeout=10)
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None


def test_chain_mint_is_idempotent_and_can_be_down(
    start_server: Any, port: int, tmp_path: Path
) -> None:
    start_server(
        ["service", "chain", "--port", str(port), "--db", f"sqlite:///{tmp_path}/chain.db"],
        port=port,
    )
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        chain = chain_pb2_grpc.ChainServiceStub(channel)
        request = chain_pb2.MintRequest(request_id="mint:h1", holding_id="h1", user_id="u")
        first = rpc(chain.Mint, request)
        again = rpc(chain.Mint, request)
        assert first == again and first.token_id and first.tx_hash.startswith("0x")
        assert len(rpc(chain.ListMints, chain_pb2.ListMintsRequest()).mints) == 1

        rpc(chain.SetAvailability, chain_pb2.SetAvailabilityRequest(available=False))
        with pytest.raises(UnavailableError):
            rpc(chain.Mint, chain_pb2.MintRequest(request_id="mint:h2", holding_id="h2"))
        rpc(chain.SetAvailability, chain_pb2.SetAvailabilityRequest(available=True))
        rpc(chain.Mint, chain_pb2.MintRequest(request_id="mint:h2", holding_id="h2"))
        assert [m.request_id for m in rpc(chain.ListMints, chain_pb2.ListMintsRequest()).mints] == [
            "mint:h1",
            "mint:h2",
        ]
        with pytest.raises(InvalidArgumentError):
            rpc(chain.Mint, chain_pb2.MintRequest(request_id=""))
        with pytest.raises(InvalidArgumentError):
            rpc(chain.SetAvailability, chain_pb2.SetAvailabilityRequest(latency_ms=-1))


def test_database_urls_are_checked() -> None:
    from atx.shop.common.db import Database

    with pytest.raises(InvalidArgumentError, match="postgres://x"):
        Database("postgres://x", "r")
    with pytest.raises(InvalidArgumentError):
        Database("sqlite:///", "r")


def test_unknown_collectible_is_not_found(start_server: Any, port: int, tmp_path: Path) -> None:
    from atx.shop.v1 import collectible_pb2, collectible_pb2_grpc

    tc_port = port
    start_server(
        ["tc", "--port", str(tc_port), "--store", f"sqlite:///{tmp_path}/tc.db"], port=tc_port
    )
    from atx.testing import free_port

    col_port = free_port()
    start_server(
        [
            "service", "collectible", "--port", str(col_port),
            "--db", f"sqlite:///{tmp_path}/col.db", "--tc", f"127.0.0.1:{tc_port}",
        ],
        port=col_port,
    )  # fmt: skip
    with grpc.insecure_channel(f"127.0.0.1:{col_port}") as channel:
        stub = collectible_pb2_grpc.CollectibleServiceStub(channel)
        with pytest.raises(NotFoundError):
            rpc(stub.GetCollectible, collectible_pb2.GetCollectibleRequest(collectible_id="nope"))
        with pytest.raises(InvalidArgumentError):
            rpc(stub.CreateCollectible, collectible_pb2.CreateCollectibleRequest(name="", total=1))
        with pytest.raises(InvalidArgumentError):
            rpc(stub.ReserveStock, collectible_pb2.ReserveStockRequest(order_id="o", quantity=0))
