"""Tests for router.upstream.relay.StreamRelay, driven by a scripted stand-in for UpstreamResponse: the
prelude is held until the first content event, and every way a stream can end (whole, cut,
stalled, past its deadline, erroring, client gone) ends well-formed and is reported once."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import anyio
import orjson
import pytest
from structlog.testing import capture_logs

import router.upstream.relay
from router.clock import ManualClock
from router.config import Format, Timeouts
from router.errors import UpstreamConnectError, UpstreamProtocolError, UpstreamReset
from router.formats import wire
from router.formats.sse import SSEParser
from router.types import AttemptResult
from router.upstream import client as http1
from router.upstream.provider import ReadInterrupted, UpstreamResponse
from router.upstream.relay import Resume, StreamRelay

S, F, N = AttemptResult.SUCCESS, AttemptResult.FAILURE, AttemptResult.NEUTRAL
HANG = object()  # a read that never returns (until cancelled or interrupted)


class FakeUpstream:
    """Just what StreamRelay uses of UpstreamResponse: `read()` plays a script, `close()` counts,
    `interrupt()` wakes a hanging read as the real connection does."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.reads = 0
        self.closes = 0
        self.interrupts = 0
        self._wake: anyio.Event | None = None

    async def read(self) -> bytes:
        self.reads += 1
        if not self.script:
            return b""
        item = self.script.pop(0)
        if isinstance(item, tuple):  # (seconds, item): that item, that late
            await anyio.sleep(item[0])
            item = item[1]
        if item is HANG:
            self._wake = anyio.Event()
            await self._wake.wait()
            raise ReadInterrupted
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, bytes)
        return item

    async def read_unmapped(self) -> bytes:
        """As the real one: the transport's own errors, which the relay maps (provider.read_error)."""
        try:
            return await self.read()
        except UpstreamReset as exc:
            raise http1.PayloadError(str(exc)) from None
        except UpstreamConnectError as exc:
            raise http1.TransportError(str(exc)) from None

    def interrupt(self) -> None:
        self.interrupts += 1
        if self._wake is not None:
            self._wake.set()

    def close(self) -> None:
        self.closes += 1


# --- events ---------------------------------------------------------------------------------------


def chat(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    obj = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + orjson.dumps(obj) + b"\n\n"


ROLE = chat({"role": "assistant", "content": ""})
HELLO = chat({"content": "Hel"})
WORLD = chat({"content": "lo"})
STOP = chat({}, "stop")
USAGE = b"data: " + orjson.dumps({"id": "c1", "choices": [], "usage": {"total_tokens": 3}}) + b"\n\n"
DONE = b"data: [DONE]\n\n"
CHAT_ERROR = b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n'
GARBAGE = b"data: {not json\n\n"
KEEPALIVE = b": keep-alive\n\n"


def anth(etype: str, **fields: Any) -> bytes:
    return b"event: " + etype.encode() + b"\ndata: " + orjson.dumps({"type": etype, **fields}) + b"\n\n"


A_START = anth("message_start", message={"id": "msg_1", "content": []})
A_PING = anth("ping")
A_BLOCK = anth("content_block_start", index=0, content_block={"type": "text", "text": ""})
A_DELTA = anth("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"})
A_MDELTA = anth("message_delta", delta={"stop_reason": "end_turn"})
A_STOP = anth("message_stop")
A_ERROR = anth("error", error={"type": "overloaded_error", "message": "busy"})


def resp(etype: str, seq: int, **fields: Any) -> bytes:
    return (
        b"event: "
        + etype.encode()
        + b"\ndata: "
        + orjson.dumps({"type": etype, "sequence_number": seq, **fields})
        + b"\n\n"
    )


R_CREATED = resp("response.created", 0, response={"id": "resp_abc", "status": "in_progress"})
R_DELTA = resp("response.output_text.delta", 4, delta="Hi")
R_DONE = resp("response.output_text.done", 5, text="Hi")
R_COMPLETED = resp("response.completed", 6, response={"id": "resp_abc", "status": "completed"})
R_ERROR = resp("error", 5, code="server_error", message="boom")
R_FAILED = resp("response.failed", 6, response={"id": "resp_abc", "status": "failed"})


def _events(data: bytes) -> list[Any]:
    """The parsed (event name, JSON or raw data) of a byte stream, in order."""
    out: list[Any] = []
    for ev in SSEParser().feed(data):
        body = ev.data if ev.data == b"[DONE]" else orjson.loads(ev.data)
        out.append((ev.event, body))
    return out


