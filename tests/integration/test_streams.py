"""Streams over real sockets: held until the first content event, relayed event by event,
failed over before it, ended with a well-formed error event after it."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest

from router.formats.sse import SSEParser
from tests.conftest import BODIES

PATHS = list(BODIES)
FINAL = {"/v1/chat/completions": None, "/v1/messages": "message_stop", "/v1/responses": "response.completed"}


def stream(rs, path: str, **extra: Any) -> tuple[httpx.Response, list[tuple[str | None, Any]]]:
    """POST a stream request; return the response and its parsed events ((event, json|'[DONE]'))."""
    body = {**BODIES[path], "stream": True, **extra}
    with rs.client.stream("POST", path, json=body) as r:
        raw = r.read()
    events = []
    for ev in SSEParser().feed(raw):
        events.append((ev.event, "[DONE]" if ev.data == b"[DONE]" else orjson.loads(ev.data)))
    return r, events


def is_error(path: str, ev: tuple[str | None, Any]) -> bool:
    name, data = ev
    if path == "/v1/chat/completions":
        return isinstance(data, dict) and "error" in data
    return name in ("error", "response.failed")


def text_of(path: str, events: list[tuple[str | None, Any]]) -> str:
    out = []
    for name, data in events:
        if not isinstance(data, dict):
            continue
        if path == "/v1/chat/completions":
            for c in data.get("choices") or []:
                out.append(c.get("delta", {}).get("content") or "")
        elif name == "content_block_delta":
            out.append(data["delta"].get("text", ""))
        elif name == "response.output_text.delta":
            out.append(data["delta"])
    return "".join(out)


@pytest.mark.parametrize("path", PATHS)
def test_stream_relays_every_event_and_ends_cleanly(fakes, config_factory, router_server, path):
    """A healthy stream arrives whole, as SSE, with its final event and no error."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    r, events = stream(rs, path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert text_of(path, events).startswith("Hello from alpha")
    assert not any(is_error(path, e) for e in events)
    if path == "/v1/chat/completions":
        assert events[-1] == (None, "[DONE]")
    else:
        assert events[-1][0] == FINAL[path]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fault", [{"error_first": True}, {"truncate_after_chunks": 0}, {"status": 503}])
def test_stream_fails_over_before_first_content(fakes, config_factory, router_server, path, fault):
    """An error event first, an end before content, or a 503: the client sees only the next route's stream."""
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 1)]}))
    fakes.set("alpha", **fault)
    r, events = stream(rs, path)
    assert r.headers["x-router-provider"] == "beta"
    assert text_of(path, events).startswith("Hello from beta")
    assert not any(is_error(path, e) for e in events)
    if path == "/v1/messages":
        assert [e[0] for e in events].count("message_start") == 1
    if path == "/v1/responses":
        assert [e[0] for e in events].count("response.created") == 1


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fault", [{"reset_after_chunks": 2}, {"truncate_after_chunks": 2}])
def test_failure_after_first_byte_ends_with_error_event(fakes, config_factory, router_server, path, fault):
    """Without continuation, a reset or a clean close mid-stream gives the client an error event,
    never a clean end."""
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 1)]}, routing={"continue_streams": False}))
    fakes.set("alpha", **fault)
    r, events = stream(rs, path)
    assert r.status_code == 200 and r.headers["x-router-provider"] == "alpha"
    assert text_of(path, events) != ""
    assert is_error(path, events[-1])
    if path == "/v1/responses":
        assert events[-2][0] == "error" and events[-1][0] == "response.failed"
        created_id = events[0][1]["response"]["id"]
        assert events[-1][1]["response"]["id"] == created_id
    if path == "/v1/chat/completions":
        assert (None, "[DONE]") not in events
    assert fakes.served("beta") == 0


@pytest.mark.parametrize("path", PATHS)
def test_stall_after_first_byte_is_detected_within_idle(fakes, config_factory, router_server, path):
    """A silent upstream is cut after idle_s with an error event."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}, timeouts={"idle_s": 0.3}))
    fakes.set("alpha", stall_after_chunks=1)
    start = time.monotonic()
    _r, events = stream(rs, path)
    assert time.monotonic() - start < 2.0
    assert is_error(path, events[-1])


@pytest.mark.parametrize("path", PATHS)
def test_garbage_event_is_dropped_and_the_stream_goes_on(fakes, config_factory, router_server, path):
    """A non-JSON event never reaches the client; the rest of the stream does."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    fakes.set("alpha", garbage_event=True)
    _r, events = stream(rs, path)  # parsing every event as JSON proves none is garbage
    assert text_of(path, events).startswith("Hello from alpha")
    assert not any(is_error(path, e) for e in events)


def test_chat_stream_complete_without_done_is_ended_properly(fakes, config_factory, router_server):
    """A chat stream that reached finish_reason but lacks [DONE] gets one from the router."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    fakes.set("alpha", no_done=True)
    _r, events = stream(rs, "/v1/chat/completions")
    assert events[-1] == (None, "[DONE]")
    assert not any(is_error("/v1/chat/completions", e) for e in events)


def test_stream_is_held_until_first_content_then_relayed_event_by_event(fakes, config_factory, router_server):
    """Headers wait for the upstream's first content; later events arrive as they are produced."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    fakes.set("alpha", latency_ms=300, chunk_delay_ms=150, chunks=4)
    body = {**BODIES["/v1/messages"], "stream": True}
    start = time.monotonic()
    with rs.client.stream("POST", "/v1/messages", json=body) as r:
        headers_at = time.monotonic() - start
        arrivals = []
        parser = SSEParser()
        for chunk in r.iter_raw():
            for ev in parser.feed(chunk):
                arrivals.append((ev.event, time.monotonic() - start))
    assert headers_at >= 0.25, "headers were not held back until the first event"
    deltas = [t for name, t in arrivals if name == "content_block_delta"]
    assert len(deltas) == 4
    assert deltas[-1] - deltas[0] >= 0.3, "events were buffered, not relayed as they came"


def test_client_disconnect_cancels_the_upstream_request(fakes, config_factory, router_server):
    """Closing the client mid-stream closes the upstream connection and frees the route."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    fakes.set("alpha", chunk_delay_ms=200, chunks=50)
    body = {**BODIES["/v1/chat/completions"], "stream": True}
    with httpx.Client(base_url=rs.url, timeout=5) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as r:
            next(r.iter_raw())
    rs.wait_until(lambda: fakes.stats("alpha")["cancelled"] == 1, timeout=3)
    rs.wait_until(lambda: rs.ready().json()["providers"]["alpha"]["inflight"] == 0, timeout=3)
    assert rs.ready().json()["providers"]["alpha"]["breaker"] == "closed"
