"""The global transactions this process launched, while they run.

A launcher makes its XID itself, from a block the TC reserved for it
(:class:`XidBlock`), so Begin costs no round trip: the transaction reaches the
TC with its first branch registration from this process, which carries the
Begin's settings (:meth:`Launched.begin_spec`). Before the XID can reach the TC
any other way (an outgoing gRPC call, ``rm.current_xid()`` handed to user
code) it is begun explicitly (:meth:`Launched.ensure_begun`). A transaction
that never reached the TC commits or rolls back without a call.

Each branch this process registers for a launched transaction is noted here,
so that the commit can tell the TC which branches' phase two (deleting undo
logs) the launcher does itself.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["BeginSpec", "Launched", "TCState", "XidBlock", "ended", "find", "launch"]


class TCState(enum.Enum):
    """What the TC knows of a launched transaction."""

    UNKNOWN = "unknown"  # nothing was sent: it has not begun there
    MAYBE = "maybe"  # a begin was sent and its answer was not a success
    BEGUN = "begun"


@dataclass(frozen=True)
class BeginSpec:
    """The Begin's settings, sent with the first registration (or a Begin naming the XID)."""

    name: str
    timeout_ms: int
    elapsed_ms: int


@dataclass
class Launched:
    """One launched global transaction, as its branches and its launcher see it."""

    xid: str
    name: str
    timeout_ms: int
    #: Sends a Begin naming the XID; set by the launcher (it knows which client to use).
    begin_at_tc: Callable[[str, BeginSpec], None]
    started: float = field(default_factory=time.monotonic)
    state: TCState = TCState.UNKNOWN
    #: (branch id, resource id) of each branch registered from this process.
    branches: list[tuple[int, str]] = field(default_factory=list)

    @property
    def begun(self) -> bool:
        return self.state is TCState.BEGUN

    def begin_spec(self) -> BeginSpec | None:
        """The settings a registration carries until the TC has surely begun it."""
        if self.state is TCState.BEGUN:
            return None
        self.state = TCState.MAYBE  # from here on the TC may know it
        return self._spec()

    def _spec(self) -> BeginSpec:
        elapsed = int((time.monotonic() - self.started) * 1000)
        return BeginSpec(self.name, self.timeout_ms, elapsed)

    def registered(self, branch_id: int, resource_id: str) -> None:
        self.state = TCState.BEGUN
        self.branches.append((branch_id, resource_id))  # atomic under the GIL

    def ensure_begun(self) -> None:
        """Begin the XID at the TC unless it surely is (one call, the first time).

        No lock: in asyncio code the call is awaited in a greenlet, and a thread
        lock held across it would stop every other task of the loop that asks.
        Two callers at once may both send the Begin, which the TC answers alike."""
        if self.begun:
            return
        self.state = TCState.MAYBE
        self.begin_at_tc(self.xid, self._spec())
        self.state = TCState.BEGUN


_launched: dict[str, Launched] = {}


def launch(transaction: Launched) -> None:
    _launched[transaction.xid] = transaction


def find(xid: str) -> Launched | None:
    """The launched transaction ``xid`` if this process launched it and it runs."""
    return _launched.get(xid)


def ended(xid: str) -> None:
    _launched.pop(xid, None)


class XidBlock:
    """XIDs made from a block of transaction ids the TC reserved for this client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prefix = ""
        self._next = 0
        self._end = 0
        #: False once the TC answered ReserveXids UNIMPLEMENTED (an older TC).
        self.supported = True

    def take(self) -> str | None:
        """The next XID, or None when the block is used up (then :meth:`fill` it)."""
        with self._lock:
            if self._next >= self._end:
                return None
            self._next += 1
            return f"{self._prefix}{self._next - 1}"

    def fill(self, prefix: str, first: int, count: int) -> None:
        with self._lock:
            self._prefix, self._next, self._end = prefix, first, first + count
