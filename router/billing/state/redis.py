"""Redis state backend: many replicas enforce one budget, rpm and concurrency per key.

Each of admit and settle is one Lua script (EVALSHA, reloaded by redis-py after a restart), so
each is atomic on the server. Redis errors become `StateUnavailable` here and nowhere else; what
to do about them (fail open or closed) is the caller's on_unavailable policy.

Keys per API key, one hash tag so a cluster keeps them on one slot:
  {prefix}:{<key_id>}:budget  hash start (the admitting caller's repr(now)), spent, reserved (micro-USD)
  {prefix}:{<key_id>}:rpm     sorted set, member request_id (id#n if repeated), score admission time
  {prefix}:{<key_id>}:conc    sorted set, member request_id (id#n if repeated), score lease expiry
Each expires when idle (window_s + 60 s, 60 s, lease_s after the last admission), so dead keys vanish.
Money and times are passed as strings: Lua numbers print with 14 digits, which would lose a unix
time's fraction and so the window's identity. The decision's numbers are made in base.decide,
from the facts the script returns, exactly as the memory backend makes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from router.billing.state.base import (
    RPM_WINDOW_S,
    Admission,
    LimitSpec,
    StateUnavailable,
    budget_micros,
    cost_micros,
    decide,
    is_open,
    remaining_usd,
    to_usd,
)

# Redis runs one script at a time, so more connections only queue there instead of here; a burst
# waits in the pool for a free connection (bounded by timeout_s) rather than opening hundreds.
MAX_CONNECTIONS = 50

# Rule 5 (base.py): a repeated request_id gets id#1, id#2... so every admission is its own member.
_FREE_MEMBER = """
local function free_member(key, rid)
  local m, n = rid, 0
  while redis.call('ZSCORE', key, m) do n = n + 1; m = rid .. '#' .. n end
  return m
end
"""

# KEYS: budget, rpm, conc. ARGV: now, window_s, budget|'', rpm|'', max_concurrent|'', reserve,
# request_id, rpm cutoff (now - 60), lease expiry, budget ttl ms, rpm ttl ms, conc ttl ms.
# Returns the facts before admission: {ok, open window start|nil, used, rpm log length,
# rpm pivot score|nil, live leases}.
ADMIT_LUA = (
    _FREE_MEMBER
    + """
local now, window_s = tonumber(ARGV[1]), tonumber(ARGV[2])
local start, used = false, 0
if ARGV[3] ~= '' then
  local h = redis.call('HMGET', KEYS[1], 'start', 'spent', 'reserved')
  if h[1] and now < tonumber(h[1]) + window_s then
    start, used = h[1], tonumber(h[2]) + tonumber(h[3])
  end
end
local rpm_len, pivot = 0, false
if ARGV[4] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[8])
  rpm_len = redis.call('ZCARD', KEYS[2])
  local rpm = tonumber(ARGV[4])
  if rpm > 0 and rpm_len >= rpm then
    pivot = redis.call('ZRANGE', KEYS[2], rpm_len - rpm, rpm_len - rpm, 'WITHSCORES')[2]
  end
end
local leases = 0
if ARGV[5] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
  leases = redis.call('ZCARD', KEYS[3])
end
local ok = 1
if ARGV[3] ~= '' and used >= tonumber(ARGV[3]) then ok = 0
elseif ARGV[4] ~= '' and rpm_len >= tonumber(ARGV[4]) then ok = 0
elseif ARGV[5] ~= '' and leases >= tonumber(ARGV[5]) then ok = 0 end
if ok == 1 then
  if ARGV[3] ~= '' then
    if start then redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[6])
    else redis.call('HSET', KEYS[1], 'start', ARGV[1], 'spent', 0, 'reserved', ARGV[6]) end
    redis.call('PEXPIRE', KEYS[1], ARGV[10])
  end
  if ARGV[4] ~= '' then
    redis.call('ZADD', KEYS[2], ARGV[1], free_member(KEYS[2], ARGV[7]))
    redis.call('PEXPIRE', KEYS[2], ARGV[11])
  end
  if ARGV[5] ~= '' then
    redis.call('ZADD', KEYS[3], ARGV[9], free_member(KEYS[3], ARGV[7]))
    redis.call('PEXPIRE', KEYS[3], ARGV[12])
  end
end
return {ok, start, string.format('%d', used), rpm_len, pivot, leases}
"""
)

# KEYS: budget, conc. ARGV: now, window_s, budget|'', window_start|'', reserved, cost, request_id.
# Returns remaining micro-USD after settling (nil without a budget).
SETTLE_LUA = """
local rid = ARGV[7]
if redis.call('ZREM', KEYS[2], rid) == 0 then
  local p = rid .. '#'
  for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if string.sub(m, 1, #p) == p and string.match(string.sub(m, #p + 1), '^%d+$') then
      redis.call('ZREM', KEYS[2], m)
      break
    end
  end
end
if ARGV[3] == '' then return false end
local budget = tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'start', 'spent', 'reserved')
if not h[1] or tonumber(ARGV[1]) >= tonumber(h[1]) + tonumber(ARGV[2]) then
  return ARGV[3]
