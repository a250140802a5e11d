"""The stream relay's own CPU per event, in-process: no sockets, no server, no event loop work
beyond one suspension per read (a stand-in upstream hands out one event per read, as a real
stream 5 ms apart arrives). Each upstream format relayed natively and translated to the others,
against a bare loop that only reads and yields (the floor of this harness).

    .venv/bin/python benchmarks/relay_micro.py                     # this checkout
    .venv/bin/python benchmarks/relay_micro.py --repo /tmp/other    # another one

What a relayed chunk costs in the running router is this plus the I/O (an upstream read, a
write to the client, the event loop), for which see profile_stream.py --measure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import uvloop

# The router of --repo (default this checkout), whatever the venv's editable install points at.
sys.path.insert(
    0, dict(zip(sys.argv, sys.argv[1:], strict=False)).get("--repo", str(Path(__file__).resolve().parents[1]))
)

from router.clock import SystemClock
from router.config import Format, Timeouts
from router.formats import wire
from router.formats.translate import StreamTranslator
from router.upstream.provider import UpstreamResponse
from router.upstream.relay import StreamRelay

_CHAT_ID = '"id":"chatcmpl-a12e367c9cccd14b999da4ab","object":"chat.completion.chunk","created":1796303274,"model":"m"'
# Per format: the opening events (one read), then the text delta repeated (one read each).
EVENTS: dict[Format, tuple[bytes, bytes]] = {
    "openai-chat": (
        b"data: {" + _CHAT_ID.encode() + b',"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
        b'"finish_reason":null}],"usage":null}\n\n',
        b"data: {" + _CHAT_ID.encode() + b',"choices":[{"index":0,"delta":{"content":"word "},'
        b'"finish_reason":null}],"usage":null}\n\n',
    ),
    "anthropic-messages": (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_dd827c7fb5e07f09cb417e4d",'
        b'"type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,'
        b'"usage":{"input_tokens":35,"output_tokens":1}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"word "}}\n\n',
    ),
    "openai-responses": (
        b'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":'
        b'{"id":"resp_7b29cf72cae8e763397bdf4e","object":"response","created_at":1796303274,'
        b'"status":"in_progress","model":"m","output":[]}}\n\n'
        b'event: response.output_item.added\ndata: {"type":"response.output_item.added","sequence_number":1,'
        b'"output_index":0,"item":{"type":"message","id":"msg_7b29","role":"assistant","status":"in_progress",'
        b'"content":[]}}\n\n'
        b'event: response.content_part.added\ndata: {"type":"response.content_part.added","sequence_number":2,'
        b'"item_id":"msg_7b29","output_index":0,"content_index":0,"part":{"type":"output_text","text":"",'
        b'"annotations":[]}}\n\n',
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":3,'
        b'"item_id":"msg_7b29","output_index":0,"content_index":0,"delta":"word ","logprobs":[]}\n\n',
    ),
}
FORMATS: tuple[Format, ...] = ("openai-chat", "anthropic-messages", "openai-responses")


class Upstream:
    """Just what the relay uses of UpstreamResponse: one event per read, each read suspending
    once, as a read that waits for the network does."""

    def __init__(self, head: bytes, delta: bytes, n: int) -> None:
        self._items = [head, *[delta] * n]
        self._i = 0

    async def read(self) -> bytes:
        await asyncio.sleep(0)
        if self._i < len(self._items):
            self._i += 1
            return self._items[self._i - 1]
        return b""

    read_unmapped = read

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        pass


async def bare(up: Upstream) -> AsyncIterator[bytes]:
    while chunk := await up.read():
        yield chunk


async def relay(upstream: Format, client: Format, n: int) -> float:
    """CPU seconds to relay `n` deltas (after the opening events)."""
    fmt = wire(upstream)
    head, delta = EVENTS[upstream]
    up = Upstream(head, delta, n)
    translator = None if upstream == client else StreamTranslator(fmt, wire(client), "m", False)
    state = fmt.stream_state(0)
    r = StreamRelay(
        cast(UpstreamResponse, up),
        fmt,
        Timeouts(),
        time.monotonic() + 3600,
        SystemClock(),
        "p",
        state,
        False,
        translator,
    )
    await r.prime()
    start = time.process_time()
    async for _ in r.body(lambda result, reason: None):
        pass
    return time.process_time() - start


async def floor(n: int) -> float:
    up = Upstream(b"h", b"x", n)
    start = time.process_time()
    async for _ in bare(up):
        pass
    return time.process_time() - start


async def main(n: int, rounds: int) -> None:
    rows: list[tuple[str, Any]] = [("bare read-and-yield loop (the harness)", floor)]
    for up in FORMATS:
        for cl in FORMATS:
            label = f"{up} -> {cl}" + ("" if up == cl else " (translated)")
            rows.append((label, lambda k, u=up, c=cl: relay(u, c, k)))
    for label, run in rows:
        await run(200)  # warm-up
        times = [await run(n) for _ in range(rounds)]
        print(f"  {statistics.median(times) / n * 1e6:6.2f} µs per event  {label}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", help="the checkout whose router to measure (default this one)")
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    uvloop.run(main(a.events, a.rounds))
