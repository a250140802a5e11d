"""Usage read from answers and streams (`WireFormat.read_usage`, `StreamState`), output caps and
input estimates, per wire format."""

from __future__ import annotations

from typing import Any

import pytest

from router.billing.accounting import reserve_usd
from router.config import Price
from router.formats import CHAT, wire
from router.formats.base import StreamState, estimate_input_tokens
from router.types import Usage

# --- realistic events (protocols.md A.4, B.4, C.3) -----------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    """A chat.completion.chunk with one choice (or none, when `delta` is None: the usage chunk)."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": "m",
        "choices": choices,
        "usage": usage,
    }


def tool_delta(arguments: str, first: bool = False) -> dict[str, Any]:
    call: dict[str, Any] = {"index": 0, "function": {"arguments": arguments}}
    if first:
        call.update(id="call_1", type="function")
        call["function"]["name"] = "get_weather"
    return {"tool_calls": [call]}


CHAT_USAGE = {
    "prompt_tokens": 50,
    "completion_tokens": 20,
    "total_tokens": 70,
    "prompt_tokens_details": {"cached_tokens": 30},
    "completion_tokens_details": {"reasoning_tokens": 5},
}
CHAT_STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Let me check"}),  # 12 chars
    chunk(tool_delta("", first=True)),
    chunk(tool_delta('{"city":')),  # 8 chars
    chunk(tool_delta('"Paris"}')),  # 8 chars
    chunk({}, finish="tool_calls"),
    chunk(None, usage=CHAT_USAGE),
]


def block_delta(index: int, kind: str, key: str, value: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": {"type": kind, key: value}}


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


TOOL_USE_BLOCK = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
ANTHROPIC_START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 40,
            "cache_creation_input_tokens": 7,
            "cache_read_input_tokens": 100,
            "output_tokens": 1,
        },
    },
}
ANTHROPIC_STREAM: list[dict[str, Any]] = [
    ANTHROPIC_START,
    block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
    block_delta(0, "thinking_delta", "thinking", "User wants"),  # 10 chars
    block_delta(0, "signature_delta", "signature", "EqQB" * 50),  # not output text
    {"type": "content_block_stop", "index": 0},
    block_start(1, {"type": "text", "text": ""}),
    {"type": "ping"},
    block_delta(1, "text_delta", "text", "Let me check."),  # 13 chars
    {"type": "content_block_stop", "index": 1},
    block_start(2, TOOL_USE_BLOCK),
    block_delta(2, "input_json_delta", "partial_json", ""),
    block_delta(2, "input_json_delta", "partial_json", '{"city": "Pa'),  # 12 chars
    block_delta(2, "input_json_delta", "partial_json", 'ris"}'),  # 5 chars
    {"type": "content_block_stop", "index": 2},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 60},
    },
    {"type": "message_stop"},
]


def resp_event(kind: str, seq: int, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "sequence_number": seq, **fields}


