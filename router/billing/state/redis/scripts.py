"""The two Lua scripts and the commands that call them, packed to RESP bytes here: the Link writes
them as they are. What changes per plan (its limits and expiries) is packed once per LimitSpec,
and a key's Redis key names once per key, so a call packs only its own few values.

Money and times are passed as strings: Lua numbers print with 14 digits, which would lose a unix
time's fraction and so the window's identity. Each script answers with one string (a flat answer
costs the parser one line, an array one line per element).
"""

from __future__ import annotations

import hashlib
import math

from router.billing.state.base import RPM_WINDOW_S, LimitSpec, budget_micros

# KEYS: budget, rpm, conc, record. ARGV: now, reserve, admission_id, rpm cutoff (now - 60), lease
# expiry, then the plan's: window_s, budget|'', rpm|'', max_concurrent|'', budget ttl ms, rpm ttl
# ms, conc ttl ms, record ttl ms. Answers the facts before admission, space-separated, '-' for
# none: "ok start used rpm_len pivot leases"; a repeat (rule 5) answers the first admission's.
ADMIT_LUA = """
local seen = redis.call('GET', KEYS[4])
if seen then
  local s, u, n, l = string.match(seen, '^[AS](%S*) (%d+) (%d+) (%d+)$')
  if s then
    if s == '' then s = '-' end
    return '1 ' .. s .. ' ' .. u .. ' ' .. n .. ' - ' .. l
  end
end
local now, window_s = tonumber(ARGV[1]), tonumber(ARGV[6])
local budget, rpm, conc = ARGV[7], ARGV[8], ARGV[9]
local start, used = false, 0
if budget ~= '' then
  local h = redis.call('HMGET', KEYS[1], 'start', 'spent', 'reserved')
  if h[1] and now < tonumber(h[1]) + window_s then
    start, used = h[1], tonumber(h[2]) + tonumber(h[3])
  end
end
local rpm_len, pivot = 0, false
if rpm ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
  rpm_len = redis.call('ZCARD', KEYS[2])
  local limit = tonumber(rpm)
  if limit > 0 and rpm_len >= limit then
    pivot = redis.call('ZRANGE', KEYS[2], rpm_len - limit, rpm_len - limit, 'WITHSCORES')[2]
  end
end
local leases = 0
if conc ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
  leases = redis.call('ZCARD', KEYS[3])
end
local ok = 1
if budget ~= '' and used >= tonumber(budget) then ok = 0
elseif rpm ~= '' and rpm_len >= tonumber(rpm) then ok = 0
elseif conc ~= '' and leases >= tonumber(conc) then ok = 0 end
used = string.format('%d', used)
if ok == 1 then
  if budget ~= '' then
    if start then redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[2])
    else redis.call('HSET', KEYS[1], 'start', ARGV[1], 'spent', 0, 'reserved', ARGV[2]) end
    redis.call('PEXPIRE', KEYS[1], ARGV[10])
  end
  if rpm ~= '' then
    redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
    redis.call('PEXPIRE', KEYS[2], ARGV[11])
  end
  if conc ~= '' then
    redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3])
    redis.call('PEXPIRE', KEYS[3], ARGV[12])
  end
  if budget ~= '' or rpm ~= '' or conc ~= '' then
    local s = budget ~= '' and (start or ARGV[1]) or ''
    redis.call('SET', KEYS[4], 'A' .. s .. ' ' .. used .. ' ' .. rpm_len .. ' ' .. leases, 'PX', ARGV[13])
  end
end
return ok .. ' ' .. (start or '-') .. ' ' .. used .. ' ' .. rpm_len .. ' ' .. (pivot or '-') .. ' ' .. leases
"""

# KEYS: budget, conc, record. ARGV: now, window_start|'', reserved, cost, admission_id, then the
# plan's: window_s, budget|'', record ttl ms. Answers the remaining micro-USD after settling (nil
# without a budget). The record's first letter turns from A (admitted) to S (settled): a repeat
# charges nothing.
SETTLE_LUA = """
redis.call('ZREM', KEYS[2], ARGV[5])
if ARGV[7] == '' then return false end
local seen = redis.call('GET', KEYS[3])
local first = not seen or string.sub(seen, 1, 1) ~= 'S'
if first then redis.call('SET', KEYS[3], 'S' .. string.sub(seen or ' ', 2), 'PX', ARGV[8]) end
local budget = tonumber(ARGV[7])
local h = redis.call('HMGET', KEYS[1], 'start', 'spent', 'reserved')
if not h[1] or tonumber(ARGV[1]) >= tonumber(h[1]) + tonumber(ARGV[6]) then
  return ARGV[7]
end
local spent, reserved = tonumber(h[2]), tonumber(h[3])
if first then
  if h[1] == ARGV[2] then
    local release = math.min(reserved, tonumber(ARGV[3]))
    reserved = redis.call('HINCRBY', KEYS[1], 'reserved', string.format('%d', -release))
  end
  spent = redis.call('HINCRBY', KEYS[1], 'spent', ARGV[4])
end
return string.format('%d', math.max(0, budget - spent - reserved))
"""


def bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def command(*parts: bytes) -> bytes:
    """A whole RESP command (for the rare calls; the scripts' are packed from parts)."""
    return b"*%d\r\n" % len(parts) + b"".join(map(bulk, parts))


def load(script: str) -> bytes:
    """SCRIPT LOAD of a script, packed."""
    return command(b"SCRIPT", b"LOAD", script.encode())


def num(value: float) -> bytes:
    """A float as the exact string both Python and Lua's tonumber read back to the same double."""
    return repr(float(value)).encode()


def _opt(value: int | None) -> bytes:
    return b"" if value is None else b"%d" % value


def _ms(seconds: float) -> bytes:
    return b"%d" % max(1, math.ceil(seconds * 1000))


class Script:
    """A script's command heads: by SHA1 (EVALSHA, the usual) and by body (EVAL, which also loads
    it, after a NOSCRIPT: a restarted Redis has forgotten it)."""

    def __init__(self, body: str, keys: int, args: int) -> None:
        source = body.encode()
        sha = hashlib.sha1(source, usedforsecurity=False).hexdigest().encode()
        n = 3 + keys + args
        self.by_sha = b"*%d\r\n$7\r\nEVALSHA\r\n" % n + bulk(sha) + bulk(b"%d" % keys)
        self.by_body = b"*%d\r\n$4\r\nEVAL\r\n" % n + bulk(source) + bulk(b"%d" % keys)


ADMIT = Script(ADMIT_LUA, keys=4, args=13)
SETTLE = Script(SETTLE_LUA, keys=3, args=8)


def plan_args(spec: LimitSpec, record_ms: int) -> tuple[bytes, bytes]:
    """The plan's part of ADMIT's and SETTLE's arguments, packed."""
    budget = _opt(None if spec.budget_usd is None else budget_micros(spec.budget_usd))
    window = num(spec.window_s)
    admit = [window, budget, _opt(spec.rpm), _opt(spec.max_concurrent)]
    admit += [_ms(spec.window_s + RPM_WINDOW_S), _ms(RPM_WINDOW_S), _ms(spec.lease_s), b"%d" % record_ms]
    settle = [window, budget, b"%d" % record_ms]
    return b"".join(map(bulk, admit)), b"".join(map(bulk, settle))
