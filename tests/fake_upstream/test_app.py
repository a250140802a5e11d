"""The fake provider over a real loopback socket: wire shapes of the three formats, every fault,
the admin endpoints and the command-line entry point."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from router.fake_upstream import FaultError, Faults, RunningServer, start_in_thread
from router.fake_upstream.server import build_parser

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
RESPONSES = "/v1/responses"
BODIES: dict[str, dict[str, Any]] = {
    CHAT: {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]},
    MESSAGES: {"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
    RESPONSES: {"model": "resp-test", "input": "hi"},
}
FINAL_EVENT = {CHAT: "[DONE]", MESSAGES: "message_stop", RESPONSES: "response.completed"}
TEXT = "Hello from alpha."


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = start_in_thread("alpha")
    yield running
    running.stop()


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=2.0) as c:
        assert c.post("/_admin/reset").status_code == 200
        yield c


def set_faults(client: httpx.Client, **faults: Any) -> None:
    response = client.post("/_admin/faults", json=faults)
    assert response.status_code == 200, response.text


def parse_sse(raw: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE event."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        events.append((name, "\n".join(data)))
    return events


def names(events: list[tuple[str | None, str]]) -> list[str]:
    """Event names; data-only events are named by their data ('[DONE]') or 'chunk'."""
    return [name or (data if data == "[DONE]" else "chunk") for name, data in events]


def stream(client: httpx.Client, path: str, **extra: Any) -> tuple[httpx.Response, bytes]:
    response = client.post(path, json={**BODIES[path], "stream": True, **extra})
    return response, response.content


def read_until_error(client: httpx.Client, path: str) -> tuple[bytes, Exception | None]:
    """Stream and collect bytes until the stream ends or raises."""
    got = b""
    try:
        with client.stream("POST", path, json={**BODIES[path], "stream": True}) as response:
            assert response.status_code == 200
            for piece in response.iter_bytes():
                got += piece
    except (httpx.TransportError, httpx.TimeoutException) as exc:
        return got, exc
    return got, None


def wait_for(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def stats(client: httpx.Client) -> dict[str, Any]:
    result: dict[str, Any] = client.get("/_admin/stats").json()
    return result


# --- wire shapes -----------------------------------------------------------------------------


def test_chat_non_stream_shape(client: httpx.Client) -> None:
    """A chat completion echoes the model, carries the provider's text and full usage."""
    response = client.post(CHAT, json=BODIES[CHAT])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-fake-provider"] == "alpha"
    body = response.json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert isinstance(body["created"], int) and body["model"] == "gpt-test"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": TEXT, "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    usage = body["usage"]
    assert usage["prompt_tokens"] >= 1 and usage["completion_tokens"] >= 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}


def test_chat_stream_shape(client: httpx.Client) -> None:
    """A chat stream: role chunk, N content chunks, a finish chunk, [DONE]; no usage keys."""
    response, raw = stream(client, CHAT)
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-fake-provider"] == "alpha"
    events = parse_sse(raw)
    assert all(name is None for name, _ in events)
    assert events[-1][1] == "[DONE]"
    chunks = [orjson.loads(data) for _, data in events[:-1]]
    assert len(chunks) == 1 + 4 + 1
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-test" for c in chunks)
    assert all("usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks[1:5]) == TEXT
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:5])
    assert chunks[5]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}


