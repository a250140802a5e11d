"""Redis state backend: many replicas enforce one budget, rpm and concurrency per key.

Each of admit and settle is one Lua script (EVALSHA, reloaded by redis-py after a restart), so
each is atomic on the server, and one round trip. Redis errors become `StateUnavailable` here and
nowhere else; what to do about them (fail open or closed) is the caller's on_unavailable policy.

Keys per API key, one hash tag so a cluster keeps them on one slot:
  {prefix}:{<key_id>}:budget  hash start (the admitting caller's repr(now)), spent, reserved (micro-USD)
  {prefix}:{<key_id>}:rpm     sorted set, member admission_id, score admission time
  {prefix}:{<key_id>}:conc    sorted set, member admission_id, score lease expiry
  {prefix}:{<key_id>}:adm:<admission_id>  string, what the admission did (rule 5): A or S (admitted,
                              settled), then the facts its admit returned
Each expires when idle (window_s + 60 s, 60 s, lease_s after the last admission; a record RECORD_S
after it was written), so dead keys vanish. Money and times are passed as strings: Lua numbers
print with 14 digits, which would lose a unix time's fraction and so the window's identity. The
decision's numbers are made in base.decide, from the facts the script returns, exactly as the
memory backend makes them.

Failures and retries. A call that fails on the connection (refused, reset, closed by a restarted
server) or times out is tried once more, on a reopened connection: the record makes a repeated admit
or settle change nothing, so a retry is safe even when the first try ran and only its answer was
lost. Once both tries of a call have failed, later calls get one try each until one succeeds, so
an outage costs each request one timeout, not two.

The worst case is a call whose two tries both fail without saying whether they ran (two timeouts):
the caller takes it as not run. If such an admit had run, its reservation stays counted until its
window ends (window_s), its lease until lease_s and its rpm entry for a minute, while the request
is refused (fail_closed) or served uncounted (fail_open). If such a settle had not run, the same
reservation and lease stay and the request's cost is never charged; if it had, only what is left
goes unreported. Nothing is reserved, leased or charged twice for one admission.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.billing.state.base import (
    RECORD_S,
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

# KEYS: budget, rpm, conc, record. ARGV: now, window_s, budget|'', rpm|'', max_concurrent|'',
# reserve, admission_id, rpm cutoff (now - 60), lease expiry, budget ttl ms, rpm ttl ms, conc ttl
# ms, record ttl ms. Returns the facts before admission: {ok, open window start|nil, used, rpm log
# length, rpm pivot score|nil, live leases}; a repeat (rule 5) returns the first admission's facts.
ADMIT_LUA = """
local seen = redis.call('GET', KEYS[4])
if seen then
  local s, u, n, l = string.match(seen, '^[AS](%S*) (%d+) (%d+) (%d+)$')
  if s then return {1, s ~= '' and s, u, tonumber(n), false, tonumber(l)} end
end
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
used = string.format('%d', used)
if ok == 1 then
  if ARGV[3] ~= '' then
    if start then redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[6])
    else redis.call('HSET', KEYS[1], 'start', ARGV[1], 'spent', 0, 'reserved', ARGV[6]) end
    redis.call('PEXPIRE', KEYS[1], ARGV[10])
  end
  if ARGV[4] ~= '' then
    redis.call('ZADD', KEYS[2], ARGV[1], ARGV[7])
    redis.call('PEXPIRE', KEYS[2], ARGV[11])
  end
  if ARGV[5] ~= '' then
    redis.call('ZADD', KEYS[3], ARGV[9], ARGV[7])
    redis.call('PEXPIRE', KEYS[3], ARGV[12])
  end
  if ARGV[3] ~= '' or ARGV[4] ~= '' or ARGV[5] ~= '' then
    local s = ARGV[3] ~= '' and (start or ARGV[1]) or ''
    redis.call('SET', KEYS[4], 'A' .. s .. ' ' .. used .. ' ' .. rpm_len .. ' ' .. leases, 'PX', ARGV[13])
  end
end
return {ok, start, used, rpm_len, pivot, leases}
"""

# KEYS: budget, conc, record. ARGV: now, window_s, budget|'', window_start|'', reserved, cost,
# admission_id, record ttl ms. Returns remaining micro-USD after settling (nil without a budget).
# The record's first letter turns from A (admitted) to S (settled): a repeat charges nothing.
SETTLE_LUA = """
redis.call('ZREM', KEYS[2], ARGV[7])
if ARGV[3] == '' then return false end
local seen = redis.call('GET', KEYS[3])
local first = not seen or string.sub(seen, 1, 1) ~= 'S'
if first then redis.call('SET', KEYS[3], 'S' .. string.sub(seen or ' ', 2), 'PX', ARGV[8]) end
local budget = tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'start', 'spent', 'reserved')
if not h[1] or tonumber(ARGV[1]) >= tonumber(h[1]) + tonumber(ARGV[2]) then
  return ARGV[3]
end
local spent, reserved = tonumber(h[2]), tonumber(h[3])
if first then
  if h[1] == ARGV[4] then
    local release = math.min(reserved, tonumber(ARGV[5]))
    reserved = redis.call('HINCRBY', KEYS[1], 'reserved', string.format('%d', -release))
  end
  spent = redis.call('HINCRBY', KEYS[1], 'spent', ARGV[6])
