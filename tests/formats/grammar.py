"""A near-valid grammar of client requests for the three endpoints, for property-based fuzzing
with Hypothesis (from the hardening work): a request of the right shape for its format (every kind of
message, content part, tool, tool_choice and input item the readers know, and some they do not),
then up to three mutations anywhere in it: a value of another type, a missing or extra field,
a huge or negative number, unicode, a value wrapped in a list or an object, nesting up to and
past the 64-level JSON depth limit. Shared by the pure property test (tests/formats/test_fuzz.py)
and the one over sockets (tests/integration/test_fuzz.py)."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

CHAT_PATH, MESSAGES_PATH, RESPONSES_PATH = "/v1/chat/completions", "/v1/messages", "/v1/responses"

# Reproducible in CI: the same examples every run, nothing written to a .hypothesis/ database.
# For a longer local run, ROUTER_FUZZ_SCALE multiplies the number of examples, and
# ROUTER_FUZZ_RANDOM=1 draws new ones each run (pytest's --hypothesis-seed then repeats one).
_SCALE = float(os.environ.get("ROUTER_FUZZ_SCALE", "1"))
_RANDOM = os.environ.get("ROUTER_FUZZ_RANDOM") == "1"


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * _SCALE)),
        derandomize=not _RANDOM,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# ---------------------------------------------------------------- leaves

# Any unicode but lone surrogates (no JSON encoder writes those): accents, CJK, emoji, RTL, NUL.
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=24)
ident = st.text("abcdefXYZ_-0123456789", min_size=1, max_size=10)
# Numbers at the edges: negative, zero, the 32/53/63/64-bit limits, the largest doubles.
edge_numbers = st.sampled_from(
    [-1, 0, 1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1, 1e308, -1e308, 1.5, -0.0, 0.5, 10_000_001]
)
TYPE_NAMES = (
    "text",
    "image",
    "image_url",
    "input_text",
    "output_text",
    "input_image",
    "input_file",
    "input_audio",
    "file",
    "refusal",
    "function",
    "custom",
    "tool",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "server_tool_use",
    "web_search_tool_result",
    "message",
    "function_call",
    "function_call_output",
    "reasoning",
    "item_reference",
    "web_search_call",
    "allowed_tools",
    "auto",
    "any",
    "none",
    "required",
    "enabled",
    "adaptive",
    "disabled",
    "base64",
    "url",
    "user",
    "assistant",
    "system",
    "developer",
)
names = st.sampled_from(TYPE_NAMES)
scalar = st.one_of(st.none(), st.booleans(), edge_numbers, st.integers(-(2**63), 2**64 - 1), st.floats(), text, names)
# floats() includes nan and inf, which JSON cannot carry: orjson writes them as null.
junk: st.SearchStrategy[Any] = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(names, ident, text), inner, max_size=4)
    ),
    max_leaves=8,
)
big_text = st.integers(1_000, 80_000).map(lambda n: "é" * (n // 2))  # past the test config's 64 KiB body cap at the top


def nested(depth: int, leaf: Any, as_list: bool) -> Any:
    for _ in range(depth):
        leaf = [leaf] if as_list else {"a": leaf}
    return leaf


deep = st.builds(nested, st.sampled_from([8, 30, 60, 62, 63, 64, 65, 70, 100, 180]), scalar, st.booleans())


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=optional or {})


def few(s: st.SearchStrategy[Any], max_size: int = 3) -> st.SearchStrategy[list[Any]]:
    return st.lists(s, max_size=max_size)


schema: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.just({"type": "object", "properties": {}}),
    st.just({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}),
    st.just({}),
)
args_text = st.one_of(st.just("{}"), st.just('{"q": "x"}'), st.just('{"q": '), text)
data_url = st.just("data:image/png;base64,iVBORw0KGgo=")
http_url = st.just("https://example.com/cat.png")
image_url = st.one_of(http_url, data_url, st.just("ftp://x"), text)

# ---------------------------------------------------------------- openai-chat

_chat_text_part = obj({"type": st.just("text"), "text": text})
_chat_user_part = st.one_of(
    _chat_text_part,
    obj(
        {
            "type": st.just("image_url"),
            "image_url": obj({"url": image_url}, {"detail": st.sampled_from(["low", "auto"])}),
        }
    ),
    obj({"type": st.just("image_url"), "image_url": image_url}),
    obj({"type": st.sampled_from(["input_audio", "file"])}),
)
_chat_call = obj({"id": ident, "type": st.just("function"), "function": obj({"name": ident, "arguments": args_text})})
_chat_message = st.one_of(
    obj({"role": st.sampled_from(["system", "developer"]), "content": st.one_of(text, few(_chat_text_part))}),
    obj({"role": st.just("user"), "content": st.one_of(text, few(_chat_user_part))}, {"name": ident}),
    obj(
        {"role": st.just("assistant")},
        {
            "content": st.one_of(st.none(), text, few(_chat_text_part)),
            "tool_calls": few(_chat_call, 2),
            "reasoning_content": text,
            "refusal": st.one_of(st.none(), text),
        },
    ),
    obj({"role": st.just("tool"), "tool_call_id": ident, "content": st.one_of(text, few(_chat_text_part))}),
)
_chat_tool = obj(
    {
        "type": st.just("function"),
        "function": obj({"name": ident}, {"description": text, "parameters": schema, "strict": st.booleans()}),
    }
)
_chat_choice = st.one_of(
    st.sampled_from(["none", "auto", "required"]),
    obj({"type": st.just("function"), "function": obj({"name": ident})}),
    obj(
        {
            "type": st.just("allowed_tools"),
            "allowed_tools": obj({"mode": st.sampled_from(["auto", "required"]), "tools": st.just([])}),
        }
    ),
)


def chat_body(models: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    return obj(
        {"model": st.sampled_from(models), "messages": few(_chat_message, 5)},
        {
            "tools": few(_chat_tool, 2),
            "tool_choice": _chat_choice,
            "parallel_tool_calls": st.booleans(),
            "max_completion_tokens": st.integers(1, 2048),
            "max_tokens": st.integers(1, 2048),
            "temperature": st.floats(0, 2),
            "top_p": st.floats(0, 1),
            "stop": st.one_of(text, few(text, 4)),
            "stream": st.booleans(),
            "stream_options": obj({"include_usage": st.booleans()}),
            "reasoning_effort": st.sampled_from(["none", "minimal", "low", "medium", "high"]),
            "user": ident,
            "n": st.just(1),
            "seed": st.integers(0, 99),
        },
    )


# ---------------------------------------------------------------- anthropic-messages

_source = st.one_of(
    obj({"type": st.just("base64"), "media_type": st.just("image/png"), "data": st.just("iVBORw0KGgo=")}),
    obj({"type": st.just("url"), "url": image_url}),
)
_m_text = obj({"type": st.just("text"), "text": text}, {"cache_control": st.just({"type": "ephemeral"})})
_m_image = obj({"type": st.just("image"), "source": _source})
_m_user_block = st.one_of(
    _m_text,
    _m_image,
    obj(
        {"type": st.just("tool_result"), "tool_use_id": ident},
        {"content": st.one_of(text, few(st.one_of(_m_text, _m_image))), "is_error": st.booleans()},
    ),
)
_m_assistant_block = st.one_of(
    _m_text,
    obj({"type": st.just("thinking"), "thinking": text, "signature": st.one_of(st.just(""), ident)}),
    obj({"type": st.just("redacted_thinking"), "data": ident}),
    obj({"type": st.just("tool_use"), "id": ident, "name": ident, "input": st.just({"q": "x"})}),
    obj({"type": st.just("server_tool_use"), "id": ident, "name": st.just("web_search"), "input": st.just({})}),
)
_m_message = st.one_of(
    obj({"role": st.just("user"), "content": st.one_of(text, few(_m_user_block))}),
    obj({"role": st.just("assistant"), "content": st.one_of(text, few(_m_assistant_block))}),
)
_m_tool = st.one_of(
    obj({"name": ident, "input_schema": schema}, {"description": text, "strict": st.booleans()}),
    obj({"type": st.just("web_search_20250305"), "name": st.just("web_search")}),
)
_m_choice = st.one_of(
    obj({"type": st.sampled_from(["auto", "any", "none"])}, {"disable_parallel_tool_use": st.booleans()}),
    obj({"type": st.just("tool"), "name": ident}),
)
_m_thinking = st.one_of(
    obj({"type": st.just("enabled"), "budget_tokens": st.integers(0, 40_000)}),
    obj({"type": st.sampled_from(["adaptive", "disabled"])}),
)


def messages_body(models: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    return obj(
        {"model": st.sampled_from(models), "max_tokens": st.integers(1, 4096), "messages": few(_m_message, 5)},
        {
            "system": st.one_of(text, few(_m_text)),
            "tools": few(_m_tool, 2),
            "tool_choice": _m_choice,
            "thinking": _m_thinking,
            "output_config": obj({"effort": st.sampled_from(["low", "medium", "high", "max"])}),
            "metadata": obj({"user_id": ident}),
            "stop_sequences": few(text, 3),
            "stream": st.booleans(),
            "temperature": st.floats(0, 1),
            "top_p": st.floats(0, 1),
            "top_k": st.integers(0, 500),
        },
    )


# ---------------------------------------------------------------- openai-responses

_r_text = obj({"type": st.sampled_from(["input_text", "output_text", "text"]), "text": text})
_r_image = obj({"type": st.just("input_image"), "image_url": image_url}, {"detail": st.sampled_from(["auto", "low"])})
_r_item = st.one_of(
    obj(
        {
            "role": st.sampled_from(["user", "system", "developer"]),
            "content": st.one_of(text, few(st.one_of(_r_text, _r_image))),
        },
        {"type": st.just("message")},
    ),
    obj(
        {"type": st.just("message"), "role": st.just("assistant"), "content": st.one_of(text, few(_r_text))},
    ),
    obj({"type": st.just("function_call"), "call_id": ident, "name": ident, "arguments": args_text}),
    obj({"type": st.just("function_call_output"), "call_id": ident, "output": st.one_of(text, few(_r_text))}),
    obj(
        {"type": st.just("reasoning"), "summary": few(obj({"type": st.just("summary_text"), "text": text}))},
        {"id": ident, "encrypted_content": st.one_of(ident, st.just("rtr1.e30"))},
    ),
    obj({"type": st.sampled_from(["web_search_call", "item_reference"]), "id": ident}),
)
_r_tool = st.one_of(
    obj(
        {"type": st.just("function"), "name": ident},
        {"description": text, "parameters": schema, "strict": st.booleans()},
    ),
    obj({"type": st.just("web_search")}),
)
_r_choice = st.one_of(
    st.sampled_from(["none", "auto", "required"]),
    obj({"type": st.just("function"), "name": ident}),
    obj({"type": st.just("allowed_tools"), "mode": st.sampled_from(["auto", "required"]), "tools": st.just([])}),
    obj({"type": st.just("web_search")}),
)


def responses_body(models: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    return obj(
        {"model": st.sampled_from(models), "input": st.one_of(text, few(_r_item, 6))},
        {
            "instructions": text,
            "tools": few(_r_tool, 2),
            "tool_choice": _r_choice,
            "parallel_tool_calls": st.booleans(),
            "max_output_tokens": st.integers(1, 4096),
            "temperature": st.floats(0, 2),
            "top_p": st.floats(0, 1),
            "stream": st.booleans(),
            "reasoning": obj({}, {"effort": st.sampled_from(["none", "low", "high"]), "summary": st.just("auto")}),
            "user": ident,
            "store": st.booleans(),
            "include": st.just(["reasoning.encrypted_content"]),
        },
    )


BODIES = {CHAT_PATH: chat_body, MESSAGES_PATH: messages_body, RESPONSES_PATH: responses_body}

# ---------------------------------------------------------------- mutations


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in a JSON value, the root first."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, (*prefix, i))
    return out


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


@st.composite
def _mutate(draw: st.DrawFn, body: Any) -> Any:
    every = paths(body)
    # Half the time a string's position: a type, role or enum the readers look up, and the
    # likeliest to crash one when it turns into a list or an object.
    strings = [p for p in every if isinstance(_get(body, p), str)]
    if draw(st.booleans()) and strings:
        where = draw(st.sampled_from(strings))
        op = draw(st.sampled_from(["wrap", "wrap", "replace", "delete", "big", "number"]))
    else:
        where = draw(st.sampled_from(every))
        op = draw(
            st.sampled_from(["replace", "replace", "replace", "delete", "extra", "wrap", "deep", "big", "number"])
        )
    old = _get(body, where)
    if op == "extra":
        if isinstance(old, dict):
            old[draw(st.one_of(names, ident, text))] = draw(junk)
        elif isinstance(old, list):
            old.append(draw(junk))
        return body
    if op == "delete":
        if not where:
            return {}
        parent = _get(body, where[:-1])
        del parent[where[-1]]
        return body
    new: Any
    if op == "wrap":
        new = draw(st.sampled_from([[old], {"value": old}, {"type": old}]))
    elif op == "deep":
        new = draw(deep)
    elif op == "big":
        new = draw(big_text)
    elif op == "number":
        new = draw(edge_numbers)
    else:
        new = draw(junk)
    if not where:
        return new
    _get(body, where[:-1])[where[-1]] = new
    return body


@st.composite
def near_valid(draw: st.DrawFn, path: str, models: Sequence[str]) -> Any:
    """A request for `path`: valid in shape, then mutated 0 to 3 times."""
    body = copy.deepcopy(draw(BODIES[path](models)))  # mutated in place: never a shared st.just value
    body["stream"] = draw(st.booleans())
    for _ in range(draw(st.integers(0, 3))):
        body = draw(_mutate(body))
    return body


# ---------------------------------------------------------------- every position, every wrong type

# One request of each format with every field the readers know, for a sweep that puts each value
# of WRONG_TYPES at each position in turn (test_fuzz.py): the random grammar above finds the
# combinations, this finds every single wrong type for sure.
FULL: dict[str, dict[str, Any]] = {
    CHAT_PATH: {
        "model": "m",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                    {"type": "image_url", "image_url": "data:image/png;base64,iVBORw0KGgo="},
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "ok"}, {"type": "refusal", "refusal": "no"}],
                "reasoning_content": "think",
                "refusal": "no",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "res"}]},
            {"role": "user", "content": "more"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": False},
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": True,
        "max_completion_tokens": 100,
        "max_tokens": 50,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["x"],
        "stream": False,
        "stream_options": {"include_usage": True},
        "reasoning_effort": "low",
        "user": "u",
        "safety_identifier": "s",
    },
    MESSAGES_PATH: {
        "model": "m",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "sys"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "t", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "r"},
                    {"type": "text", "text": "ok"},
                    {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "c1",
                        "content": [{"type": "text", "text": "r"}],
                        "is_error": False,
                    },
                    {"type": "text", "text": "more"},
                ],
            },
        ],
        "tools": [
            {"name": "f", "description": "d", "input_schema": {"type": "object"}, "strict": True},
            {"type": "web_search_20250305", "name": "ws"},
        ],
        "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "output_config": {"effort": "low"},
        "metadata": {"user_id": "u"},
        "stop_sequences": ["x"],
        "stream": False,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 5,
    },
    RESPONSES_PATH: {
        "model": "m",
        "instructions": "sys",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "dev"}]},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "hi"},
                    {"type": "input_image", "image_url": "https://x", "detail": "auto"},
                ],
            },
            {
                "type": "reasoning",
                "id": "rs1",
                "summary": [{"type": "summary_text", "text": "t"}],
                "encrypted_content": "e",
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "ok"}, {"type": "refusal", "refusal": "no"}],
            },
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "res"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "r"}]},
            {"type": "web_search_call", "id": "w"},
        ],
        "tools": [
            {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True},
            {"type": "web_search"},
        ],
        "tool_choice": {"type": "function", "name": "f"},
        "parallel_tool_calls": False,
        "max_output_tokens": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "stream": False,
        "reasoning": {"effort": "low", "summary": "auto"},
        "user": "u",
    },
}
WRONG_TYPES: tuple[Any, ...] = (None, True, -1, 2**63 - 1, 1.5, "x", "", [], ["x"], [{}], {}, {"type": "text"})


def with_value(body: Any, where: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(body)
    _get(out, where[:-1])[where[-1]] = value
    return out
