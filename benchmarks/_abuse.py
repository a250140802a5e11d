"""The soak's misbehaving clients (benchmarks/soak.py): bad requests over raw sockets (oversized,
malformed, wrong types, absurd numbers, unknown paths, wrong methods, chunked bodies, huge
headers), slow clients that hold connections (headers a byte at a time, a body shorter than
declared, nothing at all, idle after an answer), and a raw HTTP/1.1 exchange for both. Raw
sockets, because an HTTP library refuses to send most of these. Every loop stops by itself at
its deadline; every connection is closed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from _common import HOST, bench_key

CHAT, MESSAGES, RESPONSES = "/v1/chat/completions", "/v1/messages", "/v1/responses"
_READ_CAP = 4 << 20  # enough for any answer to a bad request; more is not read


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    path: str  # the endpoint whose error envelope the answer should use ("" for none)
    parts: tuple[bytes, ...]  # written one after the other


@dataclass(slots=True)
class Exchange:
    status: int | None  # None: no answer at all
    outcome: str  # "answered", "closed without an answer", "reset", "timeout"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def request(
    method: str,
    path: str,
    body: bytes | None,
    *,
    key: str | None = "bad",
    headers: list[tuple[str, str]] | None = None,
    chunked: int = 0,  # > 0: send the body chunked, in pieces of this size
    content_length: int | None = None,  # declared instead of the real length
) -> tuple[bytes, ...]:
    """Raw HTTP/1.1 request bytes (head, then the body pieces); `Connection: close`, so the
    router ends the connection after its answer."""
    lines = [f"{method} {path} HTTP/1.1", f"host: {HOST}", "connection: close"]
    if key:
        lines.append(f"authorization: Bearer {bench_key(key)}")
    if body is not None:
        lines.append("content-type: application/json")
        if chunked:
            lines.append("transfer-encoding: chunked")
        else:
            lines.append(f"content-length: {len(body) if content_length is None else content_length}")
    lines += [f"{k}: {v}" for k, v in headers or []]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body is None:
        return (head,)
    if not chunked:
        return (head, body)
    pieces = [body[i : i + chunked] for i in range(0, len(body), chunked)]
    return (head, *(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces), b"0\r\n\r\n")


def _complete(data: bytes) -> bool:
    """Whether `data` holds a whole HTTP response (by content-length or the chunked end)."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    head = data[:head_end].lower()
    body = data[head_end + 4 :]
    if b"transfer-encoding: chunked" in head:
        return body.endswith(b"0\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def _parse(data: bytes) -> tuple[int | None, dict[str, str], bytes]:
    if not data.startswith(b"HTTP/"):
        return None, {}, data
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        return None, {}, data
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            try:
                size = int(size_line.split(b";")[0], 16)
            except ValueError:
                break
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2 :]
        body = out
    return status, headers, body


