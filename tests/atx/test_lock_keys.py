"""The lock-key codec both sides share: what the RM formats, the TC parses back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atx.errors import InvalidLockKeysError
from atx.lock_keys import LockKey, format_lock_keys, parse_lock_keys, pk_string

_name = st.text(
    st.characters(blacklist_characters=":;,^", blacklist_categories=("Z", "C")), min_size=1
)


def test_format_deduplicates_in_first_seen_order() -> None:
    keys = [LockKey("t", "1"), LockKey("u", "a"), LockKey("t", "2"), LockKey("t", "1")]
    assert format_lock_keys(keys) == "t:1,2;u:a"
    assert format_lock_keys([]) == ""


def test_pk_string_joins_composite_keys_and_hexes_bytes() -> None:
    assert pk_string((1, "a")) == "1_a"
    assert pk_string((b"\x01\xff",)) == "01ff"


@given(st.lists(st.tuples(_name, _name), max_size=20))
def test_parse_inverts_format(pairs: list[tuple[str, str]]) -> None:
    keys = [LockKey(t.strip(), p.strip()) for t, p in pairs if t.strip() and p.strip()]
    unique = list(dict.fromkeys(keys))
    tables = list(dict.fromkeys(k.table for k in unique))
    grouped = sorted(unique, key=lambda k: tables.index(k.table))  # stable: keys keep order
    assert parse_lock_keys(format_lock_keys(keys)) == grouped


@pytest.mark.parametrize("bad", ["t", ":1", "t:", "t:1,,2", "t^^^x:1", "t:1^^^2"])
def test_malformed_lock_keys_are_refused(bad: str) -> None:
    with pytest.raises(InvalidLockKeysError) as caught:
        parse_lock_keys(bad)
    assert caught.value.code == "INVALID_LOCK_KEYS"
