"""`Splice`: the rest of a broken answer written into the client's stream (no sockets): the seam,
the whole answer's usage, and a restarted answer matched against what the client has."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from router.formats import CHAT
from router.formats.base import Delivered
from router.formats.codec import ir
from router.formats.sse import SSEParser
from router.formats.translate import Splice
from router.types import Usage

DELIVERED = Usage(100, 0, 0, 5)


def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {
        "id": "c-new",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def call(index: int, fragment: str, name: str | None = None) -> dict[str, object]:
    c: dict[str, object] = {"index": index, "function": {"arguments": fragment}}
    if name is not None:
        c.update(id=f"call-new-{index}", type="function", function={"name": name, "arguments": fragment})
    return chunk({"tool_calls": [c]})


def client_events(splice: Splice, upstream: list[Any]) -> list[Any]:
    raw = b"".join(splice.feed(obj) for obj in upstream) + splice.finish()
    return [orjson.loads(e.data) for e in SSEParser().feed(raw) if e.data != b"[DONE]"]


def resumed_writer() -> Any:
    """The client's chat writer, as if it had written the opening and some text already."""
    writer = CHAT.stream_writer("m", False)
    writer.write(ir.Start("c-client", "m", 1))
    writer.write(ir.TextDelta("Hello"))
    return writer


def text(events: list[Any]) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))


def test_the_seam_is_dropped_once_and_the_id_is_the_clients() -> None:
    """The rest's leading whitespace that the prefill lost is dropped from its first text only."""
    s = Splice(CHAT, resumed_writer(), " ", DELIVERED)
    events = client_events(
        s,
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": " world"}),
            chunk({"content": " !"}),
            chunk({}, "stop"),
        ],
    )
    assert text(events) == "world !" and {e["id"] for e in events} == {"c-client"}
    assert not any("role" in e["choices"][0]["delta"] for e in events)


def test_the_final_usage_is_the_whole_answers() -> None:
    """Input as the client's request had it, output what was delivered plus the rest."""
    writer = CHAT.stream_writer("m", True)
    writer.write(ir.Start("c-client", "m", 1))
    s = Splice(CHAT, writer, "", DELIVERED)
    last = {"id": "x", "choices": [], "usage": {"prompt_tokens": 300, "completion_tokens": 7}}
    events = client_events(s, [chunk({"content": "rest"}), chunk({}, "stop"), last, "[DONE]"])
    [usage] = [e["usage"] for e in events if e.get("usage")]
    assert usage["prompt_tokens"] == 100 and usage["completion_tokens"] == 12


@pytest.mark.parametrize(
    ("delivered", "upstream", "want_text", "want_args"),
    [
        (
            Delivered("Hello", ()),
            [chunk({"content": "Hel"}), chunk({"content": "lo wor"}), chunk({"content": "ld"})],
            " world",
            "",
        ),
        (
            Delivered("Hello", (("weather", '{"ci'),)),
            [chunk({"content": "Hello"}), call(0, '{"c', "weather"), call(0, 'ity": 1}')],
            "",
            'ty": 1}',
        ),
        (Delivered("", (("weather", ""),)), [call(0, '{"a": 1}', "weather")], "", '{"a": 1}'),
        (
            Delivered("Hi", (("a", "{}"), ("b", '{"x'))),
            [chunk({"content": "Hi"}), call(0, "{}", "a"), call(1, '{"x": 2}', "b")],
            "",
            '": 2}',
        ),
    ],
)
def test_a_restarted_answer_is_matched_and_only_the_rest_goes_on(delivered, upstream, want_text, want_args) -> None:
    """What the client has (text, then tool calls) is dropped from the restarted answer; the rest
    continues its open text or its open call's arguments, under the client's ids."""
    s = Splice(CHAT, resumed_writer(), "", DELIVERED, delivered)
    events = client_events(s, [*upstream, chunk({}, "tool_calls" if delivered.calls else "stop")])
    assert text(events) == want_text
    args = "".join(
        c["function"]["arguments"]
        for e in events
        if e.get("choices")
        for c in e["choices"][0]["delta"].get("tool_calls") or []
    )
    assert args == want_args
    starts = [
        c for e in events if e.get("choices") for c in e["choices"][0]["delta"].get("tool_calls") or [] if c.get("id")
    ]
    assert starts == [], "the client's calls keep their ids: no second start"


@pytest.mark.parametrize(
    ("delivered", "upstream"),
    [
        (Delivered("Hello", ()), [chunk({"content": "Help"})]),
        (Delivered("Hello", ()), [chunk({"content": "He"}), chunk({}, "stop")]),
        (Delivered("Hello", (("weather", "{"),)), [chunk({"content": "Hello more"})]),
        (Delivered("Hello", (("weather", "{"),)), [chunk({"content": "Hello"}), call(0, "{", "lookup")]),
        (Delivered("Hello", (("weather", '{"a'),)), [chunk({"content": "Hello"}), call(0, '{"b": 1}', "weather")]),
    ],
    ids=["text", "short", "more-text", "other-tool", "other-args"],
)
def test_a_restarted_answer_that_diverges_is_an_error_event(delivered, upstream) -> None:
    """Never spliced: the client's stream ends with its error event."""
    s = Splice(CHAT, resumed_writer(), "", DELIVERED, delivered)
    events = client_events(s, upstream)
    assert "error" in events[-1] and "diverged" in events[-1]["error"]["message"]