RESPONSES_USAGE = {
    "input_tokens": 50,
    "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 10},
    "output_tokens": 80,
    "output_tokens_details": {"reasoning_tokens": 30},
    "total_tokens": 130,
}
_RESP_SHELL: dict[str, Any] = {
    "id": "resp_1",
    "object": "response",
    "status": "in_progress",
    "output": [],
    "usage": None,
}
_REASONING_ITEM = {"type": "reasoning", "id": "rs_1", "summary": []}
_MSG_ITEM = {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress", "content": []}
_CALL_ITEM = {
    "type": "function_call",
    "id": "fc_1",
    "call_id": "call_1",
    "name": "get_weather",
    "arguments": "",
    "status": "in_progress",
}
_TEXT = {"item_id": "msg_1", "output_index": 1, "content_index": 0, "logprobs": []}
_ARGS = '{"city":"Paris"}'
RESPONSES_STREAM = [
    resp_event("response.created", 0, response=_RESP_SHELL),
    resp_event("response.in_progress", 1, response=_RESP_SHELL),
    resp_event("response.output_item.added", 2, output_index=0, item=_REASONING_ITEM),
    resp_event(
        "response.reasoning_summary_text.delta", 3, item_id="rs_1", output_index=0, summary_index=0, delta="Thinking"
    ),  # 8 chars
    resp_event("response.output_item.added", 4, output_index=1, item=_MSG_ITEM),
    resp_event("response.output_text.delta", 5, **_TEXT, delta="Let me check."),  # 13 chars
    resp_event("response.output_text.done", 6, **_TEXT, text="Let me check."),
    resp_event("response.output_item.added", 7, output_index=2, item=_CALL_ITEM),
    resp_event("response.function_call_arguments.delta", 8, item_id="fc_1", output_index=2, delta=_ARGS),  # 16 chars
    resp_event("response.function_call_arguments.done", 9, item_id="fc_1", output_index=2, arguments=_ARGS),
    resp_event("response.completed", 10, response={**_RESP_SHELL, "status": "completed", "usage": RESPONSES_USAGE}),
]

STREAMS: dict[str, list[dict[str, Any]]] = {
    "openai-chat": CHAT_STREAM,
    "anthropic-messages": ANTHROPIC_STREAM,
    "openai-responses": RESPONSES_STREAM,
}


def feed_all(fmt: Any, events: list[Any], estimate: int = 500) -> StreamState:
    meter = wire(fmt).stream_state(estimate)
    for e in events:
        meter.feed(e)
    return meter


# --- usage_from_answer ---------------------------------------------------------------------------

ANSWERS = [
    # OpenAI chat: prompt_tokens includes cache reads and writes.
    (
        "openai-chat",
        {
            "usage": {
                "prompt_tokens": 50,
                "completion_tokens": 20,
                "total_tokens": 70,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            }
        },
        Usage(50, 0, 0, 20, 0),
    ),
    ("openai-chat", {"usage": CHAT_USAGE}, Usage(20, 30, 0, 20, 5)),
    (
        "openai-chat",
        {
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": 9,
                "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 25},
            }
        },
        Usage(15, 60, 25, 9, 0),
    ),
    (
        "openai-chat",
        {
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 50}}
        },  # inconsistent: clamp, never negative
        Usage(0, 50, 0, 3, 0),
    ),
    # Anthropic: input_tokens excludes cache reads and writes.
    (
        "anthropic-messages",
        {
            "usage": {
                "input_tokens": 40,
                "output_tokens": 60,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 10,
                "output_tokens_details": {"thinking_tokens": 30},
                "service_tier": "standard",
            }
        },
        Usage(40, 10, 0, 60, 30),
    ),
    (
        "anthropic-messages",
        {
            "usage": {
                "input_tokens": 3,
                "output_tokens": 5,
                "cache_creation_input_tokens": 2000,
                "cache_read_input_tokens": None,
            }
        },
        Usage(3, 0, 2000, 5, 0),
    ),
    # Responses: input_tokens includes cache reads and writes.
    ("openai-responses", {"object": "response", "usage": RESPONSES_USAGE}, Usage(20, 20, 10, 80, 30)),
    (
        "openai-responses",
        {
            "usage": {
                "input_tokens": 50,
                "output_tokens": 80,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            }
        },
        Usage(50, 0, 0, 80, 0),
    ),
]


@pytest.mark.parametrize(("fmt", "body", "expected"), ANSWERS)
def test_usage_from_answer(fmt, body, expected):
    """Each format's answer usage splits into uncached input, cache reads, cache writes and output."""
    assert wire(fmt).read_usage(body) == expected


NO_USAGE: list[Any] = [
    None,
    "usage",
    [{"usage": {"prompt_tokens": 1}}],
    {},
    {"usage": None},
    {"usage": []},
    {"usage": "lots"},
    {"usage": {}},
    {"usage": {"total_tokens": 70}},
    {"usage": {"prompt_tokens": "50", "completion_tokens": None, "input_tokens": True, "output_tokens": -1}},
]


