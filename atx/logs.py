"""The XID in every log record, and the log formats of the ``atx`` commands.

A record carries the global transaction it was emitted in: the ``xid`` passed
in ``extra``, else the XID bound in the current context (the RM's
``bind_xid``, or the TC's for the request it serves). :class:`XidFilter` puts
it on every record that passes a handler; the text format prints it in
brackets, the JSON format as a field, one object a line (Seata keeps the XID
in the logging context, MDC, for the same reason).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator

__all__ = [
    "JsonFormatter",
    "XidFilter",
    "add_xid_source",
    "bind_log_branch",
    "bind_log_xid",
    "configure_logging",
    "current_log_xid",
    "log_xid",
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(xid_tag)s %(message)s"

#: The XID a server binds for the request it serves (set/reset with a token on hot paths).
log_xid: contextvars.ContextVar[str | None] = contextvars.ContextVar("atx_log_xid", default=None)
#: The branch a record concerns, where known (phase two on the RM binds it).
log_branch_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "atx_log_branch_id", default=None
)
#: Where the current XID may come from, asked in order (the RM adds its context's).
_sources: list[Callable[[], str | None]] = [log_xid.get]


def add_xid_source(source: Callable[[], str | None]) -> None:
    """Also take the current XID from ``source`` (called for records without one)."""
    if source not in _sources:
        _sources.append(source)


def current_log_xid() -> str | None:
    for source in _sources:
        xid = source()
        if xid:
            return xid
    return None


@contextlib.contextmanager
def bind_log_xid(xid: str | None) -> Iterator[None]:
    """Records emitted inside carry ``xid`` (the TC binds the XID of the request it serves)."""
    token = log_xid.set(xid or None)
    try:
        yield
    finally:
        log_xid.reset(token)


@contextlib.contextmanager
def bind_log_branch(xid: str | None, branch_id: int | None) -> Iterator[None]:
    """Records emitted inside carry ``xid`` and ``branch_id`` (a phase-two command's)."""
    token = log_xid.set(xid or None)
    branch_token = log_branch_id.set(branch_id or None)
    try:
        yield
    finally:
        log_branch_id.reset(branch_token)
        log_xid.reset(token)


class XidFilter(logging.Filter):
    """Sets ``record.xid`` (``""`` outside a global transaction), ``record.xid_tag`` and
    ``record.branch_id`` where known."""

    def filter(self, record: logging.LogRecord) -> bool:
        xid = getattr(record, "xid", None) or current_log_xid() or ""
        record.xid = xid
        branch_id = getattr(record, "branch_id", None) or log_branch_id.get()
        if branch_id:
            record.branch_id = branch_id
            record.xid_tag = f" [{xid}] [branch {branch_id}]" if xid else f" [branch {branch_id}]"
        else:
            record.xid_tag = f" [{xid}]" if xid else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, xid, branch_id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "xid": getattr(record, "xid", "") or current_log_xid() or "",
        }
        branch_id = getattr(record, "branch_id", None) or log_branch_id.get()
        if branch_id:
            entry["branch_id"] = branch_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """The ``atx`` commands' logging: to stderr, with the XID, as text or JSON lines."""
    handler = logging.StreamHandler()
    handler.addFilter(XidFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
