"""Usage x price -> cost: usage read from answers and stream events, the reserve estimate taken
before a request goes upstream, and an estimate for streams cut before their usage report.

Pure and I/O-free; `StreamMeter.feed` runs on every stream event, so it only counts characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from router.config import Format, Price

# Characters of delivered output per estimated token. BPE tokenizers average ~4 characters of
# English per token; code and non-Latin text run denser, so a cut stream may be under-billed a
# little, never billed zero (see `StreamMeter.usage`).
CHARS_PER_TOKEN = 4
# Bytes of request body per reserved input token. The body is JSON: its framing (keys, quotes,
# escapes) is counted as if it were prompt text, and /3 sits below the ~4 bytes per token of
# English, so the reserve errs high. Over-reserving only holds budget until settle; under-reserving
# would let a key overspend.
BYTES_PER_INPUT_TOKEN = 3
_PER_MTOK = 1_000_000.0


@dataclass(slots=True)
class Usage:
    """One request's token counts, split the way they are priced."""

    input_tokens: int = 0  # uncached input only (excludes cache reads and writes)
    cached_tokens: int = 0  # cache reads
    cache_write_tokens: int = 0  # cache writes
    output_tokens: int = 0  # includes reasoning
    reasoning_tokens: int = 0  # informational: already inside output_tokens
    estimated: bool = False  # True when some count was estimated from characters (a cut stream)


def _count(v: Any) -> int | None:
    """A token count, or None for anything that is not a non-negative int (bool included)."""
    if type(v) is int and v >= 0:
        return v
    return None


def _sub(d: dict[str, Any], key: str) -> dict[str, Any]:
    v = d.get(key)
    return v if isinstance(v, dict) else {}