@pytest.mark.parametrize("fmt", ["openai-chat", "anthropic-messages", "openai-responses"])
@pytest.mark.parametrize("body", NO_USAGE)
def test_usage_from_answer_none(fmt, body):
    """A body without a usable usage object gives None, never an exception."""
    assert wire(fmt).read_usage(body) is None


GARBAGE_FIELDS = [
    (
        "openai-chat",
        {
            "prompt_tokens": 50,
            "completion_tokens": 2.5,
            "prompt_tokens_details": "x",
            "completion_tokens_details": {"reasoning_tokens": True},
        },
        Usage(50, 0, 0, 0, 0),
    ),
    (
        "openai-chat",
        {
            "prompt_tokens": 50,
            "completion_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": -5, "cache_write_tokens": "9"},
        },
        Usage(50, 0, 0, 4, 0),
    ),
    (
        "anthropic-messages",
        {"output_tokens": 7, "cache_read_input_tokens": [], "output_tokens_details": None},
        Usage(0, 0, 0, 7, 0),
    ),
    (
        "openai-responses",
        {"input_tokens": 12, "output_tokens": False, "input_tokens_details": None},
        Usage(12, 0, 0, 0, 0),
    ),
]


@pytest.mark.parametrize(("fmt", "usage", "expected"), GARBAGE_FIELDS)
def test_usage_from_answer_garbage_fields(fmt, usage, expected):
    """Garbage counts (strings, floats, bools, negatives, wrong containers) count as zero."""
    assert wire(fmt).read_usage({"usage": usage}) == expected


# --- max_output_tokens, estimate_input_tokens, reserve_usd ---------------------------------------

MAX_OUTPUT = [
    ("openai-chat", {"max_completion_tokens": 300, "max_tokens": 100}, 300),
    ("openai-chat", {"max_tokens": 100}, 100),
    ("openai-chat", {"max_completion_tokens": None, "max_tokens": 100}, 100),
    ("openai-chat", {"max_completion_tokens": "300", "max_tokens": 100}, 100),
    ("openai-chat", {"max_output_tokens": 300}, 4096),
    ("openai-chat", {}, 4096),
    ("anthropic-messages", {"max_tokens": 1024}, 1024),
    ("anthropic-messages", {"max_tokens": 0}, 0),
    ("anthropic-messages", {"max_tokens": True}, 4096),
    ("anthropic-messages", {"max_tokens": -1}, 4096),
    ("anthropic-messages", {"max_tokens": 1024.0}, 4096),
    ("anthropic-messages", {"max_completion_tokens": 50}, 4096),
    ("openai-responses", {"max_output_tokens": 2000, "max_tokens": 10}, 2000),
    ("openai-responses", {"max_output_tokens": None}, 4096),
    ("openai-responses", {"max_tokens": 10}, 4096),
]


@pytest.mark.parametrize(("fmt", "body", "expected"), MAX_OUTPUT)
def test_max_output_tokens(fmt, body, expected):
    """Each format's cap field is read; anything not a non-negative int falls back to the default."""
    assert wire(fmt).max_output_tokens(body, 4096) == expected


CAPPED = [
    # no cap: the format's current field gets the limit
    ("openai-chat", {}, {"max_completion_tokens": 100}, 100),
    ("anthropic-messages", {}, {"max_tokens": 100}, 100),
    ("openai-responses", {}, {"max_output_tokens": 100}, 100),
    # over the limit: lowered, in every cap field present
    ("openai-chat", {"max_tokens": 5000}, {"max_tokens": 100}, 100),
    (
        "openai-chat",
        {"max_completion_tokens": 50, "max_tokens": 5000},
        {"max_completion_tokens": 50, "max_tokens": 100},
        50,
    ),
    ("anthropic-messages", {"max_tokens": 101}, {"max_tokens": 100}, 100),
    ("openai-responses", {"max_output_tokens": 10**6}, {"max_output_tokens": 100}, 100),
]


