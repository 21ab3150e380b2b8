"""The GlobalStatus state machine (Seata's), and what each request may do."""

from __future__ import annotations

from atx.errors import IllegalStatusError
from atx.status import GlobalStatus as G

__all__ = [
    "COMMIT_PHASE_TWO",
    "ROLLBACK_PHASE_TWO",
    "TRANSITIONS",
    "check_transition",
    "final_rollback_status",
    "rollback_failed_status",
    "rollback_retry_status",
]

#: Legal moves of a global session.
TRANSITIONS: dict[G, frozenset[G]] = {
    G.BEGIN: frozenset({G.COMMITTING, G.ASYNC_COMMITTING, G.ROLLBACKING, G.TIMEOUT_ROLLBACKING}),
    G.COMMITTING: frozenset({G.COMMITTED, G.COMMIT_RETRYING, G.COMMIT_FAILED}),
    G.ASYNC_COMMITTING: frozenset(
        {G.COMMITTED, G.COMMIT_RETRYING, G.COMMIT_FAILED, G.COMMIT_RETRY_TIMEOUT}
    ),
    G.COMMIT_RETRYING: frozenset({G.COMMITTED, G.COMMIT_FAILED, G.COMMIT_RETRY_TIMEOUT}),
    G.ROLLBACKING: frozenset(
        {G.ROLLBACKED, G.ROLLBACK_RETRYING, G.ROLLBACK_FAILED, G.ROLLBACK_RETRY_TIMEOUT}
    ),
    G.ROLLBACK_RETRYING: frozenset({G.ROLLBACKED, G.ROLLBACK_FAILED, G.ROLLBACK_RETRY_TIMEOUT}),
    G.TIMEOUT_ROLLBACKING: frozenset(
        {
            G.TIMEOUT_ROLLBACKED,
            G.TIMEOUT_ROLLBACK_RETRYING,
            G.TIMEOUT_ROLLBACK_FAILED,
            G.ROLLBACK_RETRY_TIMEOUT,
        }
    ),
    G.TIMEOUT_ROLLBACK_RETRYING: frozenset(
        {G.TIMEOUT_ROLLBACKED, G.TIMEOUT_ROLLBACK_FAILED, G.ROLLBACK_RETRY_TIMEOUT}
    ),
}

#: Sessions whose phase two is a commit still to finish.
COMMIT_PHASE_TWO = frozenset({G.COMMITTING, G.ASYNC_COMMITTING, G.COMMIT_RETRYING})
#: Sessions whose phase two is a rollback still to finish.
ROLLBACK_PHASE_TWO = frozenset(
    {G.ROLLBACKING, G.ROLLBACK_RETRYING, G.TIMEOUT_ROLLBACKING, G.TIMEOUT_ROLLBACK_RETRYING}
)
_TIMEOUT = frozenset({G.TIMEOUT_ROLLBACKING, G.TIMEOUT_ROLLBACK_RETRYING})


def check_transition(xid: str, current: G, new: G, action: str) -> None:
    """Raise IllegalStatusError (FAILED_PRECONDITION, naming ``current``)
    unless ``current`` may move to ``new``."""
    if new not in TRANSITIONS.get(current, frozenset()):
        raise IllegalStatusError(xid, current.name, action)


def rollback_retry_status(current: G) -> G:
    return G.TIMEOUT_ROLLBACK_RETRYING if current in _TIMEOUT else G.ROLLBACK_RETRYING


def rollback_failed_status(current: G) -> G:
    return G.TIMEOUT_ROLLBACK_FAILED if current in _TIMEOUT else G.ROLLBACK_FAILED


def final_rollback_status(current: G) -> G:
    return G.TIMEOUT_ROLLBACKED if current in _TIMEOUT else G.ROLLBACKED