# --- running ----------------------------------------------------------------------------------------


class Run:
    def __init__(
        self,
        fmt: Format,
        up: FakeUpstream,
        idle_s: float = 5.0,
        deadline_s: float = 100.0,
        clock: ManualClock | None = None,
        resume: Resume | None = None,
    ) -> None:
        self.clock = clock or ManualClock()
        self.up = up
        self.relay = StreamRelay(
            cast(UpstreamResponse, up),  # the fake has just what StreamRelay uses of UpstreamResponse
            wire(fmt),
            Timeouts(idle_s=idle_s),
            self.clock.monotonic() + deadline_s,
            self.clock,
            "prov",
            wire(fmt).stream_state(0),
            resume=resume,
        )
        self.finished: list[tuple[AttemptResult, str]] = []
        self.chunks: list[bytes] = []

    def finish(self, result: AttemptResult, reason: str) -> None:
        self.finished.append((result, reason))

    async def all(self) -> bytes:
        """prime, then the whole body; bounded so a broken relay fails instead of hanging."""
        with anyio.fail_after(2):
            await self.relay.prime()
            async for chunk in self.relay.body(self.finish):
                self.chunks.append(chunk)
        return b"".join(self.chunks)


# --- prime ------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_prelude_is_held_until_first_content() -> None:
    """prime() reads past the role chunk to the first content and stops reading there."""
    up = FakeUpstream(ROLE, KEEPALIVE + HELLO, WORLD, STOP, DONE)
    run = Run("openai-chat", up)
    await run.relay.prime()
    assert up.reads == 2 and up.closes == 0
    body = cast(AsyncGenerator[bytes, None], run.relay.body(run.finish))
    assert await body.__anext__() == ROLE + HELLO
    await body.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fmt", "prelude", "content"),
    [
        ("openai-chat", [ROLE], HELLO),
        ("anthropic-messages", [A_START, A_PING, A_BLOCK], A_DELTA),
        (
            "openai-responses",
            [
                R_CREATED,
                resp("response.in_progress", 1),
                resp("response.output_item.added", 2, item={"type": "message", "content": []}),
                resp("response.content_part.added", 3, part={"type": "output_text", "text": ""}),
            ],
            R_DELTA,
        ),
    ],
)
async def test_each_format_holds_its_opening_events(fmt: Format, prelude: list[bytes], content: bytes) -> None:
    """Each format's opening events are read (one per chunk) and held; the first yield carries them all."""
    up = FakeUpstream(*prelude, content, HANG)
    run = Run(fmt, up)
    await run.relay.prime()
    assert up.reads == len(prelude) + 1
    body = cast(AsyncGenerator[bytes, None], run.relay.body(run.finish))
    assert await body.__anext__() == b"".join(prelude) + content
    await body.aclose()
    assert run.finished == [(N, "client_disconnected")] and up.closes == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fmt", "script", "error"),
    [
        ("openai-chat", [ROLE, CHAT_ERROR], CHAT_ERROR),
        ("anthropic-messages", [A_START + A_ERROR], A_ERROR),
        ("openai-responses", [R_CREATED, R_ERROR], R_ERROR),
        ("openai-responses", [R_CREATED + R_FAILED], R_FAILED),
    ],
)
async def test_error_before_content_raises(fmt: Format, script: list[bytes], error: bytes) -> None:
    """An error event before any content is UpstreamProtocolError carrying that event (failover)."""
    run = Run(fmt, FakeUpstream(*script, HELLO))
    with pytest.raises(UpstreamProtocolError, match="error before its first content") as info:
        await run.relay.prime()
    assert info.value.error_event == error


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fmt", "script"),
    [
        ("openai-chat", []),
        ("openai-chat", [ROLE]),
        ("openai-chat", [ROLE + DONE]),
        ("anthropic-messages", [A_START, A_PING]),
        ("openai-responses", [R_CREATED]),
        ("openai-chat", [b'{"not": "sse"}']),
    ],
)
async def test_end_before_content_raises(fmt: Format, script: list[bytes]) -> None:
    """A stream that ends (or says [DONE]) before its first content event cannot be committed."""
    with pytest.raises(UpstreamProtocolError, match="ended before its first content"):
        await Run(fmt, FakeUpstream(*script)).relay.prime()


