"""The SQLite fast path of an empty transaction's Commit (``finish_if_empty``)."""

from __future__ import annotations

from pathlib import Path

from atx.status import GlobalStatus as G
from atx.tc.store.base import GlobalRecord, RowLock
from atx.tc.store.sqlite import SQLiteStore
from tests.tc.store.test_contract import new_branch


def _begun(store: SQLiteStore) -> GlobalRecord:
    tid = store.next_id()
    record = GlobalRecord(f"127.0.0.1:8091:{tid}", tid, G.BEGIN, "app", "tx", 60_000, 1, 1)
    store.insert_global(record)
    return record


def test_an_empty_session_moves_to_history(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "tc.db"))
    record = _begun(store)
    assert store.finish_if_empty(record.xid, G.BEGIN, G.COMMITTED)
    done = store.get_global(record.xid)
    assert done is not None and done.status == G.COMMITTED and done.branches == []
    assert done.application_id == "app" and done.transaction_name == "tx"
    # Already finished: a second call changes nothing.
    assert not store.finish_if_empty(record.xid, G.BEGIN, G.COMMITTED)
    store.close()


def test_a_session_with_branches_or_another_status_is_left_alone(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "tc.db"))
    with_branch = _begun(store)
    store.register_branch(new_branch(with_branch, 1), [RowLock("db1", "t", "1")])
    assert not store.finish_if_empty(with_branch.xid, G.BEGIN, G.COMMITTED)
    kept = store.get_global(with_branch.xid)
    assert kept is not None and kept.status == G.BEGIN and len(kept.branches) == 1
    rolling = _begun(store)
    store.change_status(rolling.xid, (G.BEGIN,), G.ROLLBACKING)
    assert not store.finish_if_empty(rolling.xid, G.BEGIN, G.COMMITTED)
    after = store.get_global(rolling.xid)
    assert after is not None and after.status == G.ROLLBACKING
    assert not store.finish_if_empty("127.0.0.1:8091:999999", G.BEGIN, G.COMMITTED)
    store.close()


def test_history_stays_bounded(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "tc.db"), history_size=3)
    xids = [_begun(store).xid for _ in range(5)]
    for xid in xids:
        assert store.finish_if_empty(xid, G.BEGIN, G.COMMITTED)
    assert store.get_global(xids[0]) is None and store.get_global(xids[1]) is None
    assert all(store.get_global(xid) is not None for xid in xids[2:])
    store.close()
