"""OpenTelemetry traces of global transactions, or nothing at all.

With the ``otel`` extra installed, :func:`span` opens a span on the global
tracer provider tagged ``atx.xid`` (the bound XID, see :mod:`atx.logs`) and
``atx.branch_id`` where known, and :func:`trace_channel` /
:func:`server_interceptors` give gRPC spans (opentelemetry-instrumentation-grpc)
that carry the trace context in metadata next to the XID. Without it, this
module imports nothing of OpenTelemetry and every call is a shared no-op
(a module-level ``None`` test), so the instrumented code paths cost nearly
nothing.

Processes export through :func:`configure_from_env`: the standard ``OTEL_*``
variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_TRACES_EXPORTER``,
``OTEL_SERVICE_NAME``...), plus ``ATX_TRACE_FILE`` to write finished spans as
JSON lines (the SDK's console exporter into a file, for tests and debugging).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from atx.logs import current_log_xid

try:  # The optional extra: everything below degrades to no-ops without it.
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised by a subprocess test
    _trace = None  # type: ignore[assignment]
    _propagate = None  # type: ignore[assignment]

__all__ = [
    "ATTR_BRANCH_ID",
    "ATTR_XID",
    "aio_client_interceptors",
    "available",
    "configure_from_env",
    "end_deliveries",
    "install_xid_processor",
    "remember",
    "remembered",
    "server_interceptors",
    "span",
    "start_deliveries",
    "tag",
    "trace_channel",
]

logger = logging.getLogger(__name__)

ATTR_XID = "atx.xid"
ATTR_BRANCH_ID = "atx.branch_id"
#: Long-lived streams are not one operation: a span over an Attach stream would last
#: for the life of the RM and parent every command sent over it.
_UNTRACED_METHODS = ("Attach",)
_ENV_TRACE_FILE = "ATX_TRACE_FILE"

_NULL = contextlib.nullcontext()
_tracer: Any = _trace.get_tracer("atx") if _trace is not None else None


def available() -> bool:
    """Whether OpenTelemetry is importable (the ``otel`` extra)."""
    return _trace is not None


def enabled() -> bool:
    """Whether this process traces: the extra is installed and a tracer provider set
    (:func:`configure_from_env`, or the application's own SDK provider).

    Until then spans are no-ops and channels and servers get no tracing interceptors:
    installed but unconfigured, OpenTelemetry costs a TC or an RM nothing per call
    (its interceptors made ~5 % of a busy TC's CPU with no provider to report to).
    Channels and servers made before the provider is set stay untraced."""
    return _trace is not None and not isinstance(
        _trace.get_tracer_provider(), _trace.ProxyTracerProvider
    )


def _attributes(xid: str | None, branch_id: int | None, extra: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {f"atx.{k}": v for k, v in extra.items() if v is not None}
    xid = xid or current_log_xid()
    if xid:
        attributes[ATTR_XID] = xid
    if branch_id:
        attributes[ATTR_BRANCH_ID] = branch_id
    return attributes


def span(
    name: str,
    *,
    xid: str | None = None,
    branch_id: int | None = None,
    parent: Mapping[str, str] | None = None,
    server: bool = False,
    **attributes: Any,
) -> contextlib.AbstractContextManager[Any]:
    """A span named ``name``, current for the block (a no-op without the extra).

    ``xid`` defaults to the bound one; ``parent`` is a W3C carrier received from
    another process (a phase-two command's ``trace_context``); each keyword
    becomes an attribute ``atx.<keyword>``.
    """
    if _tracer is None or not enabled():
        return _NULL
    return _start(name, xid, branch_id, parent, server, attributes)


@contextlib.contextmanager
def _start(
    name: str,
    xid: str | None,
    branch_id: int | None,
    parent: Mapping[str, str] | None,
    server: bool,
    attributes: Mapping[str, Any],
) -> Iterator[Any]:
    context = _propagate.extract(parent) if parent else None
    kind = _trace.SpanKind.SERVER if server else _trace.SpanKind.INTERNAL
    with _tracer.start_as_current_span(
        name, context=context, kind=kind, attributes=_attributes(xid, branch_id, attributes)
    ) as current:
        yield current


def tag(xid: str | None = None, branch_id: int | None = None, **attributes: Any) -> None:
    """Set the XID, branch id and ``attributes`` on the current span (once they are known)."""
    if _trace is None:
        return
    current = _trace.get_current_span()
    if current.is_recording():
        current.set_attributes(_attributes(xid, branch_id, attributes))


# --- hops that are not RPCs: phase-two commands and deferred calls ------------------------


def start_deliveries(name: str, commands: Sequence[Any]) -> list[Any]:
    """One span per phase-two command, its context put into ``command.trace_context``.

    The commands travel together over Attach streams and are answered in any order,
    so the spans are started here, never made current, and ended by :func:`end_deliveries`.
    """
    if _tracer is None or not enabled():
        return []
    spans = []
    for command in commands:
        attributes = _attributes(
            command.xid, command.branch_id, {"resource_id": command.resource_id}
        )
        started = _tracer.start_span(name, kind=_trace.SpanKind.PRODUCER, attributes=attributes)
        _propagate.inject(command.trace_context, context=_trace.set_span_in_context(started))
        spans.append(started)
    return spans


def end_deliveries(spans: Sequence[Any], outcomes: Sequence[str]) -> None:
    """End the spans of :func:`start_deliveries` with each command's outcome."""
    for started, outcome in zip(spans, outcomes, strict=False):
        started.set_attribute("atx.outcome", outcome)
        started.end()


#: Trace context of recent transactions by XID, for work that runs later in this process
#: (a deferred call); bounded, the oldest forgotten first.
_REMEMBERED_MAX = 4096
_remembered: collections.OrderedDict[str, dict[str, str]] = collections.OrderedDict()
_remembered_lock = threading.Lock()


def remember(xid: str) -> None:
    """Keep the current trace context for ``xid`` (see :func:`remembered`)."""
    if _propagate is None or not xid:
        return
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    if not carrier:
        return
    with _remembered_lock:
        _remembered[xid] = carrier
        _remembered.move_to_end(xid)
        while len(_remembered) > _REMEMBERED_MAX:
            _remembered.popitem(last=False)


def remembered(xid: str) -> dict[str, str] | None:
    """The carrier :func:`remember` kept for ``xid`` (None: a new trace, tagged with the XID)."""
    if _propagate is None:
        return None
    with _remembered_lock:
        return _remembered.get(xid)


# --- gRPC --------------------------------------------------------------------------------


def _grpc_filter() -> Any:
    from opentelemetry.instrumentation.grpc import filters

    untraced = [filters.method_name(m) for m in _UNTRACED_METHODS]
    return filters.negate(filters.any_of(*untraced, filters.health_check()))


def _tag_response(span: Any, response: Any) -> None:
    # Begin answers the XID and BranchRegister the branch id: the call's span gets them.
    xid, branch_id = getattr(response, "xid", None), getattr(response, "branch_id", None)
    if span.is_recording() and (xid or branch_id):
        span.set_attributes(_attributes(xid, branch_id, {}))


def trace_channel(channel: Any) -> Any:
    """``channel`` with a client span for each call (itself without the extra).

    The trace context rides in the call's metadata, next to the XID.
    """
    if not enabled():
        return channel
    try:
        from opentelemetry.instrumentation.grpc import client_interceptor
        from opentelemetry.instrumentation.grpc.grpcext import intercept_channel
    except ImportError:
        return channel
    interceptor = client_interceptor(  # type: ignore[no-untyped-call]
        filter_=_grpc_filter(), response_hook=_tag_response
    )
    return intercept_channel(channel, interceptor)  # type: ignore[no-untyped-call]


def aio_client_interceptors() -> list[Any]:
    """Interceptors giving each call of a grpc.aio channel a client span (none without)."""
    if not enabled():
        return []
    try:
        from opentelemetry.instrumentation.grpc import aio_client_interceptors as make
    except ImportError:
        return []
    hooked = make(filter_=_grpc_filter(), response_hook=_tag_response)  # type: ignore[no-untyped-call]
    return list(hooked)


def server_interceptors(aio: bool = False) -> list[Any]:
    """Interceptors giving each call a server span, for a sync or a grpc.aio server.

    Put them after the XID interceptor: the XID is then bound when the span starts.
    """
    if not enabled():
        return []
    try:
        from opentelemetry.instrumentation.grpc import aio_server_interceptor, server_interceptor
    except ImportError:
        return []
    make = aio_server_interceptor if aio else server_interceptor
    return [make(filter_=_grpc_filter())]  # type: ignore[no-untyped-call]


# --- export ------------------------------------------------------------------------------


def install_xid_processor(provider: Any) -> None:
    """Tag every span that starts while an XID is bound (the gRPC ones too) with ``atx.xid``."""
    from opentelemetry.sdk.trace import SpanProcessor

    class XidSpanProcessor(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            xid = current_log_xid()
            if xid and not (span.attributes or {}).get(ATTR_XID):
                span.set_attribute(ATTR_XID, xid)

    provider.add_span_processor(XidSpanProcessor())


def configure_from_env(service_name: str) -> bool:
    """Install a tracer provider exporting as the environment says; False when none is asked.

    OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces one) is set or
    ``OTEL_TRACES_EXPORTER`` names ``otlp``; ``ATX_TRACE_FILE`` appends JSON lines.
    """
    if _trace is None:
        return False
    exporters = {e.strip() for e in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")}
    otlp = "otlp" in exporters or any(
        os.environ.get(v)
        for v in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    trace_file = os.environ.get(_ENV_TRACE_FILE, "")
    if "none" in exporters or not (otlp or trace_file):
        return False
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError:
        logger.warning("OTEL_* is set but opentelemetry-sdk is not installed: no traces")
        return False
    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    install_xid_processor(provider)
    if otlp:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if trace_file:
        # Line-buffered: a process stopped by a signal has written every finished span.
        out = open(trace_file, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        exporter = ConsoleSpanExporter(out=out, formatter=lambda s: s.to_json(indent=None) + "\n")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _trace.set_tracer_provider(provider)
    logger.info("tracing %s (otlp=%s, file=%s)", name, otlp, trace_file or "-")
    return True