async def exchange(port: int, parts: tuple[bytes, ...], timeout: float) -> Exchange:
    """Write `parts` while reading the answer, until the router closes, the answer is complete,
    or `timeout`. A write the router refused (it answered early and closed) is not an error:
    what it answered is read all the same."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    except (OSError, TimeoutError):
        return Exchange(None, "connect failed")

    async def send() -> None:
        with contextlib.suppress(OSError):
            for part in parts:
                writer.write(part)
                await writer.drain()

    sender = asyncio.create_task(send())
    data, outcome = b"", "closed without an answer"
    try:
        async with asyncio.timeout(timeout):
            while len(data) < _READ_CAP:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
                if _complete(data):
                    break
    except TimeoutError:
        outcome = "timeout"
    except OSError:
        outcome = "reset"
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await sender
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    status, headers, body = _parse(data)
    if status is not None and outcome != "timeout":
        outcome = "answered"
    return Exchange(status, outcome, headers, body)


def envelope_ok(path: str, ex: Exchange) -> bool | None:
    """Whether an error answer is in its endpoint's envelope: OpenAI-style {"error": {"message"}}
    for chat and responses, Anthropic-style {"type": "error", "error": {...}} for messages. None
    where no envelope is due (another path, a success, no answer)."""
    if path not in (CHAT, MESSAGES, RESPONSES) or ex.status is None or ex.status < 400:
        return None
    try:
        doc = json.loads(ex.body)
    except ValueError:
        return False
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("message"), str):
        return False
    return doc.get("type") == "error" if path == MESSAGES else True


# --- the bad requests -----------------------------------------------------------------------------


def _j(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _nest(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def bad_cases(model: str, max_body: int) -> list[Case]:
    """Each a request a well-behaved client would not send. `max_body`: server.max_body_bytes."""
    msg = [{"role": "user", "content": "hi"}]
    chat = {"model": model, "messages": msg, "max_tokens": 16}
    anth = {"model": model, "messages": msg, "max_tokens": 16}
    resp = {"model": model, "input": "hi", "max_output_tokens": 16}
    big = b'{"model":"%s","messages":[{"role":"user","content":"' % model.encode()
    oversized = big + b"x" * (max_body + 1 - len(big) - 4) + b'"}]}'
    cases: list[tuple[str, str, tuple[bytes, ...]]] = [
        ("body over max_body_bytes", CHAT, request("POST", CHAT, oversized)),
        ("declared length 100 MiB, 1 KiB sent", CHAT, (request("POST", CHAT, b"{" * 1024, content_length=100 << 20))),
        ("chunked body over max_body_bytes", MESSAGES, request("POST", MESSAGES, oversized, chunked=64 << 10)),
        ("chunked valid body", CHAT, request("POST", CHAT, _j(chat), chunked=7)),
        ("chunked valid stream", RESPONSES, request("POST", RESPONSES, _j({**resp, "stream": True}), chunked=5)),
        (
            "bad chunk size",
            CHAT,
            (*request("POST", CHAT, None, headers=[("transfer-encoding", "chunked")]), b"zz\r\n"),
        ),
        (
            "JSON nested 100,000 deep",
            CHAT,
            request("POST", CHAT, b'{"model":"%s","messages":%s}' % (model.encode(), _nest(100_000))),
        ),
        (
            "JSON nested 200 deep in metadata",
            RESPONSES,
            request("POST", RESPONSES, _j(resp)[:-1] + b',"metadata":' + _nest(200) + b"}"),
        ),
        ("invalid JSON (truncated)", CHAT, request("POST", CHAT, _j(chat)[:-5])),
        (
            "invalid JSON (NaN)",
            MESSAGES,
            request("POST", MESSAGES, b'{"model":"%s","max_tokens":NaN,"messages":[]}' % model.encode()),
        ),
        ("invalid UTF-8", RESPONSES, request("POST", RESPONSES, b'{"model":"\xff\xfe","input":"\xc3"}')),
        (
            "lone surrogate in text",
            CHAT,
            request("POST", CHAT, b'{"model":"%s","messages":[{"role":"user","content":"\\ud800"}]}' % model.encode()),
        ),
        ("body is an array", CHAT, request("POST", CHAT, b"[1,2,3]")),
        ("empty body", MESSAGES, request("POST", MESSAGES, b"")),
        ("model is an object", CHAT, request("POST", CHAT, _j({**chat, "model": {"$gt": ""}}))),
        ("model 300 characters", MESSAGES, request("POST", MESSAGES, _j({**anth, "model": "m" * 300}))),
        ("model 500 KiB", CHAT, request("POST", CHAT, _j({**chat, "model": "m" * (500 << 10)}))),
        ("unknown model", RESPONSES, request("POST", RESPONSES, _j({**resp, "model": "no-such-model"}))),
        ("messages is an object", CHAT, request("POST", CHAT, _j({**chat, "messages": {"role": "user"}}))),
        (
            "message content is an object",
            CHAT,
            request("POST", CHAT, _j({**chat, "messages": [{"role": "user", "content": {"a": 1}}]})),
        ),
        (
            "message role is a number",
            MESSAGES,
            request("POST", MESSAGES, _j({**anth, "messages": [{"role": 7, "content": "hi"}]})),
        ),
        ("message is a string", MESSAGES, request("POST", MESSAGES, _j({**anth, "messages": ["hi"]}))),
        (
            "content block without type",
            MESSAGES,
            request("POST", MESSAGES, _j({**anth, "messages": [{"role": "user", "content": [{"text": 5}]}]})),
        ),
        ("system is a number", MESSAGES, request("POST", MESSAGES, _j({**anth, "system": 5}))),
        ("input is a number", RESPONSES, request("POST", RESPONSES, _j({**resp, "input": 5}))),
        ("input item is a number", RESPONSES, request("POST", RESPONSES, _j({**resp, "input": [5, None]}))),
        ("tools is a string", CHAT, request("POST", CHAT, _j({**chat, "tools": "all"}))),
        (
            "tool function name is an object",
            CHAT,
            request("POST", CHAT, _j({**chat, "tools": [{"type": "function", "function": {"name": {}}}]})),
        ),
        ("stream is a string", RESPONSES, request("POST", RESPONSES, _j({**resp, "stream": "yes"}))),
        ("temperature is an object", CHAT, request("POST", CHAT, _j({**chat, "temperature": {"x": 1}}))),
        ("stop is a number", MESSAGES, request("POST", MESSAGES, _j({**anth, "stop_sequences": 5}))),
        ("max_tokens 2**63", CHAT, request("POST", CHAT, _j({**chat, "max_tokens": 2**63}))),
        ("max_tokens 2**64 (messages)", MESSAGES, request("POST", MESSAGES, _j({**anth, "max_tokens": 2**64}))),
        ("max_tokens 1e30", CHAT, request("POST", CHAT, _j({**chat, "max_tokens": 1e30}))),
        (
            "max_output_tokens 1e400",
            RESPONSES,
            request("POST", RESPONSES, _j(resp).replace(b'"max_output_tokens": 16', b'"max_output_tokens": 1e400')),
        ),
        ("max_tokens -1", MESSAGES, request("POST", MESSAGES, _j({**anth, "max_tokens": -1}))),
        ("max_tokens is a string", CHAT, request("POST", CHAT, _j({**chat, "max_tokens": "16"}))),
        (
            "max_completion_tokens true",
            CHAT,
            request("POST", CHAT, _j({**chat, "max_tokens": None, "max_completion_tokens": True})),
        ),
        ("n 10**20", CHAT, request("POST", CHAT, _j({**chat, "n": 10**20}))),
        (
            "stream_options is a string",
            CHAT,
            request("POST", CHAT, _j({**chat, "stream": True, "stream_options": "x"})),
        ),
        ("header 1 MiB", CHAT, request("POST", CHAT, _j(chat), headers=[("x-pad", "a" * (1 << 20))])),
        ("5,000 headers", CHAT, request("POST", CHAT, _j(chat), headers=[(f"x-h{i}", "v") for i in range(5000)])),
        ("two content-lengths", CHAT, request("POST", CHAT, _j(chat), headers=[("content-length", "3")])),
        ("negative content-length", CHAT, request("POST", CHAT, _j(chat), content_length=-5)),
        ("wrong content-type", CHAT, request("POST", CHAT, _j(chat), headers=[("content-type", "text/plain")])),
        ("no key", CHAT, request("POST", CHAT, _j(chat), key=None)),
        ("wrong key", CHAT, request("POST", CHAT, _j(chat), key="nobody")),
        ("unknown path", "", request("POST", "/v1/completions/extra", _j(chat))),
        ("path 16 KiB", "", request("GET", "/" + "a" * (16 << 10), None)),
        ("path traversal", "", request("GET", "/../../etc/passwd", None)),
        ("percent-encoded NUL in path", "", request("GET", "/v1/models%00", None)),
        ("GET on an endpoint", CHAT, request("GET", CHAT, None)),
        ("PUT on an endpoint", MESSAGES, request("PUT", MESSAGES, _j(anth))),
        ("DELETE on an endpoint", RESPONSES, request("DELETE", RESPONSES, None)),
        ("not HTTP at all", "", (b"HELLO THERE\r\n\r\n",)),
        ("HTTP/9.9", "", (b"GET /v1/models HTTP/9.9\r\nhost: x\r\n\r\n",)),
        ("NUL bytes in the request line", "", (b"GET /v1/\x00models HTTP/1.1\r\nhost: x\r\n\r\n",)),
    ]
    return [Case(name, path, parts) for name, path, parts in cases]


@dataclass(slots=True)
class CaseResult:
    sent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # "400", "no answer: reset"...
    bad_envelope: int = 0
    server_errors: list[dict[str, Any]] = field(default_factory=list)  # every 5xx: status, request id, body
    ok_200: int = 0


async def bad_input_loop(port: int, cases: list[Case], workers: int, deadline: float) -> dict[str, CaseResult]:
    """`workers` connections at a time, each sending the next case (round robin) until `deadline`."""
    results = {c.name: CaseResult() for c in cases}
    counter = [0]

    async def worker() -> None:
        while time.monotonic() < deadline:
            case = cases[counter[0] % len(cases)]
            counter[0] += 1
            ex = await exchange(port, case.parts, timeout=20.0)
            r = results[case.name]
            r.sent += 1
            label = str(ex.status) if ex.status is not None else f"no answer: {ex.outcome}"
            # uvicorn's HTTP parser refused it: the app never saw it, so no envelope is due
            by_parser = ex.status == 400 and ex.body.strip() == b"Invalid HTTP request received."
            label += " (HTTP parser)" if by_parser else ""
            if ex.status is not None and ex.outcome == "timeout":
                label += " (then a timeout)"
            r.statuses[label] = r.statuses.get(label, 0) + 1
            r.ok_200 += ex.status == 200
            if not by_parser and envelope_ok(case.path, ex) is False:
                r.bad_envelope += 1
            if ex.status is not None and ex.status >= 500:
                r.server_errors.append(
                    {
                        "status": ex.status,
                        "request_id": ex.headers.get("x-request-id"),
                        "body": ex.body[:300].decode(errors="replace"),
                    }
                )

    await asyncio.gather(*(worker() for _ in range(workers)))
    return results


# --- slow clients ---------------------------------------------------------------------------------

SLOW_KINDS = (
    "headers a byte a second",
    "body shorter than declared",
    "connected, silent",
    "idle after an answer",
    "a header that never ends, 64 KiB/s",
)


@dataclass(slots=True)
class SlowConn:
    kind: str
    held_s: float  # how long the connection lived
    closed_by_router: bool
    answer: int | None  # the status the router sent, if any (the 200 of "idle after an answer" included)


async def slow_client(port: int, kind: str, model: str, deadline: float) -> list[SlowConn]:
    """Connections of one kind, one after the other until `deadline`: each held until the router
    closes it (then, after a pause, the next) or the deadline (then we close it)."""
    body = _j({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16})
    full = b"".join(request("POST", CHAT, body, key="slow"))
    conns: list[SlowConn] = []
    while time.monotonic() < deadline - 0.5:
        t0 = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.5)
            continue
        data = b""

        async def read_until_closed() -> None:
            nonlocal data
            while chunk := await reader.read(65536):
                data += chunk

        reading = asyncio.create_task(read_until_closed())

        async def feed() -> None:
            if kind == SLOW_KINDS[0]:
                for i in range(len(full)):
                    writer.write(full[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(1.0)
            elif kind == SLOW_KINDS[1]:
                head = full[: full.index(b"\r\n\r\n") + 4].replace(
                    b"content-length: %d" % len(body), b"content-length: %d" % (len(body) + 1000)
                )
                writer.write(head + body)
                await writer.drain()
            elif kind == SLOW_KINDS[3]:
                writer.write(full.replace(b"connection: close", b"connection: keep-alive"))
                await writer.drain()
            elif kind == SLOW_KINDS[4]:  # does the router buffer headers without a bound?
                writer.write(full[: full.index(b"\r\n") + 2] + b"x-pad: ")
                while time.monotonic() < deadline:
                    writer.write(b"a" * 8192)
                    await writer.drain()
                    await asyncio.sleep(0.125)
            await asyncio.sleep(deadline - time.monotonic())

        feeding = asyncio.create_task(feed())
        closed = False
        try:
            done, _ = await asyncio.wait(
                {reading, feeding}, timeout=max(0.0, deadline - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
            )
            closed = reading in done or (feeding in done and feeding.exception() is not None)
        finally:
            for task in (reading, feeding):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        conns.append(SlowConn(kind, time.monotonic() - t0, closed, _parse(data)[0]))
        if closed:
            await asyncio.sleep(0.5)
    return conns
