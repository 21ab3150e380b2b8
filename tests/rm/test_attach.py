"""The RM's Attach stream merges queued branch results into one message.

The merging is checked on the request generator itself: the messages it
yields are exactly what gRPC sends (the end-to-end path, a real TC taking
batched commands and results, runs in tests/tc/test_channels.py and in
every AT test here).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from atx.rm.attach import STOP, AttachStream, Reply, register_message
from atx.rm.config import Config
from atx.v1 import resource_manager_pb2 as rm_pb2


def _resource_ids() -> frozenset[str]:
    return frozenset({"db1"})


class _NoInbound:
    def on_commit(self, reply: Reply, command: rm_pb2.BranchCommand) -> None:
        raise AssertionError("no command is sent in these tests")

    on_rollback = on_commit


def _result(n: int) -> rm_pb2.AttachRequest:
    return rm_pb2.AttachRequest(
        branch_result=rm_pb2.BranchResult(request_id=f"r{n}", xid="x", branch_id=n)
    )


def _sent(batch_results: bool, queued: list[Any]) -> list[rm_pb2.AttachRequest]:
    config = Config(tc_addresses=("127.0.0.1:1",))
    stream = AttachStream("127.0.0.1:1", config, threading.Event(), _resource_ids, _NoInbound())
    stream.batch_results = batch_results
    stream.announced = _resource_ids()
    for item in [*queued, STOP]:
        stream.outbox.put(item)
    requests: Iterator[rm_pb2.AttachRequest] = stream._requests(
        register_message(config, frozenset())
    )
    next(requests)  # the RegisterResources
    return list(requests)


def test_queued_results_go_out_as_one_batch() -> None:
    heartbeat = rm_pb2.AttachRequest(heartbeat=rm_pb2.Heartbeat(sent_time_ms=1))
    sent = _sent(True, [_result(1), _result(2), _result(3), heartbeat, _result(4)])
    kinds = [m.WhichOneof("kind") for m in sent]
    # Order is kept: the heartbeat ends the first batch; a lone result stays plain.
    assert kinds == ["branch_results", "heartbeat", "branch_result"]
    assert [r.branch_id for r in sent[0].branch_results.results] == [1, 2, 3]
    assert sent[2].branch_result.branch_id == 4


def test_a_tc_without_batches_gets_one_result_per_message() -> None:
    sent = _sent(False, [_result(1), _result(2), _result(3)])
    assert [m.WhichOneof("kind") for m in sent] == ["branch_result"] * 3
