"""What the fake provider answers, decided from the request alone: each format's reader turns a
request into a `Prompt`, and `plan` turns that into an `Answer` the format's writer renders.
The rules are listed in the package docstring (router/fake_upstream/__init__.py)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

ARGUMENTS = '{"city": "Paris"}'
# Split mid-key and mid-string, as real streams split them: a translator must concatenate the
# fragments, never parse one alone.
ARGUMENT_PIECES = ('{"city": ', '"Par', 'is"}')
assert "".join(ARGUMENT_PIECES) == ARGUMENTS
PRE_TOOL_TEXT = "Let me check."
TOOL_RESULT_PREFIX = "The tool said: "
REASONING_PREFIX = "Thinking about: "
_REASONING_QUOTE = 40  # characters of the last user text quoted in the reasoning
_PARALLEL = re.compile(r"\bparallel\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Prompt:
    """What a format's reader found in a request (only the parts the answer depends on)."""

    user_text: str = ""  # text of the last user message that has text (tool results excluded)
    tool: str | None = None  # name of the first defined function tool
    tool_results: tuple[str, ...] | None = None  # texts of the trailing tool results, if the last turn is one
    reasoning: bool = False  # the request asks for reasoning / thinking
    include_usage: bool = False  # chat: stream_options.include_usage
    prefill: str | None = None  # text of a trailing assistant message: the answer continues it
    max_output: int | None = None  # the request's output cap, when it set one


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call; each format derives its ids from the answer's `rid` and the call's `index`."""

    index: int
    name: str
    arguments: str = ARGUMENTS
    pieces: tuple[str, ...] = ARGUMENT_PIECES  # the arguments as streamed


@dataclass(slots=True)
class Answer:
    """Everything that varies per request; the rest of each payload is constant."""

    model: str  # echoed from the request
    text: str
    pieces: tuple[str, ...]  # `text` split into the stream's content deltas
    prompt_tokens: int  # all input, cached included
    completion_tokens: int  # all output, reasoning included
    rid: str  # random hex shared by the ids of one answer
    created: int
    include_usage: bool = False  # chat: stream_options.include_usage
    no_done: bool = False  # chat: omit [DONE]
    reasoning: str | None = None  # reasoning / thinking text, when asked for
    reasoning_pieces: tuple[str, ...] = ()
    reasoning_tokens: int = 0
    calls: tuple[ToolCall, ...] = ()
    cached_tokens: int = 0  # of prompt_tokens, read from a cache


@functools.lru_cache(maxsize=256)
def split_text(text: str, n: int) -> tuple[str, ...]:
    """`text` in `n` nearly equal pieces (some are empty when n > len(text))."""
    size = len(text)
    return tuple(text[i * size // n : (i + 1) * size // n] for i in range(n))


def _tokens(text: str) -> int:
    return (len(text) + 3) // 4


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or the joined `text` of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def plan(
    prompt: Prompt,
    *,
    default_text: str,
    text: str | None,
    chunks: int,
    cached_tokens: int,
    model: str,
    rid: str,
    created: int,
    prompt_tokens: int,
    no_done: bool,
    output_tokens: int | None = None,
) -> Answer:
    """The answer to `prompt`. `text` (faults.text) replaces the visible text of any answer."""
    calls: tuple[ToolCall, ...] = ()
    # 1. the last turn is tool results: answer with them, so round trips are checkable
    # 2. tools are defined: a short text, then call the first tool (twice if asked for "parallel")
    # 3. otherwise: plain text
    if prompt.tool_results is not None:
        visible = TOOL_RESULT_PREFIX + "; ".join(prompt.tool_results)
    elif prompt.tool is not None:
        visible = PRE_TOOL_TEXT
        count = 2 if _PARALLEL.search(prompt.user_text) else 1
        calls = tuple(ToolCall(i, prompt.tool) for i in range(count))
    else:
        visible = default_text
    if text is not None:
        visible = text
    if prompt.prefill and visible.startswith(prompt.prefill):
        # As a model does with a prefill: only the rest, from where the prefill ends (a space
        # that follows included, so a stripped prefill shows at the seam).
        visible = visible[len(prompt.prefill) :]
    reasoning = REASONING_PREFIX + prompt.user_text[:_REASONING_QUOTE] if prompt.reasoning else None
    reasoning_tokens = _tokens(reasoning) if reasoning is not None else 0
    output = _tokens(visible) + reasoning_tokens + sum(_tokens(c.arguments) for c in calls)
    if output_tokens is not None:
        output = output_tokens
    if prompt.max_output is not None:
        output = min(output, prompt.max_output)
    return Answer(
        model=model,
        text=visible,
        pieces=split_text(visible, chunks),
        prompt_tokens=prompt_tokens,
        completion_tokens=max(1, output),
        rid=rid,
        created=created,
        include_usage=prompt.include_usage,
        no_done=no_done,
        reasoning=reasoning,
        reasoning_pieces=split_text(reasoning, chunks) if reasoning is not None else (),
        reasoning_tokens=reasoning_tokens,
        calls=calls,
        cached_tokens=min(cached_tokens, prompt_tokens),
    )
