"""Property-based fuzzing of the request path without sockets (from the hardening work): near-valid
requests of each format (tests/formats/grammar.py) go through what the endpoint and an attempt do
with a client body: parse_request, then the native path (prepare, the output cap, the usage wish, a
continuation) and the translated one (read_request, then write_request for each other format and
route option, and the JSON encoding of what is sent). Whatever the input, the only exception is a
BadRequest: its param names a path into the request, its message is short, and the endpoint's own
envelope carries it."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import given

from router.errors import BadRequest
from router.formats import ALL, CHAT, MESSAGES, RESPONSES, WireFormat
from router.formats.codec import ir
from router.formats.translate import write_request
from router.server.parse import parse_request
from tests.formats.grammar import (
    CHAT_PATH,
    FULL,
    MESSAGES_PATH,
    RESPONSES_PATH,
    WRONG_TYPES,
    fuzz_settings,
    near_valid,
    paths,
    with_value,
)

FORMATS = {CHAT_PATH: CHAT, MESSAGES_PATH: MESSAGES, RESPONSES_PATH: RESPONSES}
OPTIONS = (
    ir.RequestOptions(),
    ir.RequestOptions(thinking="adaptive", drop_params=frozenset({"temperature", "top_p", "stop", "reasoning"})),
)
DROP = frozenset({"temperature", "reasoning", "stop"})
_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def resolves(body: Any, param: str) -> bool:
    """Whether `param` is a path into `body` up to its last step (which may be the missing field)."""
    steps = [(name, int(index) if index else None) for name, index in _STEP.findall(param)]
    node = body
    for n, (name, index) in enumerate(steps):
        last = n == len(steps) - 1
        if index is not None:
            if not isinstance(node, list) or index >= len(node):
                return False
            node = node[index]
        else:
            if not isinstance(node, dict):
                return False
            if name not in node:
                return last
            node = node[name]
    return True


def refused(fmt: WireFormat, body: Any, exc: BadRequest) -> None:
    """A BadRequest the client can act on, in the endpoint's own envelope."""
    assert exc.message and len(exc.message) < 600, exc.message
    if exc.param is not None:
        assert resolves(body, exc.param), (exc.param, exc.message)
    envelope = orjson.loads(fmt.error_body(400, exc.message, exc.code, exc.param))
    if fmt is MESSAGES:
        assert envelope["type"] == "error" and envelope["error"]["type"] == "invalid_request_error"
    else:
        assert envelope["error"]["type"] == "invalid_request_error" and envelope["error"]["param"] == exc.param


def serve(fmt: WireFormat, body: Any) -> None:
    """Everything the router does with one client body before it goes upstream."""
    raw = orjson.dumps(body)
    try:
        req = parse_request(fmt, raw, {}, "req-1")
    except BadRequest as exc:
        refused(fmt, body, exc)
        return
    fmt.max_output_tokens(req.body, 1024)
    fmt.wants_usage(req.body)
    for stream in (False, True):
        orjson.dumps(fmt.prepare(req.body, "upstream-m", DROP, stream).body)
    continuation = fmt.continuation(req.body, "So far ", 10).body
    orjson.dumps(continuation)
    try:
        request = fmt.read_request(req.body)
    except BadRequest as exc:
        refused(fmt, req.body, exc)
        return
    for upstream in ALL:
        if upstream is not fmt:
            for opts in OPTIONS:
                orjson.dumps(write_request(upstream, request, "upstream-m", opts))
    fmt.read_request(continuation)  # what a translated continuation reads: the same body, one turn more


@pytest.mark.parametrize("path", [CHAT_PATH, MESSAGES_PATH, RESPONSES_PATH])
def test_any_request_is_served_or_refused_with_a_bad_request(path: str) -> None:
    fmt = FORMATS[path]

    @fuzz_settings(400)
    @given(near_valid(path, ["m"]))
    def one(body: Any) -> None:
        serve(fmt, body)

    one()


@pytest.mark.parametrize(
    ("param", "ok"),
    [
        ("messages[0].content[1].type", True),
        ("messages[0].content[1].missing", True),
        ("messages[0].content[2].type", False),
        ("messages[1]", False),
        ("model", True),
        ("tools", True),
        ("tools.name", False),
    ],
)
def test_resolves_follows_a_path_into_the_body(param: str, ok: bool) -> None:
    """The helper the property leans on: a path resolves up to its last step, no further."""
    body = {"model": "m", "messages": [{"content": [{"type": "text"}, {"type": 5}]}]}
    assert resolves(body, param) is ok


@pytest.mark.parametrize("path", [CHAT_PATH, MESSAGES_PATH, RESPONSES_PATH])
def test_every_position_with_every_wrong_type_is_served_or_refused(path: str) -> None:
    """The sweep: each value of WRONG_TYPES at each position of a request with every field the
    readers know (the unhashable list in a block's `type` was a 500 before)."""
    fmt, full = FORMATS[path], FULL[path]
    tried = 0
    for where in paths(full)[1:]:
        for value in WRONG_TYPES:
            serve(fmt, with_value(full, where, value))
            tried += 1
    assert tried > 500