@pytest.mark.anyio
async def test_transport_error_in_prime_propagates() -> None:
    """A reset before the first content surfaces as the UpstreamError read() raised."""
    with pytest.raises(UpstreamConnectError):
        await Run("openai-chat", FakeUpstream(ROLE, UpstreamConnectError("reset"))).relay.prime()


@pytest.mark.anyio
async def test_garbage_before_content_is_dropped() -> None:
    """Non-JSON events and comments before the content are neither held nor fatal."""
    run = Run("openai-chat", FakeUpstream(GARBAGE + ROLE, KEEPALIVE, HELLO + STOP + DONE))
    with capture_logs() as logs:
        out = await run.all()
    assert out == ROLE + HELLO + STOP + DONE
    assert [e["event"] for e in logs] == ["upstream_event_not_json"]
    assert logs[0]["provider"] == "prov" and logs[0]["size"] == len(b"{not json")


# --- body: clean ends ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_whole_chat_stream_is_relayed_as_is() -> None:
    """A complete chat stream reaches the client byte for byte; finish(SUCCESS, ok) once; closed once."""
    run = Run("openai-chat", FakeUpstream(ROLE, HELLO, WORLD, STOP + USAGE, DONE))
    assert await run.all() == ROLE + HELLO + WORLD + STOP + USAGE + DONE
    assert run.finished == [(S, "ok")] and run.up.closes == 1
    assert run.chunks == [ROLE + HELLO, WORLD, STOP + USAGE, DONE]


@pytest.mark.anyio
async def test_chat_done_is_appended_when_upstream_closes_after_finish() -> None:
    """finish_reason, then the upstream closes without [DONE]: the router adds [DONE], SUCCESS."""
    run = Run("openai-chat", FakeUpstream(HELLO, STOP))
    assert await run.all() == HELLO + STOP + DONE
    assert run.finished == [(S, "ok")]


@pytest.mark.anyio
async def test_chat_reset_after_finish_is_still_a_success() -> None:
    """A reset after finish_reason does not spoil a whole answer: [DONE] is added, SUCCESS."""
    run = Run("openai-chat", FakeUpstream(HELLO, STOP, UpstreamConnectError("reset")))
    assert await run.all() == HELLO + STOP + DONE
    assert run.finished == [(S, "ok")]


@pytest.mark.anyio
async def test_chat_done_is_never_doubled() -> None:
    """A second [DONE] from the upstream is not relayed; the relay stops reading at the first."""
    up = FakeUpstream(HELLO + STOP + DONE + DONE, WORLD)
    run = Run("openai-chat", up)
    assert await run.all() == HELLO + STOP + DONE
    assert up.reads == 1 and run.finished == [(S, "ok")]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fmt", "script"),
    [
        ("anthropic-messages", [A_START, A_BLOCK, A_DELTA, A_MDELTA, A_STOP]),
        ("openai-responses", [R_CREATED, R_DELTA, R_DONE, R_COMPLETED]),
    ],
)
async def test_final_event_ends_the_relay(fmt: Format, script: list[bytes]) -> None:
    """message_stop / response.completed end the stream: nothing more is read or appended."""
    up = FakeUpstream(*script, b'data: {"late": true}\n\n')
    run = Run(fmt, up)
    assert await run.all() == b"".join(script)
    assert up.reads == len(script) and run.finished == [(S, "ok")] and up.closes == 1


@pytest.mark.anyio
async def test_keepalive_comments_after_commit_are_relayed() -> None:
    """Comments after the first content reach the client (they keep proxies from timing out)."""
    run = Run("openai-chat", FakeUpstream(HELLO, KEEPALIVE, STOP, DONE))
    assert await run.all() == HELLO + KEEPALIVE + STOP + DONE


@pytest.mark.anyio
async def test_garbage_event_mid_stream_is_dropped() -> None:
    """A non-JSON event after the commit is dropped; the stream goes on and completes."""
    run = Run("openai-chat", FakeUpstream(HELLO, GARBAGE, WORLD + GARBAGE + STOP, DONE))
    assert await run.all() == HELLO + WORLD + STOP + DONE
    assert run.finished == [(S, "ok")]


@pytest.mark.anyio
async def test_events_split_across_reads_are_reassembled() -> None:
    """An event cut across reads is relayed once whole, never as fragments."""
    data = HELLO + WORLD + STOP + DONE
    run = Run("openai-chat", FakeUpstream(HELLO, *[data[i : i + 7] for i in range(len(HELLO), len(data), 7)]))
    assert await run.all() == data
    assert all(c.endswith(b"\n\n") for c in run.chunks)