@pytest.mark.parametrize(("fmt", "body", "fields", "cap"), CAPPED)
def test_capped_lowers_or_sets_the_output_cap(fmt, body, fields, cap):
    """The body sent upstream never asks for more output than the limit; the client's is untouched."""
    before = dict(body)
    out, got = wire(fmt).capped({"model": "m", **body}, 100)
    assert got == cap
    assert {k: v for k, v in out.items() if k != "model"} == fields
    assert body == before


@pytest.mark.parametrize("fmt", ["openai-chat", "anthropic-messages", "openai-responses"])
def test_capped_keeps_a_cap_within_the_limit_as_it_is(fmt):
    """A cap at or under the limit: the very same body, no copy."""
    body = {"model": "m", wire(fmt).max_output_fields[0]: 100}
    out, cap = wire(fmt).capped(body, 100)
    assert out is body and cap == 100


@pytest.mark.parametrize(("body_bytes", "expected"), [(0, 0), (1, 1), (3, 1), (4, 2), (300, 100), (301, 101), (-5, 0)])
def test_estimate_input_tokens(body_bytes, expected):
    """The input estimate is ceil(bytes / 3), never negative."""
    assert estimate_input_tokens(body_bytes) == expected


RESERVES = [
    ("openai-chat", {"max_completion_tokens": 1000}, 3000, Price(2.0, 8.0), (1000 * 2.0 + 1000 * 8.0) / 1e6),
    (
        "anthropic-messages",
        {"max_tokens": 4096},
        30_001,
        Price(3.0, 15.0, 0.3, 3.75),
        (10_001 * 3.75 + 4096 * 15.0) / 1e6,  # the input at the cache-write price, the dearer
    ),
    ("openai-responses", {}, 900, Price(1.25, 10.0), (300 * 1.25 + 8192 * 10.0) / 1e6),
]


@pytest.mark.parametrize(("fmt", "body", "body_bytes", "price", "expected"), RESERVES)
def test_reserve_usd(fmt, body, body_bytes, price, expected):
    """The reserve is the input estimate at the dearer of the input and cache-write prices plus
    the output cap at the output price."""
    cap = wire(fmt).max_output_tokens(body, 8192)
    assert reserve_usd(cap, body_bytes, price) == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (chunk(None, usage=CHAT_USAGE), True),
        ({"usage": {"prompt_tokens": 1}}, True),
        ({"choices": None, "usage": {"prompt_tokens": 1}}, True),
        (chunk({"content": "hi"}), False),
        (chunk({"content": "hi"}, usage=CHAT_USAGE), False),
        (chunk(None), False),
        ({"error": {"message": "boom"}}, False),
        ("data", False),
        (None, False),
    ],
)
def test_is_usage_only_chunk(obj, expected):
    """Only a chunk with no choices and a usage object is the usage-only chunk."""
    assert CHAT.is_usage_only(obj) is expected


# --- StreamMeter ---------------------------------------------------------------------------------

FULL_STREAMS = [
    ("openai-chat", Usage(20, 30, 0, 20, 5)),
    ("anthropic-messages", Usage(40, 100, 7, 60, 0)),
    ("openai-responses", Usage(20, 20, 10, 80, 30)),
]


@pytest.mark.parametrize(("fmt", "expected"), FULL_STREAMS)
def test_meter_full_stream_reports_exact_usage(fmt, expected):
    """A stream that ends with its usage report bills exactly the reported usage."""
    meter = feed_all(fmt, STREAMS[fmt])
    assert meter.complete_usage
    assert meter.usage() == expected