end
return string.format('%d', math.max(0, budget - spent - reserved))
"""


def _num(value: float) -> str:
    """A float as the exact string both Python and Lua's tonumber read back to the same double."""
    return repr(float(value))


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


# Worth one more try: the connection failed or the answer did not come in time (socket and
# asyncio timeouts are OSErrors). A ResponseError (a script error, Redis out of memory) is not.
_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)

T = TypeVar("T")


class RedisBackend:
    """StateBackend over one Redis server, shared by every replica. Rules in base.py, failures and
    retries in the module doc."""

    def __init__(self, url: str, key_prefix: str = "router", timeout_s: float = 0.5) -> None:
        self._prefix = key_prefix
        # A retry is taken within about three timeouts of the first try (its answer, then a free
        # pooled connection and a connect): the record outlives it even with a long timeout.
        self._record_ms = _ms(max(RECORD_S, 4 * timeout_s))
        self._reachable = True  # False once both tries of a call failed: later calls try once
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout_s,  # the wait for a free connection
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # The one retry is ours (_run), visible and counted; redis-py's own would retry the
            # connect too and hide how long a call may take.
            retry=Retry(NoBackoff(), 0),
            # RESP2: under RESP3 redis-py 8.1 turns on maintenance notifications, which skip the
            # pool's check that a connection the server closed (a restart) is replaced before use
            # (redis-py #4252); with RESP2 it is replaced, with no round trip. No
            # health_check_interval: its PING costs a round trip on an idle connection and fails
            # where the command itself would, which is then retried anyway.
            protocol=2,
            decode_responses=True,
        )
        self._client: redis.asyncio.Redis = redis.asyncio.Redis.from_pool(pool)
        self._admit = self._client.register_script(ADMIT_LUA)
        self._settle = self._client.register_script(SETTLE_LUA)

    def _keys(self, key_id: str) -> tuple[str, str, str]:
        base = f"{self._prefix}:{{{key_id}}}"
        return f"{base}:budget", f"{base}:rpm", f"{base}:conc"

    def _record_key(self, key_id: str, admission_id: str) -> str:
        return f"{self._prefix}:{{{key_id}}}:adm:{admission_id}"

    async def _run(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call`, tried once more after a transient failure while Redis is thought reachable."""
        retry = self._reachable
        while True:
            try:
                result = await call()
            except _TRANSIENT as exc:
                if retry:
                    retry = False
                    continue
                self._reachable = False
                raise _unavailable(operation, exc) from exc
            except RedisError as exc:
                raise _unavailable(operation, exc) from exc
            self._reachable = True
            return result

    async def admit(self, key_id: str, spec: LimitSpec, reserve_usd: float, admission_id: str, now: float) -> Admission:
        budget = None if spec.budget_usd is None else budget_micros(spec.budget_usd)
        keys = [*self._keys(key_id), self._record_key(key_id, admission_id)]
        args: list[str | int] = [
            _num(now),
            _num(spec.window_s),
            _opt(budget),
            _opt(spec.rpm),
            _opt(spec.max_concurrent),
            str(cost_micros(reserve_usd)),
            admission_id,
            _num(now - RPM_WINDOW_S),
            _num(now + spec.lease_s),
            _ms(spec.window_s + RPM_WINDOW_S),
            _ms(RPM_WINDOW_S),
            _ms(spec.lease_s),
            self._record_ms,
        ]
        reply: list[Any] = await self._run("admit", lambda: self._admit(keys=keys, args=args))
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
        admission_id: str,
        now: float,
    ) -> float | None:
        budget_key, _, conc_key = self._keys(key_id)
        keys = [budget_key, conc_key, self._record_key(key_id, admission_id)]
        budget = None if spec.budget_usd is None else budget_micros(spec.budget_usd)
        args: list[str | int] = [
            _num(now),
            _num(spec.window_s),
            _opt(budget),
            "" if window_start is None else _num(window_start),
            str(cost_micros(reserved_usd)),
            str(cost_micros(cost_usd)),
            admission_id,
            self._record_ms,
        ]
        reply: str | None = await self._run("settle", lambda: self._settle(keys=keys, args=args))
        return None if reply is None else to_usd(int(reply))

    async def status(self, key_id: str, spec: LimitSpec, now: float) -> tuple[float | None, float | None]:
        if spec.budget_usd is None:
            return None, None
        budget = budget_micros(spec.budget_usd)
        fields = ["start", "spent", "reserved"]
        reply = await self._run("status", lambda: self._client.hmget(self._keys(key_id)[0], fields))
        start, spent, reserved = cast("list[str | None]", reply)  # decode_responses=True: never bytes
        if start is None or not is_open(float(start), spec, now):
            return to_usd(budget), now + spec.window_s
        return remaining_usd(budget, int(spent or 0), int(reserved or 0)), float(start) + spec.window_s

    async def aclose(self) -> None:
        try:
            await self._client.aclose(close_connection_pool=True)
        except (RedisError, OSError) as exc:
            raise _unavailable("close", exc) from exc

    def __repr__(self) -> str:
        return f"RedisBackend(prefix={self._prefix!r}, pool={self._client.connection_pool!r})"


def _unavailable(operation: str, exc: BaseException) -> StateUnavailable:
    return StateUnavailable(f"state backend unavailable during {operation}: {type(exc).__name__}: {exc}")
