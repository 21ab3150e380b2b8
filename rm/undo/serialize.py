"""Type-aware JSON encoding of undo items, zlib-compressed above a size threshold.

Values keep their Python type across the round trip: ``datetime`` (with
microseconds and tzinfo), ``date``, ``time``, ``timedelta`` (pymysql's TIME),
``Decimal`` (exact text), ``bytes``, ``None``, ``bool``, ``int``, ``float``
and ``str``; from psycopg also ``UUID``, ``ipaddress`` values (inet, cidr), JSON
documents (``dict``) and arrays (``list``, element by element). The undo row's
``context`` column names the encoding, e.g. ``serializer=json;compressor=zlib``.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import math
import uuid
import zlib
from decimal import Decimal
from typing import Any

from atx.rm.errors import UndoLogError
from atx.rm.types.image import SQLUndoLog, TableImage
from atx.rm.types.sql import SQLType

__all__ = ["DEFAULT_COMPRESS_THRESHOLD", "decode", "decode_value", "encode", "encode_value"]

DEFAULT_COMPRESS_THRESHOLD = 4096
_IP_TYPES = (
    ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Interface,
    ipaddress.IPv6Interface, ipaddress.IPv4Network, ipaddress.IPv6Network,
)  # fmt: skip
_IP_KINDS = {"Address": "address", "Interface": "interface", "Network": "network"}
_IP_MAKERS: dict[str, Any] = {
    "address": ipaddress.ip_address,
    "interface": ipaddress.ip_interface,
    "network": ipaddress.ip_network,
}
_VERSION = 1


def encode_value(value: Any) -> Any:
    """A JSON-safe form of one column value; tagged objects for non-JSON types."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$f": repr(value)}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"$td": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, set | frozenset):  # pymysql may return SET columns as sets
        return {"$set": sorted(str(v) for v in value)}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, _IP_TYPES):  # psycopg's inet / cidr
        return {"$ip": [_IP_KINDS[type(value).__name__[4:]], str(value)]}
    if isinstance(value, dict):  # psycopg's json / jsonb: the document as it is
        return {"$json": value}
    if isinstance(value, list):  # psycopg's arrays
        return {"$list": [encode_value(v) for v in value]}
    raise UndoLogError(f"cannot serialise a {type(value).__name__} value in an undo image")


def decode_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    (tag, raw), *_ = value.items()
    if tag == "$dec":
        return Decimal(raw)
    if tag == "$dt":
        return dt.datetime.fromisoformat(raw)
    if tag == "$date":
        return dt.date.fromisoformat(raw)
    if tag == "$time":
        return dt.time.fromisoformat(raw)
    if tag == "$td":
        return dt.timedelta(days=raw[0], seconds=raw[1], microseconds=raw[2])
    if tag == "$b":
        return base64.b64decode(raw)
    if tag == "$f":
        return float(raw)
    if tag == "$set":
        return set(raw)
    if tag == "$uuid":
        return uuid.UUID(raw)
    if tag == "$ip":
        return _IP_MAKERS[raw[0]](raw[1])
    if tag == "$json":
        return raw
    if tag == "$list":
        return [decode_value(v) for v in raw]
    raise UndoLogError(f"unknown value tag {tag!r} in an undo image")


def _image(image: TableImage) -> dict[str, Any]:
    return {
        "table": image.table,
        "columns": list(image.columns),
        "pk": list(image.pk_columns),
        "rows": [[encode_value(v) for v in row] for row in image.rows],
    }


def _unimage(data: dict[str, Any]) -> TableImage:
    return TableImage(
        data["table"],
        tuple(data["columns"]),
        tuple(data["pk"]),
        tuple(tuple(decode_value(v) for v in row) for row in data["rows"]),
    )


def encode(
    items: list[SQLUndoLog], compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD
) -> tuple[str, bytes]:
    """``(context, rollback_info)`` for an undo row."""
    doc = {
        "v": _VERSION,
        "items": [
            {
                "type": item.sql_type.value,
                "table": item.table,
                "before": _image(item.before),
                "after": _image(item.after),
            }
            for item in items
        ],
    }
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(raw) > compress_threshold:
        return "serializer=json;compressor=zlib", zlib.compress(raw)
    return "serializer=json", raw


def _context(context: str) -> dict[str, str]:
    pairs = (part.partition("=") for part in context.split(";") if part)
    return {key.strip(): value.strip() for key, _, value in pairs}


def decode(context: str, data: bytes) -> list[SQLUndoLog]:
    """The undo items of an undo row written by :func:`encode`."""
    options = _context(context)
    if options.get("serializer", "json") != "json":
        raise UndoLogError(f"unknown undo serializer in context {context!r}")
    compressor = options.get("compressor", "none")
    try:
        if compressor == "zlib":
            data = zlib.decompress(data)
        elif compressor != "none":
            raise UndoLogError(f"unknown undo compressor in context {context!r}")
        doc = json.loads(bytes(data).decode("utf-8"))
        return [
            SQLUndoLog(
                SQLType(item["type"]),
                item["table"],
                _unimage(item["before"]),
                _unimage(item["after"]),
            )
            for item in doc["items"]
        ]
    except (ValueError, KeyError, TypeError, zlib.error) as error:
        raise UndoLogError(f"corrupt undo log ({context}): {error}") from error
