"""Redis state backend: many replicas enforce one budget, rpm and concurrency per key.

Each of admit and settle is one Lua script (scripts.py), so each is atomic on the server. Calls go
through the process's one pipelined connection (link.py): an admit is one write and one answer,
shared with every other call made in the same turn of the event loop. Redis errors become
`StateUnavailable` here and nowhere else; what to do about them (fail open or closed) is the
caller's on_unavailable policy.

Keys per API key, one hash tag so a cluster keeps them on one slot:
  {prefix}:{<key_id>}:budget  hash start (the admitting caller's repr(now)), spent, reserved (micro-USD)
  {prefix}:{<key_id>}:rpm     sorted set, member admission_id, score admission time
  {prefix}:{<key_id>}:conc    sorted set, member admission_id, score lease expiry
  {prefix}:{<key_id>}:adm:<admission_id>  string, what the admission did (rule 5): A or S (admitted,
                              settled), then the facts its admit returned
Each expires when idle (window_s + 60 s, 60 s, lease_s after the last admission; a record RECORD_S
after it was written), so dead keys vanish. The decision's numbers are made in base.decide, from
the facts the script returns, exactly as the memory backend makes them.

Settling without waiting (`settle_nowait`): the settle is queued on the connection behind every
call this process made before it, so Redis runs it before anything this process sends later, and
the call returns once it is written (with the other calls of that turn of the event loop); its
answer is not waited for. Until Redis has run it, the request's reservation and lease stay counted in place of
its cost: conservative while the cost is within the reservation (docs/billing.md, "Reserve, then settle").
A failed settle is retried under the same policy as any call, from its answer's callback (in the
background when no connection is open).

Failures and retries. A call that fails on the connection (refused, reset, closed by a restarted
server) or times out is tried once more, on a reopened connection: the record makes a repeated admit
or settle change nothing, so a retry is safe even when the first try ran and only its answer was
lost. Once both tries of a call have failed, later calls get one try each until one succeeds, so
an outage costs each request one timeout, not two. A NOSCRIPT answer (Redis restarted and forgot
the scripts; the script did not run) is answered by sending the script itself (EVAL), not counted
as a try.

The worst case is a call whose two tries both fail without saying whether they ran (two timeouts):
the caller takes it as not run. If such an admit had run, its reservation stays counted until its
window ends (window_s), its lease until lease_s and its rpm entry for a minute, while the request
is refused (fail_closed) or served uncounted (fail_open). If such a settle had not run, the same
reservation and lease stay and the request's cost is never charged; if it had, only what is left
goes unreported. Nothing is reserved, leased or charged twice for one admission.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.billing.state.base import (
    RECORD_S,
    RPM_WINDOW_S,
    Admission,
    LimitSpec,
    Settlement,
    StateUnavailable,
    budget_micros,
    cost_micros,
    decide,
    is_open,
    remaining_usd,
    to_usd,
)
from router.billing.state.redis.link import Channel, Link
from router.billing.state.redis.scripts import (
    ADMIT,
    ADMIT_LUA,
    SETTLE,
    SETTLE_LUA,
    Script,
    bulk,
    command,
    load,
    num,
    plan_args,
)

# Worth one more try: the connection failed or the answer did not come in time (socket and
# asyncio timeouts are OSErrors). A ResponseError (a script error, Redis out of memory) is not.
_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)
# Packed plan arguments and key names are cached; a config reload makes new specs, a long-lived
# process many keys: past these sizes the cache starts over.
_MAX_SPECS, _MAX_KEYS = 64, 10_000
_PING = command(b"PING")


class _Call:
    """A script call, its arguments packed once, sent by SHA1 or, after a NOSCRIPT, by body; or
    (script None) a plain command, packed whole."""

    __slots__ = ("args", "script")

    def __init__(self, script: Script | None, args: bytes) -> None:
        self.script, self.args = script, args

    def packed(self, by_body: bool = False) -> bytes:
        if self.script is None:
            return self.args
        return (self.script.by_body if by_body else self.script.by_sha) + self.args


Done = Callable[[StateUnavailable | None], None]


class RedisBackend:
    """StateBackend over one Redis server, shared by every replica. Rules in base.py, failures and
    retries in the module doc."""

    def __init__(self, url: str, key_prefix: str = "router", timeout_s: float = 0.5) -> None:
        self._prefix = key_prefix
        # A retry is taken within about three timeouts of the first try (its answer, then a
        # connect and its answer): the record outlives it even with a long timeout.
        self._record_ms = math.ceil(max(RECORD_S, 4 * timeout_s) * 1000)
        self._reachable = True  # False once both tries of a call failed: later calls try once
        # Every new connection loads both scripts first, so EVALSHA finds them (a restarted Redis
        # has forgotten them, and closed the connections that had loaded them).
        self._channel = Channel(url, timeout_s, greeting=[load(ADMIT_LUA), load(SETTLE_LUA)])
        self._plans: dict[LimitSpec, tuple[bytes, bytes]] = {}
        self._names: dict[str, tuple[bytes, bytes, bytes]] = {}  # key_id -> budget, rpm, conc (packed), record prefix
        self._background: set[asyncio.Task[None]] = set()  # settles retried after the caller moved on

    def _plan(self, spec: LimitSpec) -> tuple[bytes, bytes]:
        packed = self._plans.get(spec)
        if packed is None:
            if len(self._plans) >= _MAX_SPECS:
                self._plans.clear()
            packed = self._plans[spec] = plan_args(spec, self._record_ms)
        return packed

    def _keys(self, key_id: str) -> tuple[bytes, bytes, bytes]:
        """(budget + rpm + conc key names, budget + conc key names, the record keys' prefix)."""
        names = self._names.get(key_id)
        if names is None:
            if len(self._names) >= _MAX_KEYS:
                self._names.clear()
            base = f"{self._prefix}:{{{key_id}}}".encode()
            budget, rpm, conc = bulk(base + b":budget"), bulk(base + b":rpm"), bulk(base + b":conc")
            names = self._names[key_id] = (budget + rpm + conc, budget + conc, base + b":adm:")
        return names

    async def _call(self, operation: str, call: _Call, retry: bool | None = None, by_body: bool = False) -> Any:
        """`call`'s answer, tried once more after a transient failure while Redis is thought reachable."""
        retry = self._reachable if retry is None else retry
        while True:
            try:
                reply = await (await self._channel.send(call.packed(by_body)))
            except NoScriptError:
                if by_body:
                    raise _unavailable(operation, RedisError("the script did not load")) from None
                by_body = True
                continue
            except _TRANSIENT as exc:
                if retry:
                    retry = False
                    continue
                self._reachable = False
                raise _unavailable(operation, exc) from exc
            except RedisError as exc:
                raise _unavailable(operation, exc) from exc
            self._reachable = True
            return reply

    async def admit(self, key_id: str, spec: LimitSpec, reserve_usd: float, admission_id: str, now: float) -> Admission:
        keys, _, record = self._keys(key_id)
        aid = admission_id.encode()
        args = (
            keys
            + bulk(record + aid)
            + bulk(num(now))
            + bulk(b"%d" % cost_micros(reserve_usd))
            + bulk(aid)
            + bulk(num(now - RPM_WINDOW_S))
            + bulk(num(now + spec.lease_s))
            + self._plan(spec)[0]
        )
        reply: bytes = await self._call("admit", _Call(ADMIT, args))
        ok, start, used, rpm_len, pivot, leases = reply.split(b" ")
        answer = decide(
            spec,
            now,
            None if start == b"-" else float(start),
            int(used),
            int(rpm_len),
            None if pivot == b"-" else float(pivot),
            int(leases),
        )
        assert answer.ok == (ok == b"1"), "base.decide and ADMIT_LUA disagree"
        return answer

    def _settle_call(self, s: Settlement) -> _Call:
        _, keys, record = self._keys(s.key_id)
        admission = s.admission_id.encode()
        args = (
            keys
            + bulk(record + admission)
            + bulk(num(s.now))
            + bulk(b"" if s.window_start is None else num(s.window_start))
            + bulk(b"%d" % cost_micros(s.reserved_usd))
            + bulk(b"%d" % cost_micros(s.cost_usd))
            + bulk(admission)
            + self._plan(s.spec)[1]
        )
        return _Call(SETTLE, args)

    async def settle(self, s: Settlement) -> float | None:
        call = self._settle_call(s)
        reply: bytes | None = await self._call("settle", call)
        return None if reply is None else to_usd(int(reply))

    async def settle_nowait(self, s: Settlement, done: Done) -> None:
        call = self._settle_call(s)
        link = self._send_settle(call, done, self._reachable, False)
        if link is not None:
            # Written before the caller answers its client: a request the client sends next, to
            # any replica, reaches Redis after this settle (the answer is not waited for).
            await link.written()

    def _send_settle(self, call: _Call, done: Done, retry: bool, by_body: bool) -> Link | None:
        """Queue now on the open link (returned), so the settle keeps its place behind the calls
        before it; with no link open (connecting, or Redis down), the whole call goes to the
        background (None)."""
        link = self._channel.live()
        if link is None:
            self._spawn(self._settle_later(call, done, retry, by_body))
            return None
        answer = link.send(call.packed(by_body))
        answer.add_done_callback(lambda fut: self._settled(call, done, fut, retry, by_body))
        return link

    def _settled(self, call: _Call, done: Done, fut: asyncio.Future[Any], retry: bool, by_body: bool) -> None:
        """What _call does after each try, for a settle nobody waits on."""
        exc = fut.exception()
        if exc is None:
            self._reachable = True
            done(None)
        elif isinstance(exc, NoScriptError) and not by_body:
            self._send_settle(call, done, retry, True)
        elif isinstance(exc, _TRANSIENT) and retry:
            self._send_settle(call, done, False, by_body)
        else:
            if isinstance(exc, _TRANSIENT):
                self._reachable = False
            done(_unavailable("settle", exc))

    async def _settle_later(self, call: _Call, done: Done, retry: bool | None, by_body: bool) -> None:
        try:
            await self._call("settle", call, retry, by_body)
        except StateUnavailable as exc:
            done(exc)
        else:
            done(None)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def status(self, key_id: str, spec: LimitSpec, now: float) -> tuple[float | None, float | None]:
        if spec.budget_usd is None:
            return None, None
        budget = budget_micros(spec.budget_usd)
        key = f"{self._prefix}:{{{key_id}}}:budget".encode()
        hmget = command(b"HMGET", key, b"start", b"spent", b"reserved")
        start, spent, reserved = await self._call("status", _Call(None, hmget))
        if start is None or not is_open(float(start), spec, now):
            return to_usd(budget), now + spec.window_s
        return remaining_usd(budget, int(spent or 0), int(reserved or 0)), float(start) + spec.window_s

    async def ping(self) -> None:
        """One PING, one try: readiness asks whether Redis answers now, not whether it will."""
        await self._call("ping", _Call(None, _PING), retry=False)

    async def aclose(self) -> None:
        """Once the settles still on their way have their answers (each bounded by its timeouts)."""
        await self._channel.drained()
        while self._background:
            await asyncio.wait(list(self._background))
        try:
            await self._channel.aclose()
        except (RedisError, OSError) as exc:
            raise _unavailable("close", exc) from exc

    def __repr__(self) -> str:
        return f"RedisBackend(prefix={self._prefix!r}, {self._channel!r})"


def _unavailable(operation: str, exc: BaseException) -> StateUnavailable:
    return StateUnavailable(f"state backend unavailable during {operation}: {type(exc).__name__}: {exc}")