def _chat_usage(u: dict[str, Any]) -> Usage | None:
    # prompt_tokens INCLUDES cache reads (and writes); completion_tokens includes reasoning.
    prompt, completion = _count(u.get("prompt_tokens")), _count(u.get("completion_tokens"))
    if prompt is None and completion is None:
        return None
    details = _sub(u, "prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) or 0
    write = _count(details.get("cache_write_tokens")) or 0
    reasoning = _count(_sub(u, "completion_tokens_details").get("reasoning_tokens")) or 0
    return Usage(max(0, (prompt or 0) - cached - write), cached, write, completion or 0, reasoning)


def _responses_usage(u: dict[str, Any]) -> Usage | None:
    # input_tokens INCLUDES cache reads and writes; output_tokens includes reasoning.
    inp, out = _count(u.get("input_tokens")), _count(u.get("output_tokens"))
    if inp is None and out is None:
        return None
    details = _sub(u, "input_tokens_details")
    cached = _count(details.get("cached_tokens")) or 0
    write = _count(details.get("cache_write_tokens")) or 0
    reasoning = _count(_sub(u, "output_tokens_details").get("reasoning_tokens")) or 0
    return Usage(max(0, (inp or 0) - cached - write), cached, write, out or 0, reasoning)


def _anthropic_usage(u: dict[str, Any]) -> Usage | None:
    # input_tokens EXCLUDES cache reads and writes, which come in their own fields.
    inp, out = _count(u.get("input_tokens")), _count(u.get("output_tokens"))
    if inp is None and out is None:
        return None
    return Usage(
        inp or 0,
        _count(u.get("cache_read_input_tokens")) or 0,
        _count(u.get("cache_creation_input_tokens")) or 0,
        out or 0,
        _count(_sub(u, "output_tokens_details").get("thinking_tokens")) or 0,
    )


_PARSERS = {
    "openai-chat": _chat_usage,
    "anthropic-messages": _anthropic_usage,
    "openai-responses": _responses_usage,
}


def usage_from_answer(fmt: Format, body: Any) -> Usage | None:
    """The usage of a non-stream answer body (parsed JSON); None when it reports none. Never raises."""
    if not isinstance(body, dict):
        return None
    u = body.get("usage")
    return _PARSERS[fmt](u) if isinstance(u, dict) else None


def cost_usd(usage: Usage, price: Price) -> float:
    """Dollars for `usage` at `price` (per million tokens; cache prices default to the input price)."""
    cached = price.input_per_mtok if price.cached_input_per_mtok is None else price.cached_input_per_mtok
    write = price.input_per_mtok if price.cache_write_per_mtok is None else price.cache_write_per_mtok
    return (
        usage.input_tokens * price.input_per_mtok
        + usage.cached_tokens * cached
        + usage.cache_write_tokens * write
        + usage.output_tokens * price.output_per_mtok
    ) / _PER_MTOK


_MAX_OUTPUT_FIELDS: dict[str, tuple[str, ...]] = {
    "openai-chat": ("max_completion_tokens", "max_tokens"),  # the current field first
    "anthropic-messages": ("max_tokens",),
    "openai-responses": ("max_output_tokens",),
}


def max_output_tokens(fmt: Format, body: dict[str, Any], default: int) -> int:
    """The request's output cap in its format's field; `default` when absent or not a non-negative int."""
    for key in _MAX_OUTPUT_FIELDS[fmt]:
        n = _count(body.get(key))
        if n is not None:
            return n
    return default


def estimate_input_tokens(body_bytes: int) -> int:
    """An upper-bound-ish input token count for a request body of `body_bytes` (see BYTES_PER_INPUT_TOKEN)."""
    return max(0, -(-body_bytes // BYTES_PER_INPUT_TOKEN))


def reserve_usd(fmt: Format, body: dict[str, Any], body_bytes: int, price: Price, default_max_output: int) -> float:
    """What to hold against the budget before the request: estimated input plus the output cap."""
    return (
        estimate_input_tokens(body_bytes) * price.input_per_mtok
        + max_output_tokens(fmt, body, default_max_output) * price.output_per_mtok
    ) / _PER_MTOK


def is_usage_only_chunk(obj: Any) -> bool:
    """A chat chunk that only carries usage (`include_usage`): hidden from clients that did not ask."""
    return isinstance(obj, dict) and isinstance(obj.get("usage"), dict) and not obj.get("choices")


_CHAT_DELTA_TEXT = ("content", "reasoning_content", "reasoning", "refusal")
_ANTHROPIC_DELTA_TEXT = {"text_delta": "text", "input_json_delta": "partial_json", "thinking_delta": "thinking"}
_RESPONSES_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
        "response.refusal.delta",
    }
)
_RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class StreamMeter:
    """Fed every parsed upstream stream event (JSON object) in the upstream's format; knows the usage
    at the end, reported or estimated. Constant memory: counts characters, never stores text."""

    __slots__ = ("_chars", "_complete", "_estimate", "_fmt", "_reported")

    def __init__(self, fmt: Format, input_estimate_tokens: int) -> None:
        self._fmt = fmt
        self._estimate = input_estimate_tokens
        self._reported = Usage()  # the latest reported counts (all cumulative)
        self._complete = False
        self._chars = 0  # output characters delivered

    def __repr__(self) -> str:
        return (
            f"<StreamMeter {self._fmt} complete={self._complete} chars={self._chars} "
            f"reported={self._reported.output_tokens}>"
        )

    @property
    def complete_usage(self) -> bool:
        """A final usage report arrived, and no output followed it."""
        return self._complete

    def feed(self, obj: Any) -> None:
        """Account for one event; anything unrecognised is ignored."""
        if not isinstance(obj, dict):
            return
        if self._fmt == "openai-chat":
            self._feed_chat(obj)
        elif self._fmt == "anthropic-messages":
            self._feed_anthropic(obj)
        else:
            self._feed_responses(obj)

    def _add_chars(self, n: int) -> None:
        if n:
            self._chars += n
            # Output after a usage report means that report was not the final one (providers that
            # put running usage on every chunk): fall back to the estimate unless another follows.
            self._complete = False

    def _report(self, usage: Usage | None) -> None:
        if usage is not None:
            self._reported = usage
            self._complete = True

    def _feed_chat(self, obj: dict[str, Any]) -> None:
        choices = obj.get("choices")
        if isinstance(choices, list):
            n = 0
            for choice in choices:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if not isinstance(delta, dict):
                    continue
                for key in _CHAT_DELTA_TEXT:
                    text = delta.get(key)
                    if isinstance(text, str):
                        n += len(text)
                calls = delta.get("tool_calls")
                if isinstance(calls, list):
                    for call in calls:
                        fn = call.get("function") if isinstance(call, dict) else None
                        args = fn.get("arguments") if isinstance(fn, dict) else None
                        if isinstance(args, str):
                            n += len(args)
            self._add_chars(n)
        usage = obj.get("usage")  # after the chunk's own text: a usage on it covers that text
        if isinstance(usage, dict):
            self._report(_chat_usage(usage))

    def _feed_anthropic(self, obj: dict[str, Any]) -> None:
        kind = obj.get("type")
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict):
                kind = delta.get("type")
                text = delta.get(_ANTHROPIC_DELTA_TEXT.get(kind, "")) if isinstance(kind, str) else None
                if isinstance(text, str):
                    self._add_chars(len(text))
        elif kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                self._overlay(_sub(message, "usage"))
        elif kind == "message_delta":
            usage = obj.get("usage")
            if isinstance(usage, dict) and self._overlay(usage):
                self._complete = True

    def _overlay(self, u: dict[str, Any]) -> bool:
        """Overwrite the reported counts present in `u` (Anthropic's are cumulative, never summed);
        True when it carried output or input tokens."""
        r = self._reported
        inp, out = _count(u.get("input_tokens")), _count(u.get("output_tokens"))
        if inp is not None:
            r.input_tokens = inp
        if out is not None:
            r.output_tokens = out
        cached, write = _count(u.get("cache_read_input_tokens")), _count(u.get("cache_creation_input_tokens"))
        if cached is not None:
            r.cached_tokens = cached
        if write is not None:
            r.cache_write_tokens = write
        thinking = _count(_sub(u, "output_tokens_details").get("thinking_tokens"))
        if thinking is not None:
            r.reasoning_tokens = thinking
        return inp is not None or out is not None

    def _feed_responses(self, obj: dict[str, Any]) -> None:
        kind = obj.get("type")
        if not isinstance(kind, str):
            return
        if kind in _RESPONSES_DELTAS:
            delta = obj.get("delta")
            if isinstance(delta, str):
                self._add_chars(len(delta))
        elif kind in _RESPONSES_TERMINAL:
            response = obj.get("response")
            if isinstance(response, dict):
                usage = response.get("usage")
                if isinstance(usage, dict):
                    self._report(_responses_usage(usage))

    def usage(self) -> Usage:
        """The reported usage when complete; otherwise an estimate (`estimated=True`) that never bills
        delivered output as zero."""
        r = self._reported
        if self._complete:
            return Usage(r.input_tokens, r.cached_tokens, r.cache_write_tokens, r.output_tokens, r.reasoning_tokens)
        # Input, by case:
        # 1. the upstream reported a non-zero input (Anthropic's message_start, or a running report
        #    that output then outdated): bill that;
        # 2. nothing, or zero (translating gateways put 0 in message_start and the real counts in the
        #    final message_delta; no real request has zero input): bill the reserve-time estimate.
        # Output: the larger of what was reported so far and the delivered characters rounded up,
        # so any delivered character bills at least one token.
        out = max(r.output_tokens, -(-self._chars // CHARS_PER_TOKEN))
        if r.input_tokens or r.cached_tokens or r.cache_write_tokens:
            return Usage(r.input_tokens, r.cached_tokens, r.cache_write_tokens, out, r.reasoning_tokens, True)
        return Usage(self._estimate, 0, 0, out, r.reasoning_tokens, True)


def usage_fields(usage: Usage) -> dict[str, int | bool]:
    """The usage as flat fields for ledger lines and log events."""
    return {
        "input_tokens": usage.input_tokens,
        "cached_tokens": usage.cached_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "estimated": usage.estimated,
    }
