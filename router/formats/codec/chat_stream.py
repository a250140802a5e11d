"""openai-chat streams <-> IR stream events, one chunk at a time with constant state.

Reader: chat never says when a block ends, so it emits no BlockEnd; it holds finish_reason until the
usage chunk (or `[DONE]`) so that Finish carries the usage. Only choice 0 is read (n>1 unsupported).
Writer: the chunk shapes `client.chat.completions.stream()` accumulates (protocols.md A.4, F.7-F.10):
role once, a tool call's id/type/name once in its first fragment, the same id/created/model on every
chunk, the usage chunk last and only when the client asked for it.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from router.formats.codec import ir
from router.formats.codec.chat import (
    FINISH_TO_STOP,
    FMT,
    STOP_TO_FINISH,
    error_from_json,
    error_json,
    new_id,
    read_usage,
    usage_json,
)
from router.formats.codec.fields import usage_in
from router.formats.sse import encode
from router.types import Usage

_DONE = b"data: [DONE]\n\n"


class ChatStreamReader:
    """Chat completion chunks (decoded JSON; the terminator as the string "[DONE]") -> IR events."""

    __slots__ = ("_calls", "_ended", "_finish", "_last", "_next_index", "_started", "_usage")

    def __init__(self) -> None:
        self._started = False
        self._ended = False  # Finish or Error was emitted: nothing more is read
        self._finish: ir.Stop | None = None  # finish_reason seen, held for the usage chunk
        self._usage: Usage | None = None
        # upstream tool_calls[].index -> (IR index, call id): one small entry per tool call.
        self._calls: dict[int, tuple[int, str]] = {}
        self._last: tuple[int, str] | None = None  # the call the latest fragment belonged to
        self._next_index = 0

    def __repr__(self) -> str:
        return (
            f"<ChatStreamReader started={self._started} ended={self._ended} "
            f"finish={self._finish} calls={self._next_index}>"
        )

    def feed(self, obj: Any) -> list[ir.Event]:
        if self._ended:
            return []
        if obj == "[DONE]":
            return self._end() if self._started else []
        if not isinstance(obj, dict):
            return []
        if obj.get("error"):  # the SDK's own test: a mapping with a truthy `error` key
            self._ended = True
            return [error_from_json(obj)]
        events: list[ir.Event] = []
        if not self._started:
            self._started = True
            created = obj.get("created")
            ident, model = str(obj.get("id") or new_id()), str(obj.get("model") or "")
            events.append(ir.Start(ident, model, created if type(created) is int else None))
        choices = obj.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._choice(choice, events)
        usage = usage_in(obj, read_usage)
        if usage is not None:
            self._usage = usage
            if self._finish is not None:
                events.extend(self._end())
            else:
                events.append(ir.UsageUpdate(usage))
        return events

    def _choice(self, choice: dict[str, Any], events: list[ir.Event]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            # DeepSeek/vLLM stream reasoning as `reasoning_content`, OpenRouter-style servers as
            # `reasoning`; a server sending both sends the same text twice, so one is read.
            thinking = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thinking, str) and thinking:
                events.append(ir.ThinkingDelta(thinking, origin=FMT))
            for key in ("content", "refusal"):  # a refusal reads as text, as in chat.read_answer
                text = delta.get(key)
                if isinstance(text, str) and text:
                    events.append(ir.TextDelta(text))
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else []:
                if isinstance(call, dict):
                    self._tool_fragment(call, events)
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self._finish = FINISH_TO_STOP.get(reason, "end")

    def _tool_fragment(self, call: dict[str, Any], events: list[ir.Event]) -> None:
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        index = call.get("index")
        call_id = call.get("id") if isinstance(call.get("id"), str) else None
        # Cases:
        # 1. a known index without a new id: a later fragment of that call;
        # 2. no index at all (some servers) and no new id: a later fragment of the last call;
        # 3. otherwise (an unknown index, or a known one with another id, as from servers that put
        #    every parallel call at index 0): a new call, numbered in arrival order.
        known = self._calls.get(index) if type(index) is int else self._last
        if known is None or (call_id and call_id != known[1]):
            known = (self._next_index, call_id or f"call_{self._next_index}")
            self._next_index += 1
            if type(index) is int:
                self._calls[index] = known
            events.append(ir.ToolStart(known[0], known[1], str(fn.get("name") or "")))
        self._last = known
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            events.append(ir.ToolArgs(known[0], args))

    def _end(self) -> list[ir.Event]:
        self._ended = True
        return [ir.Finish(self._finish or "end", usage=self._usage)]


class ChatStreamWriter:
    """IR events -> chat completion chunks as SSE bytes (`data: {...}\\n\\n`, then `data: [DONE]`)."""

    __slots__ = ("_created", "_ended", "_id", "_include_usage", "_model", "_started", "_usage", "_wire")

    def __init__(self, model: str, include_usage: bool = True) -> None:
        self._model = model
        # IR tool-call index -> the tool_calls[].index the client saw, for a resumed open call.
        self._wire: dict[int, int] = {}
        self._include_usage = include_usage  # the client asked for stream_options.include_usage
        self._id = ""
        self._created = 0
        self._started = False
        self._ended = False
        self._usage: Usage | None = None  # the latest reported, for the final usage chunk

    @classmethod
    def resume(
        cls, ident: str, model: str, created: int, include_usage: bool, wire: dict[int, int] | None = None
    ) -> ChatStreamWriter:
        """A writer continuing a stream whose opening chunks (`ident`, `created`, `model`, the role
        chunk) the client already has: it writes no role chunk, and every chunk repeats those.
        `wire`: IR tool-call index -> the tool_calls index the client already has that call at."""
        w = cls(model, include_usage)
        w._id, w._created, w._started = ident, created, True
        w._wire = wire or {}
        return w

    def __repr__(self) -> str:
        return f"<ChatStreamWriter id={self._id!r} started={self._started} ended={self._ended}>"

    @property
    def response_id(self) -> str | None:
        return self._id or None

    def write(self, ev: ir.Event) -> bytes:
        if self._ended:
            return b""
        if isinstance(ev, ir.Error):
            # The SDK raises APIError on a chunk with a truthy `error`; nothing may follow it.
            self._ended = True
            return encode(orjson.dumps({"error": error_json(ev)}))
        out = b""
        if not self._started:
            # Start is first by contract; any other first event gets a Start made up for it.
            out = self._start(ev if isinstance(ev, ir.Start) else ir.Start("", self._model))
        match ev:
            case ir.TextDelta(text=text) if text:
                out += self._chunk({"content": text})
            case ir.ThinkingDelta(text=text) if text:
                # Only the text: a signature or encrypted reasoning means nothing to a chat client.
                out += self._chunk({"reasoning_content": text})
            case ir.ToolStart(index=index, id=call_id, name=name):
                call = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
                out += self._chunk({"tool_calls": [call]})
            case ir.ToolArgs(index=index, fragment=fragment) if fragment:
                index = self._wire.get(index, index)
                out += self._chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
            case ir.UsageUpdate(usage=usage):
                self._usage = usage
            case ir.Finish(stop=stop, usage=usage):
                self._ended = True
                out += self._chunk({}, STOP_TO_FINISH[stop])
                usage = usage or self._usage
                if self._include_usage and usage is not None:
                    out += self._emit({"choices": [], "usage": usage_json(usage)})
                out += _DONE
        return out

    def _start(self, ev: ir.Start) -> bytes:
        self._started = True
        self._id = ev.id or new_id()
        self._created = ev.created if ev.created is not None else int(time.time())
        if ev.usage is not None:  # Anthropic's input count: a fallback until the final usage
            self._usage = ev.usage
        return self._chunk({"role": "assistant", "content": ""})

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        # OpenAI sends "usage": null on every chunk only when include_usage was asked for.
        return self._emit({"choices": [choice], "usage": None} if self._include_usage else {"choices": [choice]})

    def _emit(self, body: dict[str, Any]) -> bytes:
        head = {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model}
        return encode(orjson.dumps(head | body))
