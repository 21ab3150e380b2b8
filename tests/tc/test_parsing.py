"""XIDs, lock keys and the status state machine, without a server."""

from __future__ import annotations

import pytest

from atx.errors import IllegalStatusError, InvalidArgumentError
from atx.status import GlobalStatus as G
from atx.tc.lock_keys import row_locks
from atx.tc.session import TRANSITIONS, check_transition
from atx.tc.store.base import RowLock
from atx.tc.xid import make_xid, parse_xid


def test_xid_round_trip() -> None:
    xid = make_xid("10.0.0.1", 8091, 42)
    parsed = parse_xid(xid)
    assert (parsed.host, parsed.port, parsed.transaction_id) == ("10.0.0.1", 8091, 42)
    assert str(parsed) == xid
    assert parse_xid("::1:8091:7").host == "::1"


@pytest.mark.parametrize("bad", ["", "x", "a:b:c", "h:1:-1", "h:0:1", "h p:1:1", "h:1:1" * 40])
def test_bad_xids(bad: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_xid(bad)


def test_lock_keys() -> None:
    rows = row_locks("db", "t:1,2;u:a_b;t:2;")
    assert rows == [RowLock("db", "t", "1"), RowLock("db", "t", "2"), RowLock("db", "u", "a_b")]
    assert rows[0].row_key == "db^^^t^^^1"
    assert row_locks("db", "") == []


def test_state_machine() -> None:
    check_transition("x", G.BEGIN, G.ASYNC_COMMITTING, "commit")
    with pytest.raises(IllegalStatusError) as caught:
        check_transition("x", G.ROLLBACKING, G.ASYNC_COMMITTING, "commit")
    assert caught.value.status == "ROLLBACKING"
    for final in (G.COMMITTED, G.ROLLBACKED, G.TIMEOUT_ROLLBACKED):
        assert final not in TRANSITIONS  # nothing leaves a final status
