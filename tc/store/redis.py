"""The Redis session store: state shared by every TC node on one Redis.

Every key lives under the URL's ``key_prefix`` (``p`` below):

- ``p:seq``: the id sequence (INCR).
- ``p:g:<xid>``: hash of an active global session; ``p:gb:<xid>``: hash of
  its branches (branch id -> JSON, plus the registration counter ``#``).
- ``p:active``: sorted set of active xids by begin time; ``p:st:<status>``:
  the xids in one status by ``next_retry_ms`` (what the background jobs scan).
- ``p:l:<row key>``: hash of one row lock; ``p:gl:<xid>``: set of the row
  keys an xid holds; ``p:locks``: every row key (lexicographic listing).
- ``p:h:<xid>``/``p:hb:<xid>``: a finished session and its branches;
  ``p:hist`` (by finish order, capped to the history size) and
  ``p:hbegin`` (by begin time) index them.
- ``p:job:<name>``: a job lock (owner, with a PX expiry).
- ``p:audit``: audit entries by id; ``p:audit:all``/``p:audit:x:<xid>``.

Every decision (status CAS, registration with its locks, finishing, job
locks) is one Lua script, so it is atomic across nodes. The scripts build
key names from the prefix, which suits a standalone Redis or a primary
with replicas (not Redis Cluster).

Durability: the TC keeps no state of its own, so everything it has
acknowledged survives a ``kill -9`` of the TC. Surviving a crash of Redis
itself depends on the operator's persistence settings (``appendonly yes``
with ``appendfsync everysec`` or ``always``).
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, TypeVar, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from atx.clock import now_ms
from atx.dsn import parse_redis_url
from atx.errors import (
    GlobalTransactionNotFoundError,
    IllegalStatusError,
    UnavailableError,
)
from atx.status import BranchStatus, BranchType, GlobalStatus
from atx.tc.store.base import (
    AuditRecord,
    BranchRecord,
    GlobalRecord,
    GlobalSessionFilter,
    LockFilter,
    LockRecord,
    Page,
    RowLock,
    decode_page_token,
    encode_page_token,
    invalid_page_token,
    lock_conflict,
    register_store,
)
from atx.tc.store.redis_listing import RedisListing

__all__ = ["RedisSessionStore"]

T = TypeVar("T")

#: Ids reserved per INCRBY of the shared sequence.
_ID_BLOCK = 100

_GLOBAL_FIELDS = (
    "xid",
    "transaction_id",
    "status",
    "application_id",
    "transaction_name",
    "timeout_ms",
    "begin_time_ms",
    "modified_time_ms",
    "retry_stopped",
    "retry_count",
    "next_retry_ms",
)

# change_status: ARGV = prefix, xid, expected (comma list), new, release, now,
# next_retry_ms ("" = keep), retry_count ("" = keep)
_CHANGE_STATUS = """
local p, xid = ARGV[1], ARGV[2]
local g = p .. 'g:' .. xid
local cur = redis.call('HGET', g, 'status')
if not cur then return false end
local ok = false
for s in string.gmatch(ARGV[3], '[^,]+') do if s == cur then ok = true end end
if not ok then return false end
redis.call('HSET', g, 'status', ARGV[4], 'modified_time_ms', ARGV[6])
if ARGV[7] ~= '' then redis.call('HSET', g, 'next_retry_ms', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSET', g, 'retry_count', ARGV[8]) end
if cur ~= ARGV[4] then redis.call('ZREM', p .. 'st:' .. cur, xid) end
redis.call('ZADD', p .. 'st:' .. ARGV[4], redis.call('HGET', g, 'next_retry_ms'), xid)
if ARGV[5] == '1' then
  local held = p .. 'gl:' .. xid
  for _, row in ipairs(redis.call('SMEMBERS', held)) do
    redis.call('DEL', p .. 'l:' .. row)
    redis.call('ZREM', p .. 'locks', row)
  end
  redis.call('DEL', held)
end
return redis.call('HGETALL', g)
"""

# register_branch: ARGV = prefix, xid, branch id, branch JSON, transaction id,
# now, then (row key, resource id, table, pk) per row.
# Returns {'ok'} | {'nf'} | {'st', status} | {'conflict', holder, row, holder status}.
_REGISTER_BRANCH = """
local p, xid, bid = ARGV[1], ARGV[2], ARGV[3]
local g = p .. 'g:' .. xid
local status = redis.call('HGET', g, 'status')
if not status then status = redis.call('HGET', p .. 'h:' .. xid, 'status') end
if not status then return {'nf'} end
if status ~= '1' then return {'st', status} end
local fresh = {}
for i = 7, #ARGV, 4 do
  local row = ARGV[i]
  local holder = redis.call('HGET', p .. 'l:' .. row, 'xid')
  if holder and holder ~= xid then
    local hs = redis.call('HGET', p .. 'g:' .. holder, 'status') or '0'
    return {'conflict', holder, row, hs}
  end
  if not holder then fresh[#fresh + 1] = i end
end
for _, i in ipairs(fresh) do
  local row = ARGV[i]
  redis.call('HSET', p .. 'l:' .. row, 'xid', xid, 'transaction_id', ARGV[5],
    'branch_id', bid, 'resource_id', ARGV[i + 1], 'table_name', ARGV[i + 2],
    'pk', ARGV[i + 3], 'created_time_ms', ARGV[6])
  redis.call('SADD', p .. 'gl:' .. xid, row)
  redis.call('ZADD', p .. 'locks', 0, row)
end
local seq = redis.call('HINCRBY', p .. 'gb:' .. xid, '#', 1)
local branch = cjson.decode(ARGV[4])
branch['seq'] = tostring(seq)
redis.call('HSET', p .. 'gb:' .. xid, bid, cjson.encode(branch))
return {'ok'}
"""

# update_branch_status: ARGV = prefix, xid, branch id, status, now
_UPDATE_BRANCH = """
local key = ARGV[1] .. 'gb:' .. ARGV[2]
local raw = redis.call('HGET', key, ARGV[3])
if not raw then return 0 end
local branch = cjson.decode(raw)
branch['status'] = ARGV[4]
branch['modified_time_ms'] = ARGV[5]
redis.call('HSET', key, ARGV[3], cjson.encode(branch))
return 1
"""

# update_global: ARGV = prefix, xid, now, then field/value pairs
_UPDATE_GLOBAL = """
local g = ARGV[1] .. 'g:' .. ARGV[2]
if redis.call('EXISTS', g) == 0 then return false end
redis.call('HSET', g, 'modified_time_ms', ARGV[3])
for i = 4, #ARGV, 2 do redis.call('HSET', g, ARGV[i], ARGV[i + 1]) end
local status, due = unpack(redis.call('HMGET', g, 'status', 'next_retry_ms'))
redis.call('ZADD', ARGV[1] .. 'st:' .. status, due, ARGV[2])
return redis.call('HGETALL', g)
"""

# Shared Lua: release every lock of xid, or only those of one branch.
_RELEASE_FN = """
local function release(p, xid, bid)
  local held = p .. 'gl:' .. xid
  local n = 0
  for _, row in ipairs(redis.call('SMEMBERS', held)) do
    local lk = p .. 'l:' .. row
    if bid == '' or redis.call('HGET', lk, 'branch_id') == bid then
      if redis.call('HGET', lk, 'xid') == xid then
        redis.call('DEL', lk)
        redis.call('ZREM', p .. 'locks', row)
      end
      redis.call('SREM', held, row)
      n = n + 1
    end
  end
  return n
end
"""

# release_locks: ARGV = prefix, xid, branch id or ""
_RELEASE_LOCKS = _RELEASE_FN + "return release(ARGV[1], ARGV[2], ARGV[3])"

# Shared Lua: move a session to the history with its final status (see
# base.history_branch_status: the branch statuses other than ``p1failed`` are
# rewritten as ``committed`` unless it is 'skip'). Returns 0 if xid is not active.
_FINISH_FN = """
local function finish(p, xid, final, now, size, committed, p1failed)
  local g = p .. 'g:' .. xid
  local cur = redis.call('HGET', g, 'status')
  if not cur then return 0 end
  local begin = redis.call('HGET', g, 'begin_time_ms')
  release(p, xid, '')
  redis.call('ZREM', p .. 'active', xid)
  redis.call('ZREM', p .. 'st:' .. cur, xid)
  if size <= 0 then
    redis.call('DEL', g, p .. 'gb:' .. xid)
    return 1
  end
  redis.call('HSET', g, 'status', final, 'modified_time_ms', now)
  redis.call('RENAME', g, p .. 'h:' .. xid)
  if redis.call('EXISTS', p .. 'gb:' .. xid) == 1 then
    local hb = p .. 'hb:' .. xid
    redis.call('RENAME', p .. 'gb:' .. xid, hb)
    if committed ~= 'skip' then
      local all = redis.call('HGETALL', hb)
      for i = 1, #all, 2 do
        if all[i] ~= '#' then
          local branch = cjson.decode(all[i + 1])
          if branch['status'] ~= p1failed then
            branch['status'] = committed
            redis.call('HSET', hb, all[i], cjson.encode(branch))
          end
        end
      end
    end
  end
  local order = redis.call('INCR', p .. 'hseq')
  redis.call('ZADD', p .. 'hist', order, xid)
  redis.call('ZADD', p .. 'hbegin', begin, xid)
  local extra = redis.call('ZCARD', p .. 'hist') - size
  if extra > 0 then
    for _, old in ipairs(redis.call('ZRANGE', p .. 'hist', 0, extra - 1)) do
      redis.call('DEL', p .. 'h:' .. old, p .. 'hb:' .. old)
      redis.call('ZREM', p .. 'hbegin', old)
    end
    redis.call('ZREMRANGEBYRANK', p .. 'hist', 0, extra - 1)
  end
  return 1
end
"""

# finish_global: ARGV = prefix, xid, final status, now, history size, and the
# branch statuses to rewrite as committed in history ("skip" = keep; see
# base.history_branch_status): committed, phase-one-failed
_FINISH_GLOBAL = (
    _RELEASE_FN
    + _FINISH_FN
    + "return finish(ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7])"
)

# Shared Lua: the session (active, else finished) as {verdict, hash} for a
# compare-and-set that did not match: {'nf'} when it is unknown.
_NOT_BEGUN_FN = """
local function not_begun(p, xid)
  local h = redis.call('HGETALL', p .. 'g:' .. xid)
  if #h == 0 then h = redis.call('HGETALL', p .. 'h:' .. xid) end
  if #h == 0 then return {'nf'} end
  return {'no', h}
end
"""

# end_begun: one decision on a session in Begin, in one round trip (Commit and
# Rollback). ARGV = prefix, xid, now, the status to move to, next_retry_ms, the
# final status when it has no branches, history size, committed, p1failed
# (as finish). A session without branches goes straight to the history:
# {'done'}; one with branches moves to the new status (Commit releases its
# locks in the same step: ARGV[10] = '1'): {'moved', hash, branches hash};
# else {'no', hash} or {'nf'}.
_END_BEGUN = (
    _RELEASE_FN
    + _FINISH_FN
    + _NOT_BEGUN_FN
    + """
local p, xid = ARGV[1], ARGV[2]
local g = p .. 'g:' .. xid
if redis.call('HGET', g, 'status') ~= '1' then return not_begun(p, xid) end
if redis.call('EXISTS', p .. 'gb:' .. xid) == 0 then
  finish(p, xid, ARGV[6], ARGV[3], tonumber(ARGV[7]), ARGV[8], ARGV[9])
  return {'done'}
end
redis.call('HSET', g, 'status', ARGV[4], 'modified_time_ms', ARGV[3], 'next_retry_ms', ARGV[5])
redis.call('ZREM', p .. 'st:1', xid)
redis.call('ZADD', p .. 'st:' .. ARGV[4], ARGV[5], xid)
if ARGV[10] == '1' then release(p, xid, '') end
return {'moved', redis.call('HGETALL', g), redis.call('HGETALL', p .. 'gb:' .. xid)}
"""
)

# delete_global: ARGV = prefix, xid
_DELETE_GLOBAL = (
    _RELEASE_FN
    + """
local p, xid = ARGV[1], ARGV[2]
local cur = redis.call('HGET', p .. 'g:' .. xid, 'status')
local found = 0
if cur then
  redis.call('ZREM', p .. 'st:' .. cur, xid)
  found = 1
end
release(p, xid, '')
found = found + redis.call('DEL', p .. 'h:' .. xid)
redis.call('DEL', p .. 'g:' .. xid, p .. 'gb:' .. xid, p .. 'hb:' .. xid)
redis.call('ZREM', p .. 'active', xid)
redis.call('ZREM', p .. 'hist', xid)
redis.call('ZREM', p .. 'hbegin', xid)
return found
"""
)

# try_job_lock: KEYS = lock key; ARGV = owner, ttl ms
_TRY_JOB_LOCK = """
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# release_job_lock: KEYS = lock key; ARGV = owner
_RELEASE_JOB_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _pairs(flat: list[str] | dict[str, str]) -> dict[str, str]:
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _global_from(h: dict[str, str]) -> GlobalRecord:
    return GlobalRecord(
        xid=h["xid"],
        transaction_id=int(h["transaction_id"]),
        status=GlobalStatus(int(h["status"])),
        application_id=h.get("application_id", ""),
        transaction_name=h.get("transaction_name", ""),
        timeout_ms=int(h["timeout_ms"]),
        begin_time_ms=int(h["begin_time_ms"]),
        modified_time_ms=int(h["modified_time_ms"]),
        retry_stopped=h.get("retry_stopped", "0") == "1",
        retry_count=int(h.get("retry_count", "0")),
        next_retry_ms=int(h.get("next_retry_ms", "0")),
    )


def _global_hash(r: GlobalRecord) -> dict[str, str]:
    return {
        "xid": r.xid,
        "transaction_id": str(r.transaction_id),
        "status": str(int(r.status)),
        "application_id": r.application_id,
        "transaction_name": r.transaction_name,
        "timeout_ms": str(r.timeout_ms),
        "begin_time_ms": str(r.begin_time_ms),
        "modified_time_ms": str(r.modified_time_ms),
        "retry_stopped": "1" if r.retry_stopped else "0",
        "retry_count": str(r.retry_count),
        "next_retry_ms": str(r.next_retry_ms),
    }


def _branch_json(b: BranchRecord) -> str:
    # Every value a string: Lua's cjson would round large numbers.
    return json.dumps(
        {
            "branch_id": str(b.branch_id),
            "xid": b.xid,
            "transaction_id": str(b.transaction_id),
            "resource_id": b.resource_id,
            "branch_type": str(int(b.branch_type)),
            "status": str(int(b.status)),
            "lock_keys": b.lock_keys,
            "application_data": b.application_data,
            "client_id": b.client_id,
            "begin_time_ms": str(b.begin_time_ms),
            "modified_time_ms": str(b.modified_time_ms),
        }
    )


def _branches_from(h: dict[str, str]) -> list[BranchRecord]:
    rows = [json.loads(v) for k, v in h.items() if k != "#"]
    rows.sort(key=lambda d: (int(d.get("seq", "0")), int(d["branch_id"])))
    return [
        BranchRecord(
            branch_id=int(d["branch_id"]),
            xid=d["xid"],
            transaction_id=int(d["transaction_id"]),
            resource_id=d["resource_id"],
            branch_type=BranchType(int(d["branch_type"])),
            status=BranchStatus(int(d["status"])),
            lock_keys=d["lock_keys"],
            application_data=d["application_data"],
            client_id=d["client_id"],
            begin_time_ms=int(d["begin_time_ms"]),
            modified_time_ms=int(d["modified_time_ms"]),
        )
        for d in rows
    ]


def _lock_from(row_key: str, h: dict[str, str]) -> LockRecord:
    return LockRecord(
        row_key=row_key,
        xid=h["xid"],
        transaction_id=int(h["transaction_id"]),
        branch_id=int(h["branch_id"]),
        resource_id=h["resource_id"],
        table_name=h["table_name"],
        pk=h["pk"],
        created_time_ms=int(h["created_time_ms"]),
    )


class RedisSessionStore:
    """A :class:`~tc.store.base.SessionStore` on Redis (redis-py)."""

    #: Every method is one round trip or a few, and no script waits on anything:
    #: the TC may call it on its event loop when a request is alone (tc/runner.py).
    inline_when_idle = True

    def __init__(self, url: str, history_size: int = 1000) -> None:
        target = parse_redis_url(url)
        self._p = target.key_prefix
        self._history_size = history_size
        self._redis: redis.Redis = redis.Redis.from_url(
            target.url,
            decode_responses=True,
            socket_connect_timeout=5,
            socket_timeout=30,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 5),
            retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        )
        self._redis.ping()
        self._id_lock = threading.Lock()
        self._next_id = self._id_limit = 0
        reg = self._redis.register_script
        self._change_status = reg(_CHANGE_STATUS)
        self._register_branch = reg(_REGISTER_BRANCH)
        self._update_branch = reg(_UPDATE_BRANCH)
        self._update_global = reg(_UPDATE_GLOBAL)
        self._release_locks = reg(_RELEASE_LOCKS)
        self._finish_global = reg(_FINISH_GLOBAL)
        self._end_begun = reg(_END_BEGUN)
        self._delete_global = reg(_DELETE_GLOBAL)
        self._try_job_lock = reg(_TRY_JOB_LOCK)
        self._release_job_lock = reg(_RELEASE_JOB_LOCK)
        self._listing = RedisListing(self._redis, self._p, _global_from, _lock_from)

    # --- identity -------------------------------------------------------------
    def next_id(self) -> int:
        # Ids come from blocks reserved with one INCRBY (shared by every node), so
        # that Begin and BranchRegister cost one round trip each, not two; a block
        # left unused when the process ends is skipped, as the SQLite store does.
        with self._id_lock:
            if self._next_id >= self._id_limit:
                top = int(self._redis.incrby(self._p + "seq", _ID_BLOCK))
                self._next_id, self._id_limit = top - _ID_BLOCK + 1, top + 1
            self._next_id += 1
            return self._next_id - 1

    def reserve_ids(self, count: int) -> tuple[int, int]:
        top = int(self._redis.incrby(self._p + "seq", count))
        return top - count + 1, count

    # --- global sessions ------------------------------------------------------
    def insert_global(self, record: GlobalRecord) -> None:
        p, xid = self._p, record.xid
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(p + "g:" + xid, mapping=_global_hash(record))  # type: ignore[arg-type]
            pipe.zadd(p + "active", {xid: record.begin_time_ms})
            pipe.zadd(f"{p}st:{int(record.status)}", {xid: record.next_retry_ms})
            pipe.execute()

    def get_global(self, xid: str, with_branches: bool = True) -> GlobalRecord | None:
        # One round trip: the active and the finished keys together (MULTI: a
        # session finishing meanwhile is seen on one side or the other, not neither).
        p = self._p
        with self._redis.pipeline(transaction=True) as pipe:
            for kind in ("g:", "h:"):
                pipe.hgetall(p + kind + xid)
                if with_branches:
                    pipe.hgetall(p + kind.replace(":", "b:") + xid)
            replies = pipe.execute()
        if not with_branches:
            replies = [replies[0], {}, replies[1], {}]
        head, branches, old_head, old_branches = replies
        if not head:
            head, branches = old_head, old_branches
            if not head:
                return None
        record = _global_from(head)
        if with_branches:
            record.branches = _branches_from(branches)
        return record

    def change_status(
        self,
        xid: str,
        expected: Collection[GlobalStatus],
        new: GlobalStatus,
        *,
        release_locks: bool = False,
        next_retry_ms: int | None = None,
        retry_count: int | None = None,
    ) -> GlobalRecord | None:
        args: list[str | int] = [
            self._p,
            xid,
            ",".join(str(int(s)) for s in expected) or "-",
            int(new),
            "1" if release_locks else "0",
            now_ms(),
            "" if next_retry_ms is None else next_retry_ms,
            "" if retry_count is None else retry_count,
        ]
        result = self._change_status(args=args)
        if not result:
            return None
        return _global_from(_pairs(result))

    def update_global(
        self,
        xid: str,
        *,
        retry_stopped: bool | None = None,
        next_retry_ms: int | None = None,
        retry_count: int | None = None,
    ) -> GlobalRecord | None:
        args: list[Any] = [self._p, xid, now_ms()]
        if retry_stopped is not None:
            args += ["retry_stopped", "1" if retry_stopped else "0"]
        if next_retry_ms is not None:
            args += ["next_retry_ms", next_retry_ms]
        if retry_count is not None:
            args += ["retry_count", retry_count]
        result = self._update_global(args=args)
        if not result:
            return None
        return _global_from(_pairs(result))

    def find_globals(
        self,
        statuses: Collection[GlobalStatus],
        *,
        due_before_ms: int | None = None,
        limit: int = 100,
    ) -> list[GlobalRecord]:
        # Each status set is scored by next_retry_ms: the due ones come first.
        high: int | str = "+inf" if due_before_ms is None else due_before_ms
        found: list[GlobalRecord] = []
        for status in set(statuses):
            xids = cast(
                list[str],
                self._redis.zrangebyscore(
                    f"{self._p}st:{int(status)}", "-inf", high, start=0, num=limit
                ),
            )
            found += [r for r in self._load_globals(xids, history=False) if r.status == status]
        found.sort(key=lambda r: (r.begin_time_ms, r.xid))
        found = found[:limit]
        if found:
            with self._redis.pipeline(transaction=False) as pipe:
                for record in found:
                    pipe.hgetall(self._p + "gb:" + record.xid)
                for record, branches in zip(found, pipe.execute(), strict=True):
                    record.branches = _branches_from(branches)
        return found

    def _load_globals(self, xids: Iterable[str], history: bool) -> list[GlobalRecord]:
        prefix = self._p + ("h:" if history else "g:")
        with self._redis.pipeline(transaction=False) as pipe:
            for xid in xids:
                pipe.hgetall(prefix + xid)
            return [_global_from(h) for h in pipe.execute() if h]

    def finish_global(self, xid: str, final_status: GlobalStatus) -> None:
        committed = final_status == GlobalStatus.COMMITTED
        args: list[str | int] = [self._p, xid, int(final_status), now_ms(), self._history_size]
        args.append(int(BranchStatus.PHASE_TWO_COMMITTED) if committed else "skip")
        args.append(int(BranchStatus.PHASE_ONE_FAILED))
        self._finish_global(args=args)

    def end_begun(
        self,
        xid: str,
        new: GlobalStatus,
        next_retry_ms: int,
        final_if_empty: GlobalStatus,
        *,
        release_locks: bool = False,
    ) -> tuple[GlobalRecord | None, bool]:
        """Commit's or Rollback's decision in one round trip (a fast path the
        coordinator uses when a store has it): a session in Begin without
        branches is finished with ``final_if_empty`` at once: ``(None, True)``;
        one with branches moves to ``new`` (with ``next_retry_ms``, its locks
        released if asked): ``(record with branches, True)``; a session in another
        status is left alone: ``(record without branches, False)``, or
        ``(None, False)`` when it does not exist."""
        committed = final_if_empty == GlobalStatus.COMMITTED
        args: list[str | int] = [
            self._p,
            xid,
            now_ms(),
            int(new),
            next_retry_ms,
            int(final_if_empty),
            self._history_size,
            int(BranchStatus.PHASE_TWO_COMMITTED) if committed else "skip",
            int(BranchStatus.PHASE_ONE_FAILED),
            "1" if release_locks else "0",
        ]
        result = cast(list[Any], self._end_begun(args=args))
        verdict = result[0]
        if verdict == "done":
            return None, True
        if verdict == "nf":
            return None, False
        record = _global_from(_pairs(result[1]))
        if verdict == "moved":
            record.branches = _branches_from(_pairs(result[2]))
            return record, True
        return record, False

    def delete_global(self, xid: str) -> bool:
        return bool(self._delete_global(args=[self._p, xid]))

    def list_globals(
        self, flt: GlobalSessionFilter, page_size: int, page_token: str
    ) -> Page[GlobalRecord]:
        return self._listing.list_globals(flt, page_size, page_token)

    # --- branches and locks -------------------------------------------------
    def register_branch(self, branch: BranchRecord, rows: Sequence[RowLock]) -> None:
        args: list[Any] = [
            self._p,
            branch.xid,
            branch.branch_id,
            _branch_json(branch),
            branch.transaction_id,
            now_ms(),
        ]
        for row in {r.row_key: r for r in rows}.values():
            args += [row.row_key, row.resource_id, row.table_name, row.pk]
        result = cast(list[str], self._register_branch(args=args))
        verdict = result[0]
        if verdict == "ok":
            return
        if verdict == "nf":
            raise GlobalTransactionNotFoundError(branch.xid)
        if verdict == "st":
            status = GlobalStatus(int(result[1])).name
            raise IllegalStatusError(branch.xid, status, "register a branch in")
        raise lock_conflict(result[1], result[2], GlobalStatus(int(result[3])))

    def update_branch_status(self, xid: str, branch_id: int, status: BranchStatus) -> bool:
        args: list[str | int] = [self._p, xid, branch_id, int(status), now_ms()]
        return bool(self._update_branch(args=args))

    def release_locks(self, xid: str, branch_id: int | None = None) -> int:
        args: list[str | int] = [self._p, xid, "" if branch_id is None else branch_id]
        return int(cast(int, self._release_locks(args=args)))

    def query_locks(self, rows: Sequence[RowLock], xid: str = "") -> str | None:
        with self._redis.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.hget(self._p + "l:" + row.row_key, "xid")
            for holder in pipe.execute():
                if holder and holder != xid:
                    return cast(str, holder)
        return None

    def list_locks(self, flt: LockFilter, page_size: int, page_token: str) -> Page[LockRecord]:
        return self._listing.list_locks(flt, page_size, page_token)

    # --- cluster --------------------------------------------------------------
    def try_job_lock(self, name: str, owner: str, ttl_ms: int) -> bool:
        return bool(self._try_job_lock(keys=[self._p + "job:" + name], args=[owner, ttl_ms]))

    def release_job_lock(self, name: str, owner: str) -> None:
        self._release_job_lock(keys=[self._p + "job:" + name], args=[owner])

    # --- audit ----------------------------------------------------------------
    def append_audit(self, record: AuditRecord) -> AuditRecord:
        p = self._p
        entry_id = int(self._redis.incr(p + "audit:seq"))
        stored = AuditRecord(
            id=entry_id,
            time_ms=record.time_ms or now_ms(),
            operator=record.operator,
            action=record.action,
            xid=record.xid,
            result=record.result,
            detail=record.detail,
        )
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(p + "audit", str(entry_id), json.dumps(stored.__dict__))
            pipe.zadd(p + "audit:all", {str(entry_id): entry_id})
            if stored.xid:
                pipe.zadd(p + "audit:x:" + stored.xid, {str(entry_id): entry_id})
            pipe.execute()
        return stored

    def list_audit(self, xid: str, page_size: int, page_token: str) -> Page[AuditRecord]:
        p = self._p
        key = p + "audit:x:" + xid if xid else p + "audit:all"
        high: int | str = "+inf"
        if page_token:
            last = decode_page_token(page_token, "a")
            if not last.isdigit():
                raise invalid_page_token(page_token)
            high = f"({int(last)}"
        size = max(page_size, 1)
        ids = cast(
            list[str], self._redis.zrevrangebyscore(key, high, "-inf", start=0, num=size + 1)
        )
        total = int(self._redis.zcard(key))
        page_ids = ids[:size]
        raws = cast(list[str | None], self._redis.hmget(p + "audit", page_ids)) if page_ids else []
        items = [AuditRecord(**json.loads(raw)) for raw in raws if raw]
        more = len(ids) > size and items
        token = encode_page_token("a", str(items[-1].id)) if more else ""
        return Page(items=items, next_token=token, total=total)

    def close(self) -> None:
        self._redis.close()


def _unavailable_when_unreachable(method: Callable[..., T]) -> Callable[..., T]:
    """Turn a Redis connection failure (after redis-py's retries) into UnavailableError."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            raise UnavailableError(f"the Redis store is unreachable: {error}") from error

    return call


for _name, _method in list(vars(RedisSessionStore).items()):
    if callable(_method) and not _name.startswith("_") and _name != "close":
        setattr(RedisSessionStore, _name, _unavailable_when_unreachable(_method))


def _factory(url: str, history_size: int) -> RedisSessionStore:
    return RedisSessionStore(url, history_size)


register_store("redis", _factory)
register_store("rediss", _factory)
