"""Two TC processes on one shared store (Redis, MariaDB) serve the same
transactions: a commit crosses nodes, a killed node's phase two is finished
by the other, and a background job runs on one node at a time."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from atx.errors import LockConflictError
from atx.status import BranchStatus
from atx.status import GlobalStatus as G
from atx.testing import wait_until
from tests.tc.rm_peer import Received, Reply, ScriptedRM, Tm, succeed
from tests.tc.tc_procs import TCStarter, locks_left, shared_store_url, start_tc

__all__ = ["shared_store_url", "start_tc"]  # fixtures used below

pytestmark = pytest.mark.slow


def test_commit_crosses_nodes(shared_store_url: str, start_tc: TCStarter) -> None:
    a = start_tc(shared_store_url, "node-a")
    b = start_tc(shared_store_url, "node-b")
    tm = Tm()
    with ScriptedRM([a.address, b.address], ["db1", "db2"], reconnect=True) as rm:
        xid = tm.begin(a.address)
        one = rm.register(b.address, xid, "t:1", "db1")
        two = rm.register(a.address, xid, "u:2", "db2")
        # Each node sees the other's locks and sessions.
        assert not rm.lockable(a.address, "t:1", "db1")
        other = tm.begin(b.address)
        with pytest.raises(LockConflictError) as conflict:
            rm.register(a.address, other, "t:1", "db1")
        assert conflict.value.holder_xid == xid
        assert tm.status(b.address, xid) == G.BEGIN

        assert tm.commit(b.address, xid) == G.COMMITTED
        wait_until(lambda: tm.status(a.address, xid) == G.COMMITTED, 30, "phase two")
        done = {(c.action, c.branch_id) for c in rm.commands()}
        assert done == {("commit", one), ("commit", two)}
        assert rm.lockable(a.address, "t:1", "db1")
        assert rm.register(a.address, other, "t:1", "db1") > 0
        assert tm.rollback(a.address, other) == G.ROLLBACKED
    assert locks_left(shared_store_url) == 0


class _Script:
    """Fail the first commits (retryable), then hold one unanswered, then succeed
    once the test says so."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.held = threading.Event()
        self.held_by = ""
        self.release = threading.Event()
        self.seen = 0
        self.lock = threading.Lock()

    def __call__(self, command: Received) -> Reply:
        with self.lock:
            self.seen += 1
            if self.seen <= self.failures:
                return BranchStatus.PHASE_TWO_COMMIT_FAILED_RETRYABLE, "not yet"
            if not self.release.is_set():
                if not self.held.is_set():
                    self.held_by = command.address
                    self.held.set()
                return None
        return succeed(command)


def test_killed_node_phase_two_is_finished_by_the_other(
    shared_store_url: str, start_tc: TCStarter
) -> None:
    nodes = {p.address: p for p in (start_tc(shared_store_url, f"node-{n}") for n in "ab")}
    a, b = nodes.values()
    tm = Tm()
    script = _Script(failures=3)
    with ScriptedRM(list(nodes), ["db1"], answer=script, reconnect=True) as rm:
        xid = tm.begin(a.address)
        branch = rm.register(a.address, xid, "t:1")
        assert tm.commit(a.address, xid) == G.COMMITTED
        assert script.held.wait(60), "phase two never reached the held attempt"
        sent = rm.commands()
        # The first attempt runs on the node that took the Commit; every retry
        # after it comes from the one node holding the retry job's lock.
        assert sent[0].address == a.address
        assert len(sent) >= 4
        assert {c.address for c in sent[1:]} == {script.held_by}
        assert all(c.branch_id == branch for c in sent)

        # Kill the node in the middle of phase two (its BranchCommit unanswered).
        victim = nodes[script.held_by]
        survivor = b if victim is a else a
        victim.kill()
        killed_at = time.time()
        script.release.set()
        wait_until(lambda: tm.status(survivor.address, xid) == G.COMMITTED, 60, "takeover")
        after = rm.commands(lambda c: c.address == survivor.address and c.action == "commit")
        assert branch in {c.branch_id for c in after}
        assert all(c.address == survivor.address for c in rm.commands(lambda c: c.time > killed_at))
    assert locks_left(shared_store_url) == 0


_CONTENDER = textwrap.dedent(
    """
    import json, random, sys, time
    from atx.tc.store.base import create_store
    url, owner, out, stop_at = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    store = create_store(url)
    held = []
    while time.time() < stop_at:
        if store.try_job_lock("contended", owner, 5000):
            start = time.time()
            time.sleep(random.uniform(0.002, 0.02))
            held.append((start, time.time()))
            store.release_job_lock("contended", owner)
        time.sleep(random.uniform(0, 0.01))
    store.close()
    with open(out, "w") as f:
        json.dump(held, f)
    """
)


def test_job_lock_is_exclusive_across_processes(shared_store_url: str, tmp_path: Path) -> None:
    stop_at = time.time() + 3.0
    outputs = [tmp_path / f"node-{i}.json" for i in range(2)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CONTENDER,
                shared_store_url,
                f"node-{i}",
                str(out),
                str(stop_at),
            ]
        )
        for i, out in enumerate(outputs)
    ]
    for proc in procs:
        assert proc.wait(60) == 0
    spans = [
        (start, end, node)
        for node, out in enumerate(outputs)
        for start, end in json.loads(out.read_text())
    ]
    assert len(spans) >= 10
    spans.sort()
    for (_s1, end1, n1), (start2, _e2, n2) in itertools.pairwise(spans):
        assert start2 >= end1, f"node-{n1} and node-{n2} held the job lock at once"
