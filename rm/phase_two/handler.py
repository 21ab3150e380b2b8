"""Phase two as the TC asks it of this RM: BranchCommit and BranchRollback.

* ``branch_commit`` is answered PHASE_TWO_COMMITTED at once; the undo rows are
  deleted in the background (:class:`~atx.rm.phase_two.undo_deleter.UndoDeleter`).
* ``branch_rollback`` replays the undo log on a fresh raw connection in a small
  thread pool: PHASE_TWO_ROLLBACKED, or ROLLBACK_FAILED_UNRETRYABLE on a dirty
  write, or ROLLBACK_FAILED_RETRYABLE on any other error (the TC retries).

Both are idempotent: a deleted undo row deletes nothing, and a rolled-back
branch has no undo row left (undo then leaves the anti-suspension placeholder).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from atx import tracing
from atx.logs import bind_log_branch
from atx.rm.attach import Reply
from atx.rm.errors import DirtyWriteError
from atx.rm.metrics import get_metrics
from atx.rm.phase_two.undo_deleter import UndoDeleter
from atx.rm.resource import get_resource
from atx.status import BranchStatus
from atx.v1 import resource_manager_pb2 as rm_pb2

__all__ = ["PhaseTwoHandler", "result_message"]

logger = logging.getLogger(__name__)


def result_message(
    command: rm_pb2.BranchCommand, status: BranchStatus, message: str = ""
) -> rm_pb2.AttachRequest:
    return rm_pb2.AttachRequest(
        branch_result=rm_pb2.BranchResult(
            request_id=command.request_id,
            xid=command.xid,
            branch_id=command.branch_id,
            status=int(status),  # type: ignore[arg-type]
            message=message,
        )
    )


@contextlib.contextmanager
def _observed(name: str, command: rm_pb2.BranchCommand) -> Iterator[None]:
    """The command's XID and branch id on its log records, and its span, child of the TC's."""
    with (
        bind_log_branch(command.xid, command.branch_id),
        tracing.span(
            name,
            xid=command.xid,
            branch_id=command.branch_id,
            parent=command.trace_context,
            server=True,
            resource_id=command.resource_id,
        ),
    ):
        yield


class PhaseTwoHandler:
    """The RM's inbound side: applies phase two to the registered resources."""

    def __init__(self, deleter: UndoDeleter, rollback_workers: int = 4) -> None:
        self.deleter = deleter
        self._pool = ThreadPoolExecutor(
            max_workers=rollback_workers, thread_name_prefix="atx-rm-rollback"
        )

    def on_commit(self, reply: Reply, command: rm_pb2.BranchCommand) -> None:
        with _observed("atx.rm.branch_commit", command):
            self.deleter.add(command.resource_id, command.xid, command.branch_id)
            get_metrics().commits.inc()
            logger.debug("branch %s of %s committed", command.branch_id, command.xid)
            reply(result_message(command, BranchStatus.PHASE_TWO_COMMITTED))

    def commit_here(self, xid: str, branches: Iterable[tuple[int, str]]) -> None:
        """Phase two of branches the TC left to this process (their launcher):
        the same undo deletion a BranchCommit would have queued, without one."""
        metrics = get_metrics()
        for branch_id, resource_id in branches:
            # The same span and log record as a delivered BranchCommit's.
            with (
                bind_log_branch(xid, branch_id),
                tracing.span(
                    "atx.rm.branch_commit",
                    xid=xid,
                    branch_id=branch_id,
                    resource_id=resource_id,
                    by_launcher=True,
                ),
            ):
                self.deleter.add(resource_id, xid, branch_id)
                metrics.commits.inc()
                logger.debug("branch %s of %s committed by its launcher", branch_id, xid)

    def on_rollback(self, reply: Reply, command: rm_pb2.BranchCommand) -> None:
        self._pool.submit(self._rollback, reply, command)

    def _rollback(self, reply: Reply, command: rm_pb2.BranchCommand) -> None:
        with _observed("atx.rm.branch_rollback", command):
            status, message = self._undo(command)
            tracing.tag(outcome=status.name)
            reply(result_message(command, status, message))

    def _undo(self, command: rm_pb2.BranchCommand) -> tuple[BranchStatus, str]:
        xid, branch_id = command.xid, command.branch_id
        metrics = get_metrics()
        try:
            resource = get_resource(command.resource_id)
            resource.apply(lambda connection: resource.undo.undo(connection, xid, branch_id))
        except DirtyWriteError as error:
            logger.error("branch %s of %s cannot be rolled back: %s", branch_id, xid, error)
            metrics.rolled_back(ok=False, dirty=True)
            return BranchStatus.PHASE_TWO_ROLLBACK_FAILED_UNRETRYABLE, str(error)
        except Exception as error:
            logger.warning(
                "rollback of branch %s of %s failed, the TC will retry: %s", branch_id, xid, error
            )
            metrics.rolled_back(ok=False)
            return BranchStatus.PHASE_TWO_ROLLBACK_FAILED_RETRYABLE, str(error)
        logger.info("branch %s of %s rolled back", branch_id, xid)
        metrics.rolled_back(ok=True)
        return BranchStatus.PHASE_TWO_ROLLBACKED, ""

    def close(self) -> None:
        self._pool.shutdown(wait=True)
