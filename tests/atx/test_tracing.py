"""atx.tracing: one trace per global transaction, and nothing at all without OpenTelemetry."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import atx.rm as rm
from atx import tracing
from atx.tc.testing import InProcessTC
from atx.testing import wait_until

_BLOCKED = textwrap.dedent(
    """
    import importlib.abc, os, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "opentelemetry":
                raise ImportError(f"blocked: {name}")
            return None

    sys.meta_path.insert(0, Block())
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:1"
    import atx.rm, atx.hooks, atx.tc.server, atx.shop.common.server
    from atx import tracing
    from atx.grpc_channels import open_channel

    assert not tracing.available() and not tracing.configure_from_env("t")
    with tracing.span("x", xid="1.2.3.4:1:1", branch_id=2):
        tracing.tag(xid="1.2.3.4:1:1")
    assert tracing.server_interceptors() == tracing.aio_client_interceptors() == []
    assert tracing.start_deliveries("d", [object()]) == []
    open_channel("127.0.0.1:1").close()
    loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
    assert not loaded, loaded
    print("clean")
    """
)


def test_without_opentelemetry_nothing_is_imported() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _BLOCKED], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


def _exporter() -> InMemorySpanExporter:
    """A fresh in-memory exporter on this process's SDK provider (set once per process)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        tracing.install_xid_processor(provider)
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def test_a_global_transaction_is_one_trace(tmp_path: Path) -> None:
    exporter = _exporter()
    with InProcessTC() as tc:
        rm.configure(tc_addresses=[tc.address], client_id=uuid.uuid4().hex)
        conn = rm.connect_sqlite(tmp_path / "db.sqlite", create_undo_table=True)
        conn.raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INT)")
        conn.raw.commit()

        @rm.global_transactional(name="traced")
        def work() -> str:
            conn.execute("INSERT INTO t (id, v) VALUES (1, 1)")
            conn.commit()
            return rm.require_xid()

        xid = work()

        def mine() -> list[str]:
            spans = exporter.get_finished_spans()
            return [s.name for s in spans if (s.attributes or {}).get(tracing.ATTR_XID) == xid]

        wait_until(lambda: "atx.rm.branch_commit" in mine(), what="phase two's span")
        conn.close()
        rm.shutdown()
    spans = [s for s in exporter.get_finished_spans() if s.name != "atx.deferred_call"]
    exporter.shutdown()
    traced = [s for s in spans if (s.attributes or {}).get(tracing.ATTR_XID) == xid]
    assert {s.context.trace_id for s in traced} == {traced[0].context.trace_id}
    names = {s.name for s in traced}
    # The branch's registration began the transaction (no Begin call), and the
    # launcher did its own branch's phase two (the TC delivered no BranchCommit).
    assert {
        "atx.global_transaction", "atx.branch", "atx.rm.branch_commit",
        "/atx.v1.TransactionManagerService/Commit",
        "/atx.v1.ResourceManagerService/BranchRegister",
    } <= names, names  # fmt: skip
    assert not {"atx.tc.branch_commit", "/atx.v1.TransactionManagerService/Begin"} & names
    kinds = {(s.name, s.kind) for s in traced if s.name.startswith("/")}
    assert ("/atx.v1.TransactionManagerService/Commit", trace.SpanKind.SERVER) in kinds
    assert ("/atx.v1.TransactionManagerService/Commit", trace.SpanKind.CLIENT) in kinds
    branch = next(s for s in traced if s.name == "atx.rm.branch_commit")
    assert (branch.attributes or {}).get(tracing.ATTR_BRANCH_ID)
    root = next(s for s in traced if s.name == "atx.global_transaction")
    assert root.parent is None and (root.attributes or {}).get("atx.status") == "COMMITTED"
    assert not any(s.name.endswith("/Attach") for s in spans)  # a stream, not an operation


def test_pass_through_calls_no_observability_code(tmp_path: Path) -> None:
    """Outside a global transaction the proxy's statements never reach tracing or metrics
    (what keeps the pass-through overhead of #4 with observability on)."""
    import atx.rm.metrics

    _exporter()  # tracing installed and active in this process
    watched = {tracing.__file__, atx.rm.metrics.__file__}
    conn = rm.connect_sqlite(tmp_path / "p.sqlite", create_undo_table=True)
    conn.raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INT)")
    conn.raw.commit()
    calls: list[str] = []

    def profile(frame: object, event: str, arg: object) -> None:
        code = frame.f_code  # type: ignore[attr-defined]
        if event == "call" and code.co_filename in watched:
            calls.append(code.co_name)

    sys.setprofile(profile)
    try:
        for i in range(20):
            cursor = conn.cursor()
            cursor.execute("INSERT INTO t (id, v) VALUES (?, ?)", (i, i))
            cursor.execute("SELECT v FROM t WHERE id = ?", (i,))
            cursor.fetchall()
            conn.commit()
    finally:
        sys.setprofile(None)
    conn.close()
    assert calls == []


_EXPORTING = textwrap.dedent(
    """
    from opentelemetry import trace
    from atx import tracing

    assert tracing.configure_from_env("atx-otlp-test")
    with tracing.span("atx.test", xid="10.0.0.1:8091:5", branch_id=6):
        pass
    trace.get_tracer_provider().shutdown()  # flushes the batch to the endpoint
    """
)


def test_the_otel_environment_exports_over_otlp(port: int) -> None:
    """The standard OTEL_* variables: spans reach an OTLP/gRPC endpoint (a real one,
    served here with the collector's own service definition)."""
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as otlp_grpc

    received: list[otlp.ExportTraceServiceRequest] = []

    class Collector(otlp_grpc.TraceServiceServicer):
        def Export(self, request: otlp.ExportTraceServiceRequest, context: object) -> object:
            received.append(request)
            return otlp.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    otlp_grpc.add_TraceServiceServicer_to_server(Collector(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        env = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
        }
        env.pop("ATX_TRACE_FILE", None)
        result = subprocess.run(
            [sys.executable, "-c", _EXPORTING], env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        server.stop(1)
    assert result.returncode == 0, result.stderr
    spans = [
        span
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert [s.name for s in spans] == ["atx.test"]
    attributes = {a.key: a.value for a in spans[0].attributes}
    assert attributes["atx.xid"].string_value == "10.0.0.1:8091:5"
    assert attributes["atx.branch_id"].int_value == 6
    service = {
        a.key: a.value.string_value for a in received[0].resource_spans[0].resource.attributes
    }
    assert service["service.name"] == "atx-otlp-test"