end
local reserved = tonumber(h[3])
if h[1] == ARGV[4] then
  local release = math.min(reserved, tonumber(ARGV[5]))
  reserved = redis.call('HINCRBY', KEYS[1], 'reserved', string.format('%d', -release))
end
local spent = redis.call('HINCRBY', KEYS[1], 'spent', ARGV[6])
return string.format('%d', math.max(0, budget - spent - reserved))
"""


def _num(value: float) -> str:
    """A float as the exact string both Python and Lua's tonumber read back to the same double."""
    return repr(float(value))


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


@contextmanager
def _translated(operation: str) -> Iterator[None]:
    """Redis and socket errors become StateUnavailable (timeouts are OSErrors too)."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StateUnavailable(f"state backend unavailable during {operation}: {type(exc).__name__}: {exc}") from exc


class RedisBackend:
    """StateBackend over one Redis server, shared by every replica. Rules in base.py."""

    def __init__(self, url: str, key_prefix: str = "router", timeout_s: float = 0.5) -> None:
        self._prefix = key_prefix
        # No retries: a refused connection or a timeout is reported now, within timeout_s, and
        # a retried admit could reserve twice. A pooled connection that died with the server is
        # noticed and replaced by the pool before use, so recovery needs no retry either.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout_s,  # the wait for a free connection, within the same budget
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self._client: redis.asyncio.Redis = redis.asyncio.Redis.from_pool(pool)
        self._admit = self._client.register_script(ADMIT_LUA)
        self._settle = self._client.register_script(SETTLE_LUA)

    def _keys(self, key_id: str) -> tuple[str, str, str]:
        base = f"{self._prefix}:{{{key_id}}}"
        return f"{base}:budget", f"{base}:rpm", f"{base}:conc"

    async def admit(self, key_id: str, spec: LimitSpec, reserve_usd: float, request_id: str, now: float) -> Admission:
        budget = None if spec.budget_usd is None else budget_micros(spec.budget_usd)
        args: list[str | int] = [
            _num(now),
            _num(spec.window_s),
            _opt(budget),
            _opt(spec.rpm),
            _opt(spec.max_concurrent),
            str(cost_micros(reserve_usd)),
            request_id,
            _num(now - RPM_WINDOW_S),
            _num(now + spec.lease_s),
            _ms(spec.window_s + RPM_WINDOW_S),
            _ms(RPM_WINDOW_S),
            _ms(spec.lease_s),
        ]
        with _translated("admit"):
            reply: list[Any] = await self._admit(keys=self._keys(key_id), args=args)
        ok, start, used, rpm_len, pivot, leases = reply
        answer = decide(
            spec,
            now,
            None if start is None else float(start),
            int(used),
            int(rpm_len),
            None if pivot is None else float(pivot),
            int(leases),
        )
        assert answer.ok == bool(ok), "base.decide and ADMIT_LUA disagree"
        return answer

    async def settle(
        self,
        key_id: str,
        spec: LimitSpec,
        window_start: float | None,
        reserved_usd: float,
        cost_usd: float,
        request_id: str,
        now: float,
    ) -> float | None:
        budget_key, _, conc_key = self._keys(key_id)
        budget = None if spec.budget_usd is None else budget_micros(spec.budget_usd)
        args = [
            _num(now),
            _num(spec.window_s),
            _opt(budget),
            "" if window_start is None else _num(window_start),
            str(cost_micros(reserved_usd)),
            str(cost_micros(cost_usd)),
            request_id,
        ]
        with _translated("settle"):
            reply: str | None = await self._settle(keys=[budget_key, conc_key], args=args)
        return None if reply is None else to_usd(int(reply))

    async def status(self, key_id: str, spec: LimitSpec, now: float) -> tuple[float | None, float | None]:
        if spec.budget_usd is None:
            return None, None
        budget = budget_micros(spec.budget_usd)
        with _translated("status"):
            reply = await self._client.hmget(self._keys(key_id)[0], ["start", "spent", "reserved"])
        start, spent, reserved = cast("list[str | None]", reply)  # decode_responses=True: never bytes
        if start is None or not is_open(float(start), spec, now):
            return to_usd(budget), now + spec.window_s
        return remaining_usd(budget, int(spent or 0), int(reserved or 0)), float(start) + spec.window_s

    async def aclose(self) -> None:
        with _translated("close"):
            await self._client.aclose(close_connection_pool=True)

    def __repr__(self) -> str:
        return f"RedisBackend(prefix={self._prefix!r}, pool={self._client.connection_pool!r})"