# --- body: failures after the commit -------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", ["openai-chat", "anthropic-messages", "openai-responses"])
async def test_truncated_stream_ends_with_the_formats_error_event(fmt: Format) -> None:
    """The upstream closing mid-answer: a well-formed error event in the client's format; FAILURE."""
    first = {"openai-chat": HELLO, "anthropic-messages": A_DELTA, "openai-responses": R_DELTA}[fmt]
    run = Run(fmt, FakeUpstream(first))
    out = await run.all()
    assert out.startswith(first)
    tail = _events(out[len(first) :])
    message = "upstream prov closed the stream before it was complete"
    if fmt == "openai-chat":
        assert tail == [
            (None, {"error": {"message": message, "type": "server_error", "code": "upstream_error", "param": None}})
        ]
    elif fmt == "anthropic-messages":
        assert tail == [("error", {"type": "error", "error": {"type": "api_error", "message": message}})]
    else:
        assert [(name, body["sequence_number"]) for name, body in tail] == [("error", 5), ("response.failed", 6)]
        assert tail[1][1]["response"]["status"] == "failed"
    assert run.finished == [(F, "truncated")] and run.up.closes == 1


@pytest.mark.anyio
async def test_responses_error_tail_names_the_streams_response_id() -> None:
    """The router's response.failed carries the upstream's response id and the next sequence number."""
    run = Run("openai-responses", FakeUpstream(R_CREATED, R_DELTA))
    out = await run.all()
    failed = _events(out)[-1]
    assert failed[0] == "response.failed"
    assert failed[1]["response"]["id"] == "resp_abc" and failed[1]["sequence_number"] == 6


@pytest.mark.anyio
async def test_reset_mid_stream_ends_with_an_error_event() -> None:
    """A transport error mid-answer: error event naming the reason; FAILURE with the error's code."""
    run = Run("openai-chat", FakeUpstream(HELLO, UpstreamConnectError("reset")))
    out = await run.all()
    [(_, err)] = _events(out[len(HELLO) :])
    assert err["error"]["message"] == "upstream prov failed mid-stream: upstream_connect_error"
    assert run.finished == [(F, "upstream_connect_error")]


@pytest.mark.anyio
async def test_idle_timeout() -> None:
    """No bytes for idle_s after the commit: the stream ends with an error event, FAILURE timeout_idle."""
    run = Run("anthropic-messages", FakeUpstream(A_DELTA, HANG), idle_s=0.05)
    start = anyio.current_time()
    out = await run.all()
    assert 0.04 <= anyio.current_time() - start < 1.0
    assert _events(out[len(A_DELTA) :])[0][1]["error"]["message"] == "upstream prov failed mid-stream: timeout_idle"
    assert run.finished == [(F, "timeout_idle")] and run.up.closes == 1


@pytest.mark.anyio
async def test_idle_timeout_counts_from_the_latest_chunk() -> None:
    """idle_s bounds each wait, not the stream: chunks closer than idle_s keep it going past
    idle_s in all (the one timer re-arms itself), and the stall after them ends it idle_s on."""
    gap = 0.03
    up = FakeUpstream(A_DELTA, (gap, A_DELTA), (gap, A_DELTA), (gap, A_DELTA), HANG)
    run = Run("anthropic-messages", up, idle_s=0.05)
    start = anyio.current_time()
    out = await run.all()
    assert 3 * gap + 0.04 <= anyio.current_time() - start < 1.0
    assert out.count(A_DELTA) == 4 and up.interrupts == 1
    assert run.finished == [(F, "timeout_idle")]


@pytest.mark.anyio
async def test_a_whole_stream_slower_than_idle_s_is_not_cut() -> None:
    """Each chunk within idle_s of the last, the whole longer than idle_s: relayed whole."""
    up = FakeUpstream(HELLO, (0.03, WORLD), (0.03, STOP), (0.03, DONE))
    run = Run("openai-chat", up, idle_s=0.05)
    out = await run.all()
    assert out == HELLO + WORLD + STOP + DONE
    assert run.finished == [(S, "ok")] and up.interrupts == 0


@pytest.mark.anyio
async def test_deadline_nearer_than_idle_is_a_total_timeout() -> None:
    """When the attempt's deadline comes before idle_s, the stall is reported as timeout_total."""
    run = Run("openai-chat", FakeUpstream(HELLO, HANG), idle_s=5.0, deadline_s=0.05)
    await run.all()
    assert run.finished == [(F, "timeout_total")]