# (format, events kept before the cut, expected usage)
CUT_STREAMS = [
    # 12 + 8 + 8 = 28 chars -> 7 tokens; input from the estimate.
    ("openai-chat", CHAT_STREAM[:-1], Usage(500, 0, 0, 7, 0, True)),
    # 1 char -> 1 token: delivered output is never zero.
    ("openai-chat", [*CHAT_STREAM[:1], chunk({"content": "H"})], Usage(500, 0, 0, 1, 0, True)),
    ("openai-chat", CHAT_STREAM[:1], Usage(500, 0, 0, 0, 0, True)),
    # 10 + 13 + 12 + 5 = 40 chars -> 10 tokens; input and cache counts from message_start.
    ("anthropic-messages", ANTHROPIC_STREAM[:-2], Usage(40, 100, 7, 10, 0, True)),
    # Nothing delivered yet: message_start's output_tokens (1) stands.
    ("anthropic-messages", ANTHROPIC_STREAM[:2], Usage(40, 100, 7, 1, 0, True)),
    # 8 + 13 + 16 = 37 chars -> 10 tokens.
    ("openai-responses", RESPONSES_STREAM[:-1], Usage(500, 0, 0, 10, 0, True)),
    ("openai-responses", RESPONSES_STREAM[:4], Usage(500, 0, 0, 2, 0, True)),
]


@pytest.mark.parametrize(("fmt", "events", "expected"), CUT_STREAMS)
def test_meter_cut_stream_estimates(fmt, events, expected):
    """A stream cut before its usage report is estimated from delivered characters, marked estimated."""
    meter = feed_all(fmt, events)
    assert not meter.complete_usage
    assert meter.usage() == expected


def test_meter_anthropic_cumulative_message_delta():
    """Anthropic message_delta usage is cumulative: the last value wins, it is never summed."""
    deltas = [
        {"type": "message_delta", "delta": {"stop_reason": None}, "usage": {"output_tokens": 30}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 60}},
    ]
    meter = feed_all("anthropic-messages", ANTHROPIC_STREAM[:-2] + deltas)
    assert meter.usage() == Usage(40, 100, 7, 60, 0)


def test_meter_anthropic_message_delta_overwrites_input():
    """Input and cache counts present on message_delta overwrite message_start's (translated streams put 0 there)."""
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 0, "output_tokens": 0}}}
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {
            "input_tokens": 12,
            "cache_read_input_tokens": 300,
            "output_tokens": 9,
            "output_tokens_details": {"thinking_tokens": 4},
        },
    }
    text = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}
    assert feed_all("anthropic-messages", [start, text, delta]).usage() == Usage(12, 300, 0, 9, 4)
    # Cut before the delta: a reported zero input is no input report, so the estimate is billed.
    assert feed_all("anthropic-messages", [start, text]).usage() == Usage(500, 0, 0, 2, 0, True)


TOOL_ONLY = [
    ("openai-chat", [chunk(tool_delta("", first=True)), chunk(tool_delta('{"path": "/tmp/a.txt"}'))]),
    (
        "anthropic-messages",
        [
            block_start(0, TOOL_USE_BLOCK),
            block_delta(0, "input_json_delta", "partial_json", '{"path": '),
            block_delta(0, "input_json_delta", "partial_json", '"/tmp/a.txt"}'),
        ],
    ),
    (
        "openai-responses",
        [
            resp_event("response.function_call_arguments.delta", 0, item_id="fc_1", delta='{"path": "/tmp/a.txt"}'),
        ],
    ),
]


@pytest.mark.parametrize(("fmt", "events"), TOOL_ONLY)
def test_meter_counts_tool_call_arguments(fmt, events):
    """Tool-call argument fragments count as delivered output (22 chars -> 6 tokens)."""
    assert feed_all(fmt, events, estimate=9).usage() == Usage(9, 0, 0, 6, 0, True)


OTHER_TEXT = [
    ("openai-chat", [chunk({"reasoning_content": "abcd"}), chunk({"reasoning": "efgh"}), chunk({"refusal": "ijkl"})]),
    (
        "openai-responses",
        [
            resp_event(
                "response.reasoning_text.delta", 0, item_id="rs_1", output_index=0, content_index=0, delta="abcd"
            ),
            resp_event("response.reasoning_summary_text.delta", 1, item_id="rs_1", summary_index=0, delta="efgh"),
            resp_event("response.refusal.delta", 2, item_id="msg_1", output_index=1, content_index=0, delta="ijkl"),
        ],
    ),
]


