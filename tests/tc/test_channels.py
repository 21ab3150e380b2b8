"""RM channels: a resource registered later on an open Attach stream."""

from __future__ import annotations

from atx.status import GlobalStatus as G
from atx.testing import wait_until
from tests.tc.conftest import RunningTC
from tests.tc.helpers import begin, commit, register, session
from tests.tc.rm_peer import ScriptedRM


def test_later_register_resources_adds_to_the_open_stream(tc: RunningTC) -> None:
    with ScriptedRM(tc.address, ["db1"]) as rm:
        attachment = rm.attachments[tc.address]
        xid = begin(tc)
        first = register(tc, xid, "db1", "t:1")
        second = register(tc, xid, "db2", "u:1")
        assert commit(tc, xid) == G.COMMITTED
        # Nobody serves db2 yet: phase two waits in its retry state.
        wait_until(lambda: session(tc, xid).status == G.COMMIT_RETRYING, what="commit retry")
        assert {c.branch_id for c in rm.commands()} == {first}

        rm.add_resources(["db2"])
        wait_until(lambda: attachment.registrations == 2, what="the second Registered")
        wait_until(lambda: session(tc, xid).status == G.COMMITTED, what="phase two of db2")
        assert second in {c.branch_id for c in rm.commands(lambda c: c.resource_id == "db2")}
        assert attachment.streams == 1  # served on the same stream, no reconnect

        # Registering an already served resource again changes nothing.
        rm.add_resources(["db1"])
        wait_until(lambda: attachment.registrations == 3, what="the third Registered")
        other = begin(tc)
        register(tc, other, "db1", "t:2")
        register(tc, other, "db2", "u:2")
        assert commit(tc, other) == G.COMMITTED
        wait_until(lambda: session(tc, other).status == G.COMMITTED, what="phase two")
        assert attachment.streams == 1
