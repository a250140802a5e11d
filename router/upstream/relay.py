"""Relay of one upstream SSE stream to the client.

`prime()` reads until the first content event and holds everything before it (and the
response headers), so the attempt can still fail over. `body()` then yields the held bytes and
every later event as it arrives. Once committed, a failure can no longer change the status: the
stream ends with a well-formed error event in the client's format, never a silent truncation.

Events are judged (opening, content, final, error) and metered in the upstream's format. What
the client gets is the upstream's own bytes, or, when the client speaks another format, what a
`StreamTranslator` makes of each event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import structlog

from router.clock import Clock
from router.config import Timeouts
from router.errors import UpstreamProtocolError
from router.formats.base import TERMINATOR, EventKind, StreamState, WireFormat
from router.formats.sse import SSEError, SSEEvent, SSEParser
from router.formats.translate import StreamTranslator
from router.types import AttemptResult
from router.upstream.provider import TRANSPORT_ERRORS, ReadInterrupted, UpstreamResponse, read_error

log = structlog.get_logger("router.upstream.relay")

Finish = Callable[[AttemptResult, str], None]
# Continue a broken stream elsewhere: given why it broke, the rest of the client's stream, or
# None when it cannot be continued (routing decides; see routing/continuation.py).
Resume = Callable[[str], Awaitable[AsyncIterator[bytes] | None]]


class StreamRelay:
    """One committed-or-not upstream stream. Not reusable."""

    def __init__(
        self,
        resp: UpstreamResponse,
        fmt: WireFormat,
        timeouts: Timeouts,
        deadline: float,
        clock: Clock,
        provider: str,
        state: StreamState,
        hide_usage: bool = False,
        translator: StreamTranslator | None = None,
        resume: Resume | None = None,
    ) -> None:
        self._resume = resume
        self._held_error: list[SSEEvent] | None = None  # an in-band error held back for a continuation
        self._finished = False
        self._aborted: str | None = None  # why the router ended the stream itself (shutdown)
        # The read timeout: one timer per stream, not one per read. Each read moves the expiry
        # (loop time) on; the timer, when it fires early, re-arms itself at the current expiry.
        self._timer: asyncio.TimerHandle | None = None
        self._expiry = 0.0
        self._expiry_reason = ""  # what a read that reaches the expiry fails with
        self._reading = False
        self._timed_out: str | None = None
        self._resp = resp
        self._fmt = fmt
        self._timeouts = timeouts
        self._deadline = deadline  # monotonic: the earlier of the attempt's total_s and the request's
        self._clock = clock
        self._provider = provider
        self._state = state
        self._hide_usage = hide_usage  # chat: the usage chunk the router asked for, not the client
        self._translator = translator  # None: the client speaks the upstream's format
        self._parser = SSEParser()
        self._terminator_data = fmt.terminator_data  # compared per event: an attribute, not a call
        self._held: list[bytes] = []
        self._pending: list[SSEEvent] = []  # events read in the same chunk as the first content
        self._complete = False  # the final event has been relayed
        self._done_sent = False
        self._error_relayed = False
        self._error_final = False  # an error event that ends the stream by itself was relayed

    async def prime(self) -> None:
        """Read until the first content event. Raises UpstreamProtocolError if the stream
        ends or errors first, UpstreamError on transport failure; the caller bounds the time."""
        while True:
            chunk = await self._resp.read()
            if not chunk:
                raise UpstreamProtocolError("upstream stream ended before its first content event")
            try:
                events = self._parser.feed(chunk)
            except SSEError as exc:
                raise UpstreamProtocolError(f"upstream stream is not relayable: {exc}") from None
            for i, ev in enumerate(events):
                obj = self._load(ev)
                if obj is None:
                    continue
                kind = self._kind(obj)
                if kind is EventKind.ERROR:
                    raise UpstreamProtocolError("upstream stream sent an error before its first content event", ev.raw)
                self._state.feed(obj)
                if kind is EventKind.DONE:
                    raise UpstreamProtocolError("upstream stream ended before its first content event")
                self._held.append(self._out(obj, ev.raw))
                if kind is not EventKind.PRELUDE:
                    self._after(kind)
                    self._pending = events[i + 1 :]
                    return

    async def body(self, finish: Finish) -> AsyncIterator[bytes]:
        """The client's bytes. Calls `finish(result, reason)` exactly once, at the end:
        SUCCESS for a complete stream, FAILURE for a truncated one, NEUTRAL if the client left."""
        result, reason = AttemptResult.NEUTRAL, "client_disconnected"
        try:
            out = self._held
            if self._pending:
                out.extend(self._relay(self._pending))
            yield b"".join(out)
            self._held, self._pending = [], []
            broken: tuple[str, str] | None = None  # why the stream broke, and its error ending's message
            read, parse, ends_at_final = self._resp.read_unmapped, self._parser.feed, self._fmt.ends_at_final
            loop = self._loop = asyncio.get_running_loop()  # once: on Python 3.11 each is a getpid()
            # The steady state, once per upstream read: kept to plain attribute checks and calls.
            while not (self._done_sent or self._error_final or (self._complete and ends_at_final)):
                failure = self._arm(loop)
                if failure is None:
                    self._reading = True
                    try:
                        chunk = await read()
                    except TRANSPORT_ERRORS as exc:
                        failure = read_error(exc).code
                    except ReadInterrupted:
                        failure = self._timed_out or "timeout_idle"
                    finally:
                        self._reading = False
                    if self._aborted is not None:
                        failure = "router_shutdown"
                if failure is not None:
                    if self._complete:
                        break  # the answer was whole; what came after it does not matter
                    if self._aborted is not None:  # not the upstream's fault
                        result, reason = AttemptResult.NEUTRAL, "router_shutdown"
                        yield self._error_tail(self._aborted)
                        return
                    broken = (failure, f"upstream {self._provider} failed mid-stream: {failure}")
                    break
                if not chunk:
                    break
                try:
                    data = self._relay(parse(chunk))
                except SSEError as exc:
                    broken = ("oversized_event", str(exc))
                    break
                if data:
                    yield b"".join(data)
                if self._held_error is not None:
                    rest = await self._continued(finish, "upstream_error_event")
                    if rest is not None:
                        async for piece in rest:
                            yield piece
                        return
                    data = self._release_held_error()  # no continuation: the client gets it as it came
                    if data:
                        yield b"".join(data)
            if broken is None and not self._error_relayed and not self._complete:
                broken = ("truncated", f"upstream {self._provider} closed the stream before it was complete")
            if broken is not None:
                result, reason = AttemptResult.FAILURE, broken[0]
                rest = await self._continued(finish, reason)
                if rest is not None:
                    async for piece in rest:
                        yield piece
                    return
                yield self._error_tail(broken[1])
                return
            if self._error_final:  # the upstream's own error event(s) ended the stream for the client
                result, reason = AttemptResult.FAILURE, "upstream_error_event"
                return
            if self._error_relayed:
                result, reason = AttemptResult.FAILURE, "upstream_error_event"
                # The reason only when the upstream's error named none: the format's ending
                # carries the upstream's own message.
                yield self._error_tail("upstream stream failed")
            else:
                result, reason = AttemptResult.SUCCESS, "ok"
                if self._translator is not None:
                    yield self._translator.finish()  # b"" when the upstream's own end was translated
                elif self._fmt.terminator and not self._done_sent:
                    yield self._fmt.terminator
        finally:
            self._stop_timer()
            if not self._finished:
                self._resp.close()
                finish(result, reason)

    async def _continued(self, finish: Finish, reason: str) -> AsyncIterator[bytes] | None:
        """The rest of the answer from another route, or None (then this relay ends the stream as
        it would have). With a rest, this attempt is finished here: a failure, its connection closed."""
        resume = self._resume
        if resume is None:
            return None
        self._resume = None  # once per relay; a continuation's relay has its own
        rest = await resume(reason)
        if rest is not None:
            self._finished = True
            self._resp.close()
            finish(AttemptResult.FAILURE, reason)
        return rest

    def _release_held_error(self) -> list[bytes]:
        events, self._held_error = self._held_error or [], None
        return self._relay(events)

    def abort(self, reason: str) -> None:
        """End the stream now with an error event (the router is shutting down): wakes the
        pending read; the body loop writes the tail."""
        self._aborted = reason
        if self._reading:
            self._resp.interrupt()

    def _arm(self, loop: asyncio.AbstractEventLoop) -> str | None:
        """Before each read: why not to read (the deadline passed, the router is shutting down),
        or None after moving the read's expiry on: idle_s from now, or the deadline if nearer."""
        left = self._deadline - self._clock.monotonic()
        wait = self._timeouts.idle_s
        if left <= wait:
            if left <= 0:
                return "timeout_total"
            wait, self._expiry_reason = left, "timeout_total"
        else:
            self._expiry_reason = "timeout_idle"
        if self._aborted is not None:
            return "router_shutdown"
        self._expiry = loop.time() + wait
        if self._timer is None:
            self._timer = loop.call_at(self._expiry, self._expire)
        return None

    def _expire(self) -> None:
        """The timer: interrupts a read that reached its expiry; else waits for the expiry."""
        self._timer = None
        if self._finished or not self._reading:
            return  # the next read arms it again
        loop = self._loop
        if loop.time() < self._expiry:
            self._timer = loop.call_at(self._expiry, self._expire)
            return
        self._timed_out = self._expiry_reason
        self._resp.interrupt()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _relay(self, events: list[SSEEvent]) -> list[bytes]:
        out: list[bytes] = []
        content = self._state.feed_content
        translator = self._translator
        for i, ev in enumerate(events):
            obj = self._load(ev)
            if obj is None:
                if ev.is_comment:
                    out.append(ev.raw)  # keep-alives help clients through long silences
                continue
            if content(obj):  # most events: answer text, accounted for in one cheap step
                if translator is None:
                    out.append(ev.raw)
                elif data := translator.feed(obj):
                    out.append(data)
                continue
            kind = self._kind(obj)
            if kind is EventKind.ERROR and self._resume is not None:
                # Held back, not relayed: the answer may still be finished on another route.
                self._held_error = events[i:]
                break
            self._state.feed(obj)
            if kind is EventKind.DONE:
                if self._done_sent:
                    continue
                self._done_sent = True
            elif kind is EventKind.ERROR:
                self._error_relayed = True
                if self._fmt.error_is_final(obj):
                    self._error_final = True
            self._after(kind)
            if self._hide_usage and kind is EventKind.TRAILER and self._fmt.is_usage_only(obj):
                continue
            if data := self._out(obj, ev.raw):
                out.append(data)
        return out

    def _out(self, obj: Any, raw: bytes) -> bytes:
        """What the client gets for one upstream event."""
        if self._translator is None:
            return raw
        return self._translator.feed(obj)

    def _kind(self, obj: Any) -> EventKind:
        return EventKind.DONE if obj is TERMINATOR else self._fmt.event_kind(obj)

    def _after(self, kind: EventKind) -> None:
        if kind is EventKind.FINAL:
            self._complete = True

    def _load(self, ev: SSEEvent) -> Any | None:
        """The event's JSON, or None for one that must not reach the client as an event."""
        data = ev.data
        if not data and ev.event is None:
            return None  # a comment
        if data == self._terminator_data:
            return TERMINATOR
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("upstream_event_not_json", provider=self._provider, size=len(data))
            return None

    def _error_tail(self, message: str) -> bytes:
        if self._translator is not None:
            return self._translator.error(message)  # b"" when an upstream error was translated
        # After the upstream's own error event (a Responses `error` not yet followed by its
        # response.failed), however the stream then broke, the client gets no second error event.
        return self._state.error_tail(message, self._error_relayed)
