"""Incremental Server-Sent Events parsing and writing. Pure, no I/O.

The parser keeps only the bytes of the event it is still reading, so memory per stream is
bounded by the largest single event (capped by `max_event_bytes`), never the whole stream.
"""

from __future__ import annotations

from dataclasses import dataclass

# A single SSE event larger than this is not an LLM token stream; refusing it bounds memory.
DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024


class SSEError(ValueError):
    """The byte stream is not SSE we can relay (an oversized event)."""


@dataclass(slots=True)
class SSEEvent:
    """One event: its `event:` name (None when absent), its joined `data:` lines, and the
    original bytes (ending in a blank line) so an untranslated relay can pass them on as is."""

    event: str | None
    data: bytes
    raw: bytes

    @property
    def is_comment(self) -> bool:
        """Only comment lines (`: keep-alive`), no data: a keep-alive, not a message."""
        return self.event is None and not self.data


class SSEParser:
    """Feed it bytes as they arrive; it returns the events completed so far."""

    __slots__ = ("_buf", "_cr", "_max")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._buf = b""
        self._cr = False
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if b"\r" in chunk or self._cr:
            # CRLF framing is legal SSE; normalising keeps the split below simple. A trailing
            # \r is held back in case its \n arrives with the next read.
            if self._cr:
                chunk, self._cr = b"\r" + chunk, False
            if chunk.endswith(b"\r"):
                chunk, self._cr = chunk[:-1], True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        elif not self._buf and chunk.endswith(b"\n\n") and chunk.find(b"\n\n") == len(chunk) - 2 and chunk[0] != 10:
            return [_parse_block(chunk[:-2], chunk)]  # one whole event per read, the usual case: its raw bytes
        buf = self._buf + chunk if self._buf else chunk
        events: list[SSEEvent] = []
        start = 0
        # Each event's raw bytes are a slice (the read itself when it is one whole event), and
        # the usual `data:` / `event:` framings need no line splitting (_parse_block).
        while (end := buf.find(b"\n\n", start)) >= 0:
            if end == start:  # a blank line more
                start += 2
                continue
            if buf[start] == 10:  # blank lines before the event
                block = buf[start:end].lstrip(b"\n")
                raw = block + b"\n\n"
            else:
                block = buf[start:end]
                raw = buf if start == 0 and end + 2 == len(buf) else buf[start : end + 2]
            start = end + 2
            events.append(_parse_block(block, raw))
        self._buf = buf[start:] if start else buf
        if len(self._buf) > self._max:
            raise SSEError(f"an SSE event exceeds {self._max} bytes")
        return events

    def pending(self) -> bytes:
        """Bytes of an event not yet terminated by a blank line (non-empty at a truncation)."""
        return self._buf


def _parse_block(block: bytes, raw: bytes) -> SSEEvent:
    """One event (no blank line in `block`, none at its ends): the two framings LLM APIs use,
    `data: ...` alone and `event: ...` then `data: ...`, without splitting lines; `_parse_lines`
    for anything else (and tests check both agree)."""
    if block.startswith(b"data:"):
        if b"\n" not in block:
            return SSEEvent(None, block[6:] if block.startswith(b" ", 5) else block[5:], raw)
    elif block.startswith(b"event: "):
        nl = block.find(b"\n")
        if nl > 0 and block.startswith(b"data: ", nl + 1) and block.find(b"\n", nl + 1) < 0:
            return SSEEvent(block[7:nl].decode("utf-8", "replace"), block[nl + 7 :], raw)
    return _parse_lines(block, raw)


def _parse_lines(block: bytes, raw: bytes) -> SSEEvent:
    event: str | None = None
    data_lines: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data_lines.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
        # id: and retry: carry nothing an LLM client uses; they still travel in `raw`.
    data = data_lines[0] if len(data_lines) == 1 else b"\n".join(data_lines)
    return SSEEvent(event=event, data=data, raw=raw)


def encode(data: bytes, event: str | None = None) -> bytes:
    """One event on the wire. `data` must not contain newlines (JSON from orjson never does)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