@pytest.mark.parametrize(("fmt", "events"), OTHER_TEXT)
def test_meter_counts_reasoning_and_refusal(fmt, events):
    """Reasoning and refusal text counts as delivered output (12 chars -> 3 tokens)."""
    assert feed_all(fmt, events, estimate=9).usage() == Usage(9, 0, 0, 3, 0, True)


GARBAGE_EVENTS: list[Any] = [
    None,
    "data",
    42,
    [],
    ["x"],
    {},
    {"type": ["unhashable"]},
    {"type": {"a": 1}, "delta": "xxxx"},
    {"error": {"message": "boom", "type": "server_error"}},
    {"choices": "x", "usage": "y"},
    {"choices": [None, 1, {"delta": "text"}, {"delta": {"content": 5}}]},
    {"choices": [{"delta": {"tool_calls": ["x", {"function": "f"}, {"function": {"arguments": None}}]}}]},
    {"choices": [{"delta": {"tool_calls": {"function": {"arguments": "xxxx"}}}}]},
    {"usage": {"total_tokens": 9}},
    {"type": "message_start", "message": "x"},
    {"type": "message_start", "message": {"usage": [1]}},
    {"type": "message_delta", "usage": None},
    {"type": "message_delta", "usage": {"output_tokens": "60"}},
    {"type": "content_block_delta", "delta": "text"},
    {"type": "content_block_delta", "delta": {"type": ["x"], "text": "xxxx"}},
    {"type": "content_block_delta", "delta": {"type": "text_delta", "text": None}},
    {"type": "content_block_delta", "delta": {"type": "signature_delta", "signature": "xxxx"}},
    {"type": "content_block_delta", "delta": {"type": "citations_delta", "citation": {"cited_text": "xxxx"}}},
    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    {"type": "response.output_text.delta", "delta": None},
    {"type": "response.output_text.done", "text": "xxxx"},
    {"type": "response.completed", "response": None},
    {"type": "response.completed", "response": {"usage": "x"}},
    {"type": "response.failed", "response": {"status": "failed", "usage": None, "error": {"code": "server_error"}}},
]


@pytest.mark.parametrize("fmt", ["openai-chat", "anthropic-messages", "openai-responses"])
def test_meter_ignores_garbage(fmt):
    """Malformed and irrelevant events neither raise nor count: the usage stays the bare estimate."""
    meter = feed_all(fmt, GARBAGE_EVENTS, estimate=77)
    assert not meter.complete_usage
    assert meter.usage() == Usage(77, 0, 0, 0, 0, True)


def test_meter_chat_running_usage_outdated_by_output():
    """Chat usage on content chunks is final only if no output follows it; otherwise the estimate takes over."""
    running = {"prompt_tokens": 50, "completion_tokens": 1}
    meter = feed_all("openai-chat", [chunk({"content": "Hi"}, usage=running)])
    assert meter.complete_usage and meter.usage() == Usage(50, 0, 0, 1, 0)
    meter.feed(chunk({"content": "x" * 40}))
    assert not meter.complete_usage
    assert meter.usage() == Usage(50, 0, 0, 11, 0, True)


def test_meter_responses_incomplete_and_failed_report_usage():
    """response.incomplete and response.failed carry final usage too."""
    for kind in ("response.incomplete", "response.failed"):
        event = resp_event(kind, 3, response={**_RESP_SHELL, "status": kind.split(".")[1], "usage": RESPONSES_USAGE})
        meter = feed_all("openai-responses", [*RESPONSES_STREAM[:3], event])
        assert meter.complete_usage
        assert meter.usage() == Usage(20, 20, 10, 80, 30)


def test_meter_usage_is_a_copy():
    """The usage handed out is a fresh object: callers may not mutate the meter through it."""
    meter = feed_all("openai-chat", CHAT_STREAM)
    meter.usage().output_tokens = 0
    assert meter.usage().output_tokens == 20


def test_meter_repr():
    """The repr shows format, completeness, delivered characters and reported output."""
    assert repr(feed_all("openai-chat", CHAT_STREAM)) == "<ChatStreamState complete=True chars=28 reported=20>"
