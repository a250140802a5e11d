"""The incremental SSE parser and writer."""

from __future__ import annotations

import pytest

from router.formats.sse import SSEError, SSEParser, encode


def test_events_split_across_chunks_are_reassembled() -> None:
    """An event cut anywhere between two reads comes out whole, once."""
    wire = b'event: a\ndata: {"x":1}\n\ndata: {"y":2}\n\n'
    for cut in range(1, len(wire)):
        p = SSEParser()
        events = p.feed(wire[:cut]) + p.feed(wire[cut:])
        assert [(e.event, e.data) for e in events] == [("a", b'{"x":1}'), (None, b'{"y":2}')]
        assert p.pending() == b""


def test_crlf_framing_is_understood_even_when_cut_between_cr_and_lf() -> None:
    """CRLF line endings parse like LF ones."""
    wire = b"data: 1\r\n\r\ndata: 2\r\n\r\n"
    for cut in range(1, len(wire)):
        p = SSEParser()
        events = p.feed(wire[:cut]) + p.feed(wire[cut:])
        assert [e.data for e in events] == [b"1", b"2"]


def test_comment_only_block_is_a_keepalive() -> None:
    """`: ping` blocks become comment events with no data."""
    (ev,) = SSEParser().feed(b": keep-alive\n\n")
    assert ev.is_comment and ev.raw == b": keep-alive\n\n"


def test_multiline_data_is_joined_with_newlines() -> None:
    """Several data lines form one payload."""
    (ev,) = SSEParser().feed(b"data: a\ndata: b\n\n")
    assert ev.data == b"a\nb"


def test_raw_is_the_original_event_for_verbatim_relay() -> None:
    """raw keeps the event's own bytes, ending with one blank line."""
    (ev,) = SSEParser().feed(b"event: ping\ndata: {}\n\n\n\n")
    assert ev.raw == b"event: ping\ndata: {}\n\n"


def test_unterminated_event_stays_pending() -> None:
    """A cut stream leaves its partial event visible to the caller."""
    p = SSEParser()
    assert p.feed(b"data: partial") == []
    assert p.pending() == b"data: partial"


def test_oversized_event_is_refused() -> None:
    """Memory per stream is bounded."""
    p = SSEParser(max_event_bytes=10)
    with pytest.raises(SSEError):
        p.feed(b"data: " + b"x" * 20)


def test_encode_with_and_without_event_name() -> None:
    """The writer emits the two framings the formats use."""
    assert encode(b"{}") == b"data: {}\n\n"
    assert encode(b"{}", "error") == b"event: error\ndata: {}\n\n"
