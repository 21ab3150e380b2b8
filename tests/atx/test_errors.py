"""Every project error becomes a gRPC status and back into the same error."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

import atx.errors as errors
from atx.errors import AtxError, from_rpc_error, map_errors

# Each installed package on its own: atx.tc, atx.rm, ... live in folders of their own.
PACKAGES = ("atx", "atx.tc", "atx.rm", "atx.hooks", "atx.shop")


def _import_error_modules() -> None:
    """Import every ``errors`` module so that all error types are registered."""
    for name in PACKAGES:
        package = importlib.import_module(name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            if info.name.rsplit(".", 1)[-1] == "errors":
                importlib.import_module(info.name)


_import_error_modules()
ALL_ERRORS = sorted(errors._REGISTRY.values(), key=lambda cls: cls.code)


def _sample(cls: type[AtxError]) -> AtxError:
    return cls._rebuild(
        f"sample {cls.code} message: ünïcode", {"xid": "10.0.0.1:8091:42", "n": "7"}
    )


class _Servicer:
    @map_errors
    def raise_sync(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        raise _sample(errors._REGISTRY[request.decode()])

    @map_errors
    async def raise_async(self, request: bytes, context: Any) -> bytes:
        raise _sample(errors._REGISTRY[request.decode()])


def _handler(behaviour: Any) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        "atx.test.Errors",
        {"Raise": grpc.unary_unary_rpc_method_handler(behaviour)},
    )


@pytest.fixture(scope="module")
def sync_address() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((_handler(_Servicer().raise_sync),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def test_error_codes_are_unique_and_documented() -> None:
    assert len({cls.code for cls in ALL_ERRORS}) == len(ALL_ERRORS)
    for cls in ALL_ERRORS:
        assert cls.code and cls.code.upper() == cls.code, cls
        assert isinstance(cls.grpc_code, grpc.StatusCode)


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda cls: cls.code)
def test_round_trip_through_a_sync_server(sync_address: str, cls: type[AtxError]) -> None:
    with grpc.insecure_channel(sync_address) as channel:
        call = channel.unary_unary("/atx.test.Errors/Raise")
        with pytest.raises(grpc.RpcError) as raised:
            call(cls.code.encode(), timeout=10)
    rebuilt = from_rpc_error(raised.value)
    expected = _sample(cls)
    assert type(rebuilt) is cls
    assert (rebuilt.code, rebuilt.message, rebuilt.details) == (
        expected.code,
        expected.message,
        expected.details,
    )
    assert raised.value.code() == cls.grpc_code  # type: ignore[attr-defined]
    assert rebuilt == expected


def test_round_trip_through_an_aio_server() -> None:
    async def scenario() -> list[AtxError]:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((_handler(_Servicer().raise_async),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        rebuilt = []
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.unary_unary("/atx.test.Errors/Raise")
                for cls in ALL_ERRORS:
                    try:
                        await call(cls.code.encode(), timeout=10)
                    except grpc.aio.AioRpcError as error:
                        rebuilt.append(from_rpc_error(error))
        finally:
            await server.stop(None)
        return rebuilt

    rebuilt = asyncio.run(scenario())
    assert rebuilt == [_sample(cls) for cls in ALL_ERRORS]


def test_a_plain_grpc_failure_maps_to_a_generic_error(sync_address: str) -> None:
    with grpc.insecure_channel(sync_address) as channel:
        call = channel.unary_unary("/atx.test.Errors/NoSuchMethod")
        with pytest.raises(grpc.RpcError) as raised:
            call(b"", timeout=10)
    rebuilt = from_rpc_error(raised.value)
    assert isinstance(rebuilt, errors.RemoteError)
    assert rebuilt.details["grpc_code"] == "UNIMPLEMENTED"


def test_protocol_errors_name_what_they_are_about() -> None:
    missing = errors.GlobalTransactionNotFoundError("h:1:99")
    assert "h:1:99" in str(missing) and missing.xid == "h:1:99"
    illegal = errors.IllegalStatusError("h:1:1", "Committed", "register a branch in")
    assert illegal.grpc_code == grpc.StatusCode.FAILED_PRECONDITION
    assert "Committed" in illegal.message
    conflict = errors.LockConflictError("h:1:2", "db^^^t^^^1", fail_fast=True)
    assert conflict.retryable and conflict.fail_fast and conflict.holder_xid == "h:1:2"


def test_duplicate_codes_are_refused() -> None:
    with pytest.raises(TypeError, match="taken"):

        class Clash(AtxError):
            code = "LOCK_CONFLICT"
