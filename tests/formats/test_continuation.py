"""The request that asks for the rest of a broken answer (`WireFormat.continuation`), per format."""

from __future__ import annotations

from typing import Any

import pytest

from router.formats import CHAT, MESSAGES, RESPONSES, WireFormat

USER = {"role": "user", "content": "Say hello."}


@pytest.mark.parametrize(
    ("fmt", "body", "expected"),
    [
        (
            CHAT,
            {"model": "m", "messages": [USER], "max_tokens": 100, "stream": True},
            {
                "model": "m",
                "messages": [USER, {"role": "assistant", "content": "Hello"}],
                "max_tokens": 60,
                "stream": True,
            },
        ),
        (
            CHAT,
            {"model": "m", "messages": [USER], "max_completion_tokens": 100, "max_tokens": 100},
            {
                "model": "m",
                "messages": [USER, {"role": "assistant", "content": "Hello"}],
                "max_completion_tokens": 60,
                "max_tokens": 60,
            },
        ),
        (
            MESSAGES,
            {"model": "m", "messages": [USER], "max_tokens": 100},
            {"model": "m", "messages": [USER, {"role": "assistant", "content": "Hello"}], "max_tokens": 60},
        ),
        (
            RESPONSES,
            {"model": "m", "input": "Say hello.", "max_output_tokens": 100},
            {"model": "m", "input": [USER, {"role": "assistant", "content": "Hello"}], "max_output_tokens": 60},
        ),
        (
            RESPONSES,
            {"model": "m", "input": [USER]},
            {"model": "m", "input": [USER, {"role": "assistant", "content": "Hello"}], "max_output_tokens": 60},
        ),
    ],
)
def test_the_delivered_text_becomes_a_prefill_and_the_cap_shrinks(
    fmt: WireFormat, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    """The delivered text is the conversation's last, assistant, message; every output-cap field
    present is lowered (the format's own is set when none is); the client's body is untouched."""
    before = repr(body)
    cont = fmt.continuation(body, "Hello", cap=60)
    assert cont.body == expected and cont.seam == ""
    assert repr(body) == before


@pytest.mark.parametrize("fmt", [CHAT, MESSAGES, RESPONSES])
def test_trailing_whitespace_is_cut_from_the_prefill_and_kept_as_the_seam(fmt: WireFormat) -> None:
    """Anthropic refuses a prefill ending in whitespace: the prefill loses it, the seam keeps it,
    so the rest's leading whitespace can be dropped instead of doubled."""
    cont = fmt.continuation({"model": "m", "messages": [USER], "input": "x"}, "Hello from \n", cap=None)
    last = (cont.body["input"] if fmt is RESPONSES else cont.body["messages"])[-1]
    assert last == {"role": "assistant", "content": "Hello from"} and cont.seam == " \n"
    assert "max_tokens" not in cont.body and "max_output_tokens" not in cont.body