@pytest.mark.anyio
async def test_deadline_already_passed_reads_nothing_more() -> None:
    """Past the deadline (on the injected clock) the relay stops without another read."""
    up = FakeUpstream(HELLO, WORLD)
    run = Run("openai-chat", up, deadline_s=10.0)
    await run.relay.prime()
    run.clock.advance(10.0)
    async for chunk in run.relay.body(run.finish):
        run.chunks.append(chunk)
    assert up.reads == 1 and run.finished == [(F, "timeout_total")]


@pytest.mark.anyio
async def test_oversized_event_mid_stream_ends_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """An event beyond the parser's cap after the commit: error event, FAILURE oversized_event."""
    monkeypatch.setattr(router.upstream.relay, "SSEParser", functools.partial(SSEParser, max_event_bytes=256))
    run = Run("openai-chat", FakeUpstream(HELLO, b"data: " + b"x" * 300, WORLD))
    out = await run.all()
    assert "exceeds 256 bytes" in _events(out[len(HELLO) :])[0][1]["error"]["message"]
    assert run.finished == [(F, "oversized_event")] and run.up.reads == 2


@pytest.mark.anyio
async def test_oversized_event_before_content_fails_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """An oversized event before the first content is an UpstreamProtocolError (try another route)."""
    monkeypatch.setattr(router.upstream.relay, "SSEParser", functools.partial(SSEParser, max_event_bytes=256))
    with pytest.raises(UpstreamProtocolError):
        await Run("openai-chat", FakeUpstream(ROLE, b"data: " + b"x" * 300)).relay.prime()


# --- body: upstream error events after the commit ---------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fmt", "first", "error"),
    [
        ("openai-chat", HELLO, CHAT_ERROR),
        ("anthropic-messages", A_DELTA, A_ERROR),
        ("openai-responses", R_DELTA, R_ERROR + R_FAILED),
    ],
)
async def test_upstream_error_event_is_relayed_and_ends_the_stream(fmt: Format, first: bytes, error: bytes) -> None:
    """The upstream's own error event(s) reach the client as they are, nothing is added or read after."""
    up = FakeUpstream(first, error, WORLD)
    run = Run(fmt, up)
    assert await run.all() == first + error
    assert run.finished == [(F, "upstream_error_event")] and up.reads == 2


@pytest.mark.anyio
async def test_responses_error_without_failed_gets_response_failed_only() -> None:
    """Responses: upstream `error` then close: the router adds response.failed, not a second error."""
    run = Run("openai-responses", FakeUpstream(R_CREATED, R_DELTA, R_ERROR))
    out = await run.all()
    names = [name for name, _ in _events(out)]
    assert names == ["response.created", "response.output_text.delta", "error", "response.failed"]
    failed = _events(out)[-1][1]
    assert failed["sequence_number"] == 6
    assert failed["response"]["error"] == {"code": "server_error", "message": "boom"}  # the upstream's own
    assert run.finished == [(F, "upstream_error_event")]


@pytest.mark.anyio
async def test_responses_error_then_a_broken_stream_gets_no_second_error() -> None:
    """Responses: the upstream's `error`, then a reset before its response.failed: the router
    closes with response.failed (the upstream's message), not another error event."""
    run = Run("openai-responses", FakeUpstream(R_CREATED, R_DELTA, R_ERROR, UpstreamConnectError("reset")))
    out = await run.all()
    names = [name for name, _ in _events(out)]
    assert names == ["response.created", "response.output_text.delta", "error", "response.failed"]
    assert _events(out)[-1][1]["response"]["error"]["message"] == "boom"
    assert run.finished == [(F, "upstream_connect_error")]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fmt", "first", "error"), [("openai-chat", HELLO, CHAT_ERROR), ("anthropic-messages", A_DELTA, A_ERROR)]
)
async def test_error_in_the_first_chunk_then_close_adds_nothing(fmt: Format, first: bytes, error: bytes) -> None:
    """Chat/Anthropic: an upstream error read with the first content, then the end: relayed as is, FAILURE."""
    run = Run(fmt, FakeUpstream(first + error))
    assert await run.all() == first + error
    assert run.finished == [(F, "upstream_error_event")]