def test_chat_stream_include_usage(client: httpx.Client) -> None:
    """With include_usage every chunk has usage null and a choices-less usage chunk precedes [DONE]."""
    _, raw = stream(client, CHAT, stream_options={"include_usage": True})
    events = parse_sse(raw)
    assert events[-1][1] == "[DONE]"
    chunks = [orjson.loads(data) for _, data in events[:-1]]
    assert all(c["usage"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + last["usage"]["completion_tokens"]


def test_messages_non_stream_shape(client: httpx.Client) -> None:
    """An Anthropic message has one text block, end_turn and the four usage counters."""
    response = client.post(MESSAGES, json=BODIES[MESSAGES])
    assert response.status_code == 200 and response.headers["x-fake-provider"] == "alpha"
    body = response.json()
    assert body["id"].startswith("msg_") and body["type"] == "message" and body["role"] == "assistant"
    assert body["model"] == "claude-test"
    assert body["content"] == [{"type": "text", "text": TEXT}]
    assert body["stop_reason"] == "end_turn" and body["stop_sequence"] is None
    assert set(body["usage"]) == {
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    }
    assert body["usage"]["input_tokens"] >= 1 and body["usage"]["output_tokens"] >= 1


def test_messages_stream_order(client: httpx.Client) -> None:
    """An Anthropic stream follows B.4: start, ping, block start, deltas, block stop, message delta, stop."""
    response, raw = stream(client, MESSAGES)
    assert response.headers["content-type"] == "text/event-stream"
    events = parse_sse(raw)
    assert names(events) == [
        "message_start",
        "ping",
        "content_block_start",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    payloads = [orjson.loads(data) for _, data in events]
    assert all(p["type"] == name for p, (name, _) in zip(payloads, events, strict=True))
    start = payloads[0]["message"]
    assert start["model"] == "claude-test" and start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] >= 1
    assert payloads[2]["content_block"] == {"type": "text", "text": ""}
    assert "".join(p["delta"]["text"] for p in payloads[3:7]) == TEXT
    assert payloads[8]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert payloads[8]["usage"]["output_tokens"] >= 1


def test_responses_non_stream_shape(client: httpx.Client) -> None:
    """A Responses answer is a completed response with one message item and detailed usage."""
    body = client.post(RESPONSES, json=BODIES[RESPONSES]).json()
    assert body["id"].startswith("resp_") and body["object"] == "response" and body["status"] == "completed"
    assert body["model"] == "resp-test"
    (item,) = body["output"]
    assert item["type"] == "message" and item["status"] == "completed" and item["role"] == "assistant"
    assert item["content"][0]["type"] == "output_text" and item["content"][0]["text"] == TEXT
    usage = body["usage"]
    assert usage["input_tokens_details"]["cached_tokens"] == 0
    assert usage["output_tokens_details"]["reasoning_tokens"] == 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_responses_stream_order(client: httpx.Client) -> None:
    """A Responses stream follows C.3 with sequence numbers counting up from 0."""
    _, raw = stream(client, RESPONSES)
    events = parse_sse(raw)
    assert names(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    payloads = [orjson.loads(data) for _, data in events]
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    assert all(p["type"] == name for p, (name, _) in zip(payloads, events, strict=True))
    assert payloads[0]["response"]["status"] == "in_progress" and payloads[0]["response"]["output"] == []
    assert payloads[2]["item"]["content"] == []
    assert "".join(p["delta"] for p in payloads[4:8]) == TEXT
    final = payloads[-1]["response"]
    assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == TEXT
    assert final["usage"]["total_tokens"] >= 2


def test_text_and_chunks_override(client: httpx.Client) -> None:
    """faults.text replaces the answer and faults.chunks sets the number of content deltas."""
    set_faults(client, text="abcdefgh", chunks=2)
    events = parse_sse(stream(client, MESSAGES)[1])
    deltas = [orjson.loads(d)["delta"]["text"] for n, d in events if n == "content_block_delta"]
    assert deltas == ["abcd", "efgh"]


def test_bad_json_is_400_in_envelope(client: httpx.Client) -> None:
    """Unparseable bodies get a 400 in the endpoint's own error envelope."""
    chat = client.post(CHAT, content=b"{nope")
    assert chat.status_code == 400 and chat.json()["error"]["type"] == "invalid_request_error"
    assert set(chat.json()["error"]) == {"message", "type", "code", "param"}
    anthropic = client.post(MESSAGES, content=b"[1,")
    assert anthropic.status_code == 400
    assert anthropic.json()["type"] == "error" and anthropic.json()["error"]["type"] == "invalid_request_error"
    assert client.post(RESPONSES, json={"input": "no model"}).status_code == 400


# --- faults ----------------------------------------------------------------------------------


def test_status_fault_with_retry_after(client: httpx.Client) -> None:
    """faults.status answers that status with retry-after, in each format's envelope."""
    set_faults(client, status=429, retry_after=1.5)
    chat = client.post(CHAT, json=BODIES[CHAT])
    assert chat.status_code == 429 and chat.headers["retry-after"] == "1.5"
    assert chat.headers["x-fake-provider"] == "alpha"
    assert chat.json()["error"]["code"] == "rate_limit_exceeded"
    anthropic = client.post(MESSAGES, json={**BODIES[MESSAGES], "stream": True})
    assert anthropic.status_code == 429
    assert anthropic.json()["error"]["type"] == "rate_limit_error"
    assert client.post(RESPONSES, json=BODIES[RESPONSES]).status_code == 429


def test_fail_rate_one_answers_fail_status(client: httpx.Client) -> None:
    """fail_rate=1 makes every request answer fail_status."""
    set_faults(client, fail_rate=1, fail_status=529)
    response = client.post(MESSAGES, json=BODIES[MESSAGES])
    assert response.status_code == 529 and response.json()["error"]["type"] == "overloaded_error"
    assert "retry-after" not in response.headers


def test_hang_never_answers(client: httpx.Client) -> None:
    """hang sends nothing at all; the client times out and the server counts a cancellation."""
    set_faults(client, hang=True)
    with pytest.raises(httpx.ReadTimeout):
        client.post(CHAT, json=BODIES[CHAT], timeout=0.2)
    wait_for(lambda: stats(client)["cancelled"] == 1)
    assert stats(client)["in_flight"] == 0


def test_latency_delays_first_byte(client: httpx.Client) -> None:
    """latency_ms delays the response headers."""
    set_faults(client, latency_ms=150)
    started = time.perf_counter()
    assert client.post(CHAT, json=BODIES[CHAT]).status_code == 200
    assert time.perf_counter() - started >= 0.14


def test_hang_after_headers_non_stream(client: httpx.Client) -> None:
    """hang_after_headers sends 200 and headers, then no body."""
    set_faults(client, hang_after_headers=True)
    with client.stream("POST", CHAT, json=BODIES[CHAT], timeout=0.3) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            response.read()


def test_hang_after_headers_stream(client: httpx.Client) -> None:
    """hang_after_headers on a stream sends SSE headers, then no events."""
    set_faults(client, hang_after_headers=True)
    with client.stream("POST", RESPONSES, json={**BODIES[RESPONSES], "stream": True}, timeout=0.3) as response:
        assert response.headers["content-type"] == "text/event-stream"
        with pytest.raises(httpx.ReadTimeout):
            response.read()


@pytest.mark.parametrize("path", [CHAT, MESSAGES, RESPONSES])
def test_error_first(client: httpx.Client, path: str) -> None:
    """error_first makes the format's error event the only event of a 200 stream."""
    set_faults(client, error_first=True)
    response, raw = stream(client, path)
    assert response.status_code == 200
    ((name, data),) = parse_sse(raw)
    payload = orjson.loads(data)
    if path == CHAT:
        assert name is None and payload["error"]["type"] == "server_error"
    elif path == MESSAGES:
        assert name == "error" and payload["error"]["type"] == "overloaded_error"
    else:
        assert name == "error" and payload["code"] == "server_error" and payload["sequence_number"] == 0


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
def test_reset_after_chunks_is_a_client_error(client: httpx.Client, path: str) -> None:
    """reset_after_chunks delivers N deltas, then breaks the connection (no clean end)."""
    set_faults(client, reset_after_chunks=2)
    got, error = read_until_error(client, path)
    assert isinstance(error, httpx.RemoteProtocolError | httpx.ReadError)
    assert got.count(b'"content"' if path == CHAT else b"content_block_delta") >= 2
    assert FINAL_EVENT[path].encode() not in got
    wait_for(lambda: stats(client)["aborted"] == 1)


@pytest.mark.parametrize("path", [CHAT, MESSAGES, RESPONSES])
def test_truncate_after_chunks_ends_cleanly(client: httpx.Client, path: str) -> None:
    """truncate_after_chunks ends the HTTP response cleanly but without the final events."""
    set_faults(client, truncate_after_chunks=1)
    got, error = read_until_error(client, path)
    assert error is None
    events = names(parse_sse(got))
    assert FINAL_EVENT[path] not in events
    assert len([e for e in events if e in ("chunk", "content_block_delta", "response.output_text.delta")]) in (1, 2)


def test_stall_after_chunks_goes_silent(client: httpx.Client) -> None:
    """stall_after_chunks sends N deltas, then keeps the connection open without events."""
    set_faults(client, stall_after_chunks=1)
    with client.stream("POST", MESSAGES, json={**BODIES[MESSAGES], "stream": True}, timeout=0.3) as response:
        got = b""
        with pytest.raises(httpx.ReadTimeout):
            for piece in response.iter_bytes():
                got += piece
    assert names(parse_sse(got)) == ["message_start", "ping", "content_block_start", "content_block_delta"]


def test_garbage_event_after_first_delta(client: httpx.Client) -> None:
    """garbage_event inserts one unparseable data event right after the first content delta."""
    set_faults(client, garbage_event=True)
    events = parse_sse(stream(client, CHAT)[1])
    datas = [data for _, data in events]
    assert datas[2] == "not-json{"
    assert datas.count("not-json{") == 1 and datas[-1] == "[DONE]"


def test_no_done(client: httpx.Client) -> None:
    """no_done drops the final [DONE] of a chat stream but keeps the finish chunk."""
    set_faults(client, no_done=True)
    events = parse_sse(stream(client, CHAT)[1])
    assert events[-1][1] != "[DONE]"
    assert orjson.loads(events[-1][1])["choices"][0]["finish_reason"] == "stop"


def test_chunk_delay_spaces_deltas(client: httpx.Client) -> None:
    """chunk_delay_ms waits before each delta and before the final events."""
    set_faults(client, chunk_delay_ms=30, chunks=2)
    started = time.perf_counter()
    _, raw = stream(client, CHAT)
    assert time.perf_counter() - started >= 0.085
    assert parse_sse(raw)[-1][1] == "[DONE]"


def test_times_once_then_healthy(client: httpx.Client) -> None:
    """times=1 applies the faults to one request, then the provider is healthy again."""
    set_faults(client, status=503, times=1)
    assert client.post(CHAT, json=BODIES[CHAT]).status_code == 503
    assert client.post(CHAT, json=BODIES[CHAT]).status_code == 200
    faults = client.get("/_admin/faults").json()
    assert faults["status"] is None and faults["times"] is None


def test_health_status(client: httpx.Client) -> None:
    """GET /v1/models lists models, and answers health_status independently of traffic faults."""
    models = client.get("/v1/models")
    assert models.status_code == 200 and models.json()["object"] == "list"
    assert models.headers["x-fake-provider"] == "alpha"
    set_faults(client, health_status=503)
    assert client.get("/v1/models").status_code == 503
    assert client.post(CHAT, json=BODIES[CHAT]).status_code == 200
    set_faults(client, health_status=200, status=500)
    assert client.get("/v1/models").status_code == 200


# --- admin -----------------------------------------------------------------------------------


def test_admin_faults_rejects_unknown_or_bad_values(client: httpx.Client) -> None:
    """Unknown keys and wrong types are a 400 and change nothing."""
    response = client.post("/_admin/faults", json={"latency_ms": 5, "nope": 1})
    assert response.status_code == 400 and "nope" in response.json()["error"]
    assert client.post("/_admin/faults", json={"hang": "yes"}).status_code == 400
    assert client.post("/_admin/faults", content=b"[").status_code == 400
    assert client.get("/_admin/faults").json()["latency_ms"] == 0
    current = client.post("/_admin/faults", json={"latency_ms": 5}).json()
    assert current["latency_ms"] == 5 and current["chunks"] == 4


def test_stats_last_request(client: httpx.Client) -> None:
    """stats record per-path counts and the last request's path, lowercased headers and body."""
    client.post(CHAT, json=BODIES[CHAT], headers={"Authorization": "Bearer upstream-key"})
    client.post(MESSAGES + "?beta=true", json=BODIES[MESSAGES], headers={"X-Api-Key": "k2"})
    client.get("/v1/models")
    result = stats(client)
    assert result["requests"] == {CHAT: 1, MESSAGES: 1, "/v1/models": 1}
    assert result["completed"] == 2 and result["in_flight"] == 0 and result["cancelled"] == 0
    last = result["last_request"]
    assert last["path"] == MESSAGES and last["query"] == "beta=true"
    assert last["headers"]["x-api-key"] == "k2" and "authorization" not in last["headers"]
    assert last["body"] == BODIES[MESSAGES]
    client.post("/_admin/reset")
    assert stats(client)["requests"] == {} and stats(client)["last_request"] is None


def test_cancelled_when_client_leaves_mid_stream(client: httpx.Client) -> None:
    """A client that disconnects mid-stream is counted as cancelled, not completed."""
    set_faults(client, chunk_delay_ms=50, chunks=20)
    with client.stream("POST", CHAT, json={**BODIES[CHAT], "stream": True}) as response:
        next(response.iter_bytes())
    wait_for(lambda: stats(client)["cancelled"] == 1)
    assert stats(client)["completed"] == 0 and stats(client)["in_flight"] == 0


# --- lifecycle and pure parts ----------------------------------------------------------------


def test_stop_drops_hanging_requests_quickly() -> None:
    """stop() returns promptly while a request hangs, and that request's connection is closed."""
    running = start_in_thread("beta", Faults(hang=True))
    body = orjson.dumps(BODIES[CHAT])
    head = f"POST {CHAT} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", running.port), timeout=2.0) as sock:
        sock.sendall(head.encode() + body)
        wait_for(lambda: httpx.get(running.url + "/_admin/stats").json()["in_flight"] == 1)
        started = time.perf_counter()
        running.stop()
        assert time.perf_counter() - started < 1.0
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert not received.startswith(b"HTTP/1.1 200")


def test_faults_parsing() -> None:
    """Faults parse strictly, merge all-or-nothing and count `times` down."""
    faults = Faults.from_dict({"latency_ms": 10, "status": 500, "times": 2, "text": "x"})
    assert faults.latency_ms == 10.0 and faults.status == 500
    with pytest.raises(FaultError):
        faults.update({"chunks": 2, "fail_rate": 1.5})
    assert faults.chunks == 4
    with pytest.raises(FaultError):
        Faults.from_dict({"status": True})
    assert faults.take().status == 500 and faults.times == 1
    assert faults.take().status == 500
    assert faults.status is None and faults.times is None and faults.text == "x"
    assert faults.take() is faults


def test_main_serves_until_sigint() -> None:
    """`python -m router.fake_upstream` serves with CLI faults and exits 0 on SIGINT."""
    args = build_parser().parse_args(["--port", "1", "--reset-after-chunks", "2", "--hang", "--retry-after", "0.5"])
    assert args.reset_after_chunks == 2 and args.hang is True and args.retry_after == 0.5
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "router.fake_upstream", "--port", str(port), "--name", "cli", "--status", "418"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(url + "/v1/models").status_code == 200
            except httpx.ConnectError:
                return False

        wait_for(up, timeout=10.0)
        response = httpx.post(url + CHAT, json=BODIES[CHAT])
        assert response.status_code == 418 and response.headers["x-fake-provider"] == "cli"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


# --- prefill: what a continuation sends ------------------------------------------------------------

PREFILL_BODIES: dict[str, dict[str, Any]] = {
    CHAT: {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello from"}]},
    MESSAGES: {
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello from"}],
    },
    RESPONSES: {
        "input": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello from"},
        ]
    },
}


def _answer_text(path: str, body: dict[str, Any]) -> str:
    if path == CHAT:
        return str(body["choices"][0]["message"]["content"])
    if path == MESSAGES:
        return "".join(b["text"] for b in body["content"] if b["type"] == "text")
    return "".join(p["text"] for item in body["output"] if item["type"] == "message" for p in item["content"])


@pytest.mark.parametrize("path", [CHAT, MESSAGES, RESPONSES])
def test_a_prefill_is_continued_with_only_the_rest(client: httpx.Client, path: str) -> None:
    """A trailing assistant message that begins the answer gets only the rest of it, the seam's
    space included; a stream's deltas carry the same rest."""
    body = {**PREFILL_BODIES[path], "model": "m"}
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    assert _answer_text(path, response.json()) == " alpha."
    set_faults(client, chunks=1)  # the whole rest in one delta, so it shows as one JSON string
    streamed = client.post(path, json={**body, "stream": True}).content.decode()
    assert '" alpha."' in streamed and "Hello" not in streamed


@pytest.mark.parametrize("path", [CHAT, MESSAGES, RESPONSES])
def test_a_prefill_that_does_not_begin_the_answer_gets_the_whole_answer(client: httpx.Client, path: str) -> None:
    """A prefill the answer does not start with is ignored: the answer diverges from it."""
    body = {**PREFILL_BODIES[path], "model": "m"}
    set_faults(client, text="Something else entirely.")
    assert _answer_text(path, client.post(path, json=body).json()) == "Something else entirely."


@pytest.mark.parametrize("path", [CHAT, MESSAGES, RESPONSES])
def test_refuse_prefill_answers_400(client: httpx.Client, path: str) -> None:
    """With refuse_prefill, a request ending in an assistant message is refused, as some models do."""
    set_faults(client, refuse_prefill=True)
    response = client.post(path, json={**PREFILL_BODIES[path], "model": "m"})
    assert response.status_code == 400 and "prefill" in response.text
    assert client.post(path, json=BODIES[path]).status_code == 200, "no prefill: answered"


def test_anthropic_refuses_a_prefill_ending_in_whitespace(client: httpx.Client) -> None:
    """Anthropic's rule: the final assistant content may not end with whitespace; OpenAI's allow it."""
    body = {**PREFILL_BODIES[MESSAGES], "model": "m"}
    body["messages"] = [*body["messages"][:-1], {"role": "assistant", "content": "Hello from "}]
    response = client.post(MESSAGES, json=body)
    assert response.status_code == 400 and "trailing whitespace" in response.json()["error"]["message"]
    chat = {**PREFILL_BODIES[CHAT], "model": "m"}
    chat["messages"] = [*chat["messages"][:-1], {"role": "assistant", "content": "Hello from "}]
    assert _answer_text(CHAT, client.post(CHAT, json=chat).json()) == "alpha."
