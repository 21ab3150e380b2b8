from __future__ import annotations

import datetime as dt
import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from atx.rm.types import SQLUndoLog, TableImage
from atx.rm.types.sql import SQLType
from atx.rm.undo.serialize import decode, encode

values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(), st.binary(),
    st.floats(allow_nan=False), st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(), st.dates(), st.times(), st.timedeltas(),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.uuids(), st.ip_addresses(),  # psycopg's uuid, inet, json / jsonb documents and arrays
    st.ip_addresses(v=4).map(lambda a: ipaddress.ip_interface(f"{a}/24")),
    st.ip_addresses(v=6).map(lambda a: ipaddress.ip_network(f"{a}/128")),
    st.dictionaries(st.text(), st.one_of(st.integers(), st.text(), st.lists(st.integers()))),
    st.lists(st.one_of(st.none(), st.integers(), st.decimals(allow_nan=False,
                                                             allow_infinity=False))),
)  # fmt: skip


@given(rows=st.lists(st.tuples(st.integers(), values, values), max_size=30))
@settings(max_examples=25, deadline=None)
def test_round_trip(rows: list[tuple[object, ...]]) -> None:
    image = TableImage("t", ("id", "a", "b"), ("id",), tuple(rows))
    item = SQLUndoLog(SQLType.UPDATE, "t", image, image)
    for threshold in (0, 10**9):
        context, data = encode([item], threshold)
        assert ("zlib" in context) == (threshold == 0)
        (back,) = decode(context, data)
        assert back == item
        assert [type(v) for r in back.before.rows for v in r] == [type(v) for r in rows for v in r]