@pytest.mark.anyio
async def test_error_in_the_first_chunk_ends_the_stream_at_once() -> None:
    """An error event read together with the first content ends the stream without waiting for more."""
    run = Run("openai-chat", FakeUpstream(HELLO + CHAT_ERROR, HANG), idle_s=0.05)
    assert await run.all() == HELLO + CHAT_ERROR
    assert run.finished == [(F, "upstream_error_event")]


@pytest.mark.anyio
async def test_content_and_final_in_one_chunk_need_no_further_read() -> None:
    """First content, finish_reason and [DONE] in one read: relayed in the first yield, SUCCESS."""
    up = FakeUpstream(ROLE + HELLO + STOP + DONE)
    run = Run("openai-chat", up)
    assert await run.all() == ROLE + HELLO + STOP + DONE
    assert run.chunks == [ROLE + HELLO + STOP + DONE] and up.reads == 1 and run.finished == [(S, "ok")]


# --- client cancellation --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_client_leaving_between_chunks_is_neutral() -> None:
    """Closing the body after the first chunk: upstream closed, finish(NEUTRAL) once, no more reads."""
    up = FakeUpstream(HELLO, WORLD, STOP, DONE)
    run = Run("openai-chat", up)
    await run.relay.prime()
    body = cast(AsyncGenerator[bytes, None], run.relay.body(run.finish))
    await body.__anext__()
    await body.aclose()
    assert run.finished == [(N, "client_disconnected")] and up.closes == 1 and up.reads == 1


@pytest.mark.anyio
async def test_client_cancellation_during_a_read_is_neutral() -> None:
    """Cancelled while waiting on the upstream: close() is called and finish(NEUTRAL) reported."""
    up = FakeUpstream(HELLO, HANG)
    run = Run("openai-chat", up, idle_s=30.0)
    await run.relay.prime()

    async def consume() -> None:
        async for chunk in run.relay.body(run.finish):
            run.chunks.append(chunk)

    with anyio.move_on_after(0.05) as scope:
        await consume()
    assert scope.cancelled_caught
    assert run.chunks == [HELLO]
    assert run.finished == [(N, "client_disconnected")] and up.closes == 1


@pytest.mark.anyio
async def test_empty_choices_chunk_before_content_is_held() -> None:
    """A content-less chunk with empty choices, before any content, is held rather than committing."""
    filters = b"data: " + orjson.dumps({"id": "", "choices": [], "prompt_filter_results": []}) + b"\n\n"
    up = FakeUpstream(filters, ROLE, HELLO)
    await Run("openai-chat", up).relay.prime()
    assert up.reads == 3


# --- the resume hook (continuing a broken stream elsewhere) -----------------------------------------


def resumer(rest: list[bytes] | None, reasons: list[str]) -> Resume:
    async def resume(reason: str) -> AsyncIterator[bytes] | None:
        reasons.append(reason)
        if rest is None:
            return None

        async def gen() -> AsyncIterator[bytes]:
            for piece in rest:
                yield piece

        return gen()

    return resume


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ((HELLO, UpstreamConnectError("reset")), "upstream_connect_error"),
        ((HELLO,), "truncated"),
        ((HELLO, CHAT_ERROR), "upstream_error_event"),
    ],
)
async def test_a_break_after_content_hands_over_to_the_resume_hook(script: tuple[Any, ...], reason: str) -> None:
    """A reset, a cut or an in-band error event after content: the hook is asked once with the
    reason; its rest follows what the client had, the upstream's error never reaches the client,
    and the broken attempt is finished as a failure with its connection closed."""
    reasons: list[str] = []
    run = Run("openai-chat", FakeUpstream(*script), resume=resumer([b"REST"], reasons))
    out = await run.all()
    assert out == HELLO + b"REST" and reasons == [reason]
    assert run.finished == [(AttemptResult.FAILURE, reason)] and run.up.closes == 1


@pytest.mark.anyio
async def test_a_hook_that_cannot_continue_leaves_the_ending_as_it_was() -> None:
    """The hook answers None: the held error event reaches the client as it came, and the
    attempt ends as it would have without a hook."""
    reasons: list[str] = []
    run = Run("openai-chat", FakeUpstream(HELLO, CHAT_ERROR), resume=resumer(None, reasons))
    out = await run.all()
    assert out == HELLO + CHAT_ERROR and reasons == ["upstream_error_event"]
    assert run.finished == [(AttemptResult.FAILURE, "upstream_error_event")]
