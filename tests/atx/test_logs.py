"""The XID on every log record: from extra, from the RM's context, from the TC's request."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import uuid
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

import atx.rm as rm
from atx.logs import TEXT_FORMAT, JsonFormatter, XidFilter, bind_log_branch, bind_log_xid
from atx.rm.tc_client import TCClient
from atx.tc.testing import InProcessTC


def _capture(fmt: str) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(XidFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logger = logging.getLogger(f"atx.test.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, out, handler


def test_text_and_json_carry_the_bound_xid() -> None:
    for fmt in ("text", "json"):
        logger, out, _ = _capture(fmt)
        logger.info("outside")
        with rm.bind_xid("10.0.0.1:8091:7"):
            logger.info("inside %s", "the RM's transaction")
        with bind_log_xid("10.0.0.1:8091:8"):
            logger.info("inside the TC's request")
        logger.info("explicit", extra={"xid": "10.0.0.1:8091:9", "branch_id": 3})
        with bind_log_branch("10.0.0.1:8091:10", 11):
            logger.info("phase two of a branch")
        lines = out.getvalue().splitlines()
        if fmt == "json":
            records = [json.loads(line) for line in lines]
            assert [r["xid"] for r in records] == [
                "", "10.0.0.1:8091:7", "10.0.0.1:8091:8", "10.0.0.1:8091:9", "10.0.0.1:8091:10",
            ]  # fmt: skip
            assert records[3]["branch_id"] == 3 and records[1]["message"].endswith("transaction")
            assert records[4]["xid"] == "10.0.0.1:8091:10" and records[4]["branch_id"] == 11
            assert "branch_id" not in records[1]
            assert {"time", "level", "logger", "message", "xid"} <= set(records[0])
        else:
            assert "[" not in lines[0]
            assert "[10.0.0.1:8091:7] inside the RM's transaction" in lines[1]
            assert "[10.0.0.1:8091:8]" in lines[2] and "[10.0.0.1:8091:9] [branch 3]" in lines[3]
            assert "[10.0.0.1:8091:10] [branch 11] phase two" in lines[4]


def test_every_record_of_a_global_transaction_has_its_xid(tmp_path: Path) -> None:
    """Both sides of one global transaction: the RM's records and the TC's (in process)."""
    logger_names = ("atx.rm", "atx.tc")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(XidFilter())
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in logger_names]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        with InProcessTC() as tc:
            rm.configure(tc_addresses=[tc.address], client_id=uuid.uuid4().hex)
            conn = rm.connect_sqlite(tmp_path / "db.sqlite", create_undo_table=True)
            conn.raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INT)")
            conn.raw.commit()
            client: TCClient = rm.get_tc_client()

            @rm.global_transactional(name="logged")
            def work() -> str:
                conn.execute("INSERT INTO t (id, v) VALUES (1, 1)")
                conn.commit()
                logging.getLogger("atx.rm.test").info("the application's own record")
                return rm.require_xid()

            out.seek(0)
            out.truncate(0)
            xid = work()
            assert client.get_status(xid).seata_name  # the TC knows it
            conn.close()
            rm.shutdown()
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    records = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    inside = [r for r in records if xid in r["message"] or r["xid"] == xid]
    assert inside, "the transaction logged nothing"
    assert all(r["xid"] == xid for r in inside), [r for r in inside if r["xid"] != xid]
    assert any(r["logger"] == "atx.rm.test" for r in inside)


def test_the_cli_prints_json_lines() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "atx.cli", "--log-format", "json", "tc", "--port", "1",
         "--store", "bogus://x"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--log-format" not in result.stderr  # accepted


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_records_inside_a_transaction_across_two_services_carry_its_xid(
    tmp_path: Path, fmt: str
) -> None:
    """Two services joined by a real gRPC hop (the XID in the call's metadata): every
    record either emits inside the transaction carries the XID, none of them naming it in
    the message; a record emitted after the transaction carries none."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(XidFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    app = logging.getLogger(f"shop.{uuid.uuid4().hex[:8]}")
    app.addHandler(handler)
    app.setLevel(logging.INFO)
    app.propagate = False

    def mark(request: bytes, context: grpc.ServicerContext) -> bytes:
        app.info("callee: marking %s", request.decode())  # in the second service
        conn = rm.connect_sqlite(tmp_path / "callee.sqlite", create_undo_table=True)
        conn.execute("UPDATE t SET v = v + 1 WHERE id = 1")
        conn.commit()
        conn.close()
        app.info("callee: marked")
        return b"ok"

    setup = rm.connect_sqlite(tmp_path / "callee.sqlite", create_undo_table=True)
    setup.raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INT)")
    setup.raw.execute("INSERT INTO t VALUES (1, 0)")
    setup.raw.commit()
    setup.close()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2), interceptors=[rm.XidServerInterceptor()]
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("t.Callee", {"Mark": _bytes_handler(mark)})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with InProcessTC() as tc:
            rm.configure(tc_addresses=[tc.address], client_id=uuid.uuid4().hex)
            channel = grpc.intercept_channel(
                grpc.insecure_channel(f"127.0.0.1:{port}"), rm.XidClientInterceptor()
            )
            call = channel.unary_unary("/t.Callee/Mark")

            @rm.global_transactional(name="two-services")
            def buy() -> str:
                app.info("caller: buying")  # in the first service
                assert call(b"order-1", timeout=30) == b"ok"
                app.info("caller: bought")
                return rm.require_xid()

            xid = buy()
            app.info("after the transaction")
            channel.close()
            rm.shutdown()
    finally:
        server.stop(None)
        app.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert len(lines) == 5, lines
    *inside, after = lines
    if fmt == "json":
        records = [json.loads(line) for line in inside]
        assert [r["xid"] for r in records] == [xid] * 4
        assert all(xid not in r["message"] for r in records)  # the filter put it there
        assert not json.loads(after)["xid"]
    else:
        assert all(f"[{xid}]" in line for line in inside), inside
        assert all(xid not in line.split(f"[{xid}]", 1)[1] for line in inside)
        assert xid not in after


def _bytes_handler(fn: Any) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(fn)
