"""The RM's Prometheus metrics, read back from its endpoint after a commit, a rollback,
a lock conflict and a dirty write (issue 16), against a real TC."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import atx.rm as rm
from atx.rm import metrics
from atx.rm.errors import GlobalLockWaitTimeout
from atx.rm.tc_client import TCClient
from atx.status import GlobalStatus
from atx.testing import free_port
from tests.rm.conftest import Database, wait_final, wait_until


class Boom(Exception):
    pass


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


@pytest.fixture
def endpoint(tc_address: str) -> Iterator[int]:
    """The application's own registry, served by ``rm.configure(metrics_port=...)``."""
    port = free_port()  # the ``port`` fixture's is the TC's
    metrics.use_registry(CollectorRegistry())
    rm.configure(
        tc_addresses=[tc_address], application_id="rm-metrics", client_id=uuid.uuid4().hex,
        metrics_port=port,
    )  # fmt: skip
    runtime = rm.ensure_runtime()
    assert runtime is not None and runtime.wait_connected(10)
    yield port
    metrics.stop_serving()


@pytest.mark.parametrize("make_db", ["sqlite"], indirect=True)
def test_counts_after_commit_rollback_conflict_and_dirty_write(db: Database, endpoint: int) -> None:
    tc: TCClient = rm.get_tc_client()  # configure() closed the fixture's client
    db.setup_accounts(2)
    conn, other = db.connect(), db.connect()
    update = db.q("UPDATE account SET balance = balance + 1 WHERE id = %s")

    # A commit: one branch registered, one phase-two commit applied.
    with rm.global_transaction("commit") as tx:
        conn.cursor().execute(update, (1,))
        conn.commit()
    wait_final(tc, tx.xid or "")
    wait_until(lambda: db.undo_rows() == 0, what="undo rows deleted")

    # A rollback.
    with pytest.raises(Boom), rm.global_transaction("rollback") as tx:
        conn.cursor().execute(update, (1,))
        conn.commit()
        raise Boom()
    wait_final(tc, tx.xid or "")

    # A lock conflict: row 2 is held by ``holder``; the second registration waits at
    # the TC for its whole patience (2 x 10 ms) and gives up: one conflict, no retry
    # (the RM asks again only of a TC that answers conflicts at once).
    with pytest.raises(Boom), rm.global_transaction("holder") as holder:
        conn.cursor().execute(update, (2,))
        conn.commit()
        with (
            pytest.raises(GlobalLockWaitTimeout),
            rm.global_transaction(
                "waiter", propagation="REQUIRES_NEW", lock_retry_interval=0.01, lock_retry_times=2
            ),
        ):
            other.cursor().execute(update, (2,))
            other.commit()
        raise Boom()
    wait_final(tc, holder.xid or "")

    # A dirty write: the row changes outside the transaction before its rollback.
    with pytest.raises(Boom), rm.global_transaction("dirty") as tx:
        conn.cursor().execute(update, (1,))
        conn.commit()
        db.run("UPDATE account SET balance = 555 WHERE id = 1")
        raise Boom()
    wait_until(lambda: tc.get_status(tx.xid or "") == GlobalStatus.ROLLBACK_FAILED, what="failed")

    values = _scrape(endpoint)
    assert values["atx_rm_branches_registered_total"] == 4
    assert values["atx_rm_phase_two_commits_total"] == 1
    assert values["atx_rm_phase_two_rollbacks_total"] == 2  # the rollback and the holder
    assert values["atx_rm_lock_conflicts_total"] == 1
    assert values["atx_rm_lock_retries_total"] == 0
    assert values["atx_rm_dirty_writes_total"] == 1
    assert values["atx_rm_phase_two_rollback_failures_total"] == 1
    assert values["atx_rm_undo_rows_pending"] == 0
    assert {f"atx_rm_deferred_calls_total{{state={s}}}" for s in metrics.DEFERRED_STATES} <= set(
        values
    )
    conn.close()
    other.close()
