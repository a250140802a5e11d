"""anthropic-messages streams <-> IR events. The reader turns an Anthropic upstream's decoded SSE
events into IR events; the writer turns IR events into the `event:`/`data:` SSE bytes that a
/v1/messages client's SDK accumulates into a Message. Constant state per stream: counters, the
held stop reason and usage, and the indexes of the blocks still open."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import orjson

from router.formats.codec import ir
from router.formats.codec.fields import count, usage_in
from router.formats.codec.messages import (
    FMT,
    STOP_FROM,
    STOP_TO,
    json_text,
    message_id,
    read_usage,
    tool_id,
    usage_dict,
)
from router.formats.sse import encode
from router.types import Usage

_USAGE_FIELDS = (  # Anthropic's cumulative usage fields -> ir Usage's
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
    ("cache_read_input_tokens", "cached_tokens"),
    ("cache_creation_input_tokens", "cache_write_tokens"),
)


def _text(v: Any) -> str:
    return v if isinstance(v, str) else ""


class MessagesStreamReader:
    """Anthropic upstream events in, IR events out. Holds message_delta's stop reason and usage
    until message_stop, so Finish carries both (usage = message_start's input counts overlaid
    with message_delta's cumulative totals)."""

    __slots__ = ("_blocks", "_done", "_stop", "_stop_sequence", "_tools", "_usage")

    def __init__(self) -> None:
        # Open blocks by Anthropic index: "text", "thinking", "redacted", or a tool_use block's
        # tool-call index (ToolArgs name calls, not blocks). Closed blocks are forgotten.
        self._blocks: dict[int, str | int] = {}
        self._tools = 0  # tool calls started so far: the next ToolStart's index
        self._usage: Usage | None = None
        self._stop: ir.Stop = "end"
        self._stop_sequence: str | None = None
        self._done = False

    def feed(self, obj: Any) -> list[ir.Event]:
        if self._done or not isinstance(obj, dict):
            return []
        kind = obj.get("type")
        if kind == "message_start":
            return self._start(obj.get("message"))
        if kind == "content_block_start":
            return self._block_start(obj.get("index"), obj.get("content_block"))
        if kind == "content_block_delta":
            return self._delta(obj.get("index"), obj.get("delta"))
        if kind == "content_block_stop":
            index = obj.get("index")
            known = type(index) is int and self._blocks.pop(index, None) is not None
            return [ir.BlockEnd()] if known else []
        if kind == "message_delta":
            self._message_delta(obj.get("delta"), obj.get("usage"))
            return []
        if kind == "message_stop":
            self._done = True
            return [ir.Finish(self._stop, self._stop_sequence, self._usage)]
        if kind == "error":
            self._done = True
            err = obj.get("error")
            err = err if isinstance(err, dict) else {}
            return [ir.Error(_text(err.get("message")) or "upstream error", _text(err.get("type")) or "api_error")]
        return []  # ping, and event types newer than this reader

    def _start(self, message: Any) -> list[ir.Event]:
        if not isinstance(message, dict):
            return []
        usage = usage_in(message, read_usage)
        # A copy: message_delta overlays it, and the Start event must keep what it said.
        self._usage = None if usage is None else dataclasses.replace(usage)
        return [ir.Start(id=_text(message.get("id")), model=_text(message.get("model")), usage=usage)]

    def _block_start(self, index: Any, block: Any) -> list[ir.Event]:
        if type(index) is not int or not isinstance(block, dict):
            return []
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = "text"
            text = _text(block.get("text"))
            return [ir.TextDelta(text)] if text else []
        if kind == "thinking":
            self._blocks[index] = "thinking"
            text, sig = _text(block.get("thinking")), _text(block.get("signature"))
            return [ir.ThinkingDelta(text=text, signature=sig or None, origin=FMT)] if text or sig else []
        if kind == "redacted_thinking":
            self._blocks[index] = "redacted"
            return [ir.ThinkingDelta(redacted=_text(block.get("data")), origin=FMT)]
        if kind == "tool_use":
            call = self._tools
            self._tools += 1
            self._blocks[index] = call
            out: list[ir.Event] = [ir.ToolStart(call, _text(block.get("id")), _text(block.get("name")))]
            if block.get("input"):  # Anthropic sends {} and streams the input; others may not
                out.append(ir.ToolArgs(call, json_text(block["input"])))
            return out
        return []  # server tool blocks: they ran at Anthropic, no other format carries them

    def _delta(self, index: Any, delta: Any) -> list[ir.Event]:
        where = self._blocks.get(index) if type(index) is int else None
        if where is None or not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and where == "text":
            text = _text(delta.get("text"))
            return [ir.TextDelta(text)] if text else []
        if kind == "thinking_delta" and where == "thinking":
            text = _text(delta.get("thinking"))
            return [ir.ThinkingDelta(text=text, origin=FMT)] if text else []
        if kind == "signature_delta" and where == "thinking":
            sig = _text(delta.get("signature"))
            return [ir.ThinkingDelta(signature=sig, origin=FMT)] if sig else []
        if kind == "input_json_delta" and isinstance(where, int):
            fragment = _text(delta.get("partial_json"))  # the first one is often ""
            return [ir.ToolArgs(where, fragment)] if fragment else []
        return []  # citations_delta: no counterpart

    def _message_delta(self, delta: Any, usage: Any) -> None:
        if isinstance(delta, dict):
            stop, seq = delta.get("stop_reason"), delta.get("stop_sequence")
            if isinstance(stop, str):
                self._stop = STOP_FROM.get(stop, "end")
            self._stop_sequence = seq if isinstance(seq, str) else None
        if not isinstance(usage, dict):
            return
        # Cumulative totals: each present field replaces the held one, never adds to it.
        u = self._usage or Usage()
        seen = False
        for wire, field in _USAGE_FIELDS:
            n = count(usage.get(wire))
            if n is not None:
                setattr(u, field, n)
                seen = True
        details = usage.get("output_tokens_details")
        thinking = count(details.get("thinking_tokens")) if isinstance(details, dict) else None
        if thinking is not None:
            u.reasoning_tokens = thinking
        if seen or thinking is not None:
            self._usage = u


class MessagesStreamWriter:
    """IR events in, Anthropic SSE bytes out. Block indexes run 0, 1, 2, ... in start order (the
    SDK accumulates into content[index]). One text or thinking block is open at a time; tool
    blocks stay open until their BlockEnd, other content, or the end, so a chat upstream's
    interleaved parallel calls still reach the right block."""

    __slots__ = ("_block", "_ended", "_id", "_kind", "_model", "_next", "_start_usage", "_tools", "_usage")

    def __init__(self, model: str, include_usage: bool = True) -> None:
        # include_usage is chat's opt-in; Anthropic streams always report usage.
        self._model = model
        self._id: str | None = None  # set once message_start is written
        self._next = 0  # the next block's index
        self._kind: str | None = None  # the open text/thinking block's type ...
        self._block = 0  # ... and its index
        self._tools: dict[int, int] = {}  # open tool blocks: tool-call index -> block index
        self._start_usage: Usage | None = None
        self._usage: Usage | None = None  # from UsageUpdate, for a Finish without usage
        self._ended = False

    @classmethod
    def resume(
        cls, ident: str, model: str, next_index: int, open_text: int | None, open_tool: tuple[int, int] | None = None
    ) -> MessagesStreamWriter:
        """A writer continuing a message whose message_start (`ident`, `model`) and blocks up to
        `next_index` the client already has; `open_text`: the index of its open text block,
        which the next TextDelta continues (None: the next text opens a new block); `open_tool`:
        (IR tool-call index, block index) of its open tool_use block, which a ToolArgs of that
        call continues and Finish or the next block closes."""
        w = cls(model)
        w._id, w._next = ident, next_index
        if open_text is not None:
            w._kind, w._block = "text", open_text
        if open_tool is not None:
            w._tools[open_tool[0]] = open_tool[1]
        return w

    @property
    def response_id(self) -> str | None:
        return self._id

    def write(self, ev: ir.Event) -> bytes:
        if self._ended:
            return b""
        if isinstance(ev, ir.Error):
            self._ended = True
            out = self._close_all() if self._id is not None else b""
            return out + _event({"type": "error", "error": {"type": ev.kind, "message": ev.message}})
        if isinstance(ev, ir.UsageUpdate):
            self._usage = ev.usage
            return b""
        out = self._message_start(ev.id, ev.usage) if isinstance(ev, ir.Start) else b""
        if self._id is None:  # a block before Start (a reader that had none): open the message
            out += self._message_start(f"msg_{uuid.uuid4().hex}", None)
        if isinstance(ev, ir.TextDelta):
            if ev.text:
                out += self._open("text", {"type": "text", "text": ""})
                out += self._delta(self._block, {"type": "text_delta", "text": ev.text})
        elif isinstance(ev, ir.ThinkingDelta):
            out += self._thinking(ev)
        elif isinstance(ev, ir.ToolStart):
            out += self._close_content() + self._close_tool(ev.index)
            self._tools[ev.index] = self._next
            out += self._block_start({"type": "tool_use", "id": tool_id(ev.id), "name": ev.name, "input": {}})
        elif isinstance(ev, ir.ToolArgs):
            block = self._tools.get(ev.index)  # args of a closed or unknown call have no block
            if block is not None and ev.fragment:
                out += self._delta(block, {"type": "input_json_delta", "partial_json": ev.fragment})
        elif isinstance(ev, ir.BlockEnd):
            if self._kind is not None:
                out += self._close_content()
            elif self._tools:  # the most recently started call
                out += self._close_tool(max(self._tools, key=self._tools.__getitem__))
        elif isinstance(ev, ir.Finish):
            out += self._finish(ev)
        return out

    def _message_start(self, ir_id: str, usage: Usage | None) -> bytes:
        if self._id is not None:
            return b""
        self._id = message_id(ir_id)
        self._start_usage = usage
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_dict(usage),
        }
        return _event({"type": "message_start", "message": message})

    def _thinking(self, ev: ir.ThinkingDelta) -> bytes:
        out = b""
        own = ev.origin == FMT  # signatures and redacted data only verify at Anthropic
        if ev.redacted is not None and own:
            out += self._close_all() + self._block_start({"type": "redacted_thinking", "data": ev.redacted})
            out += self._block_stop(self._next - 1)
        if ev.text:
            out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            out += self._delta(self._block, {"type": "thinking_delta", "thinking": ev.text})
        if ev.signature and own:
            out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            out += self._delta(self._block, {"type": "signature_delta", "signature": ev.signature})
            out += self._close_content()  # the signature ends its block, as Anthropic sends it
        return out

    def _finish(self, ev: ir.Finish) -> bytes:
        self._ended = True
        usage = ev.usage or self._usage or self._start_usage
        delta = {"stop_reason": STOP_TO[ev.stop], "stop_sequence": ev.stop_sequence}
        return (
            self._close_all()
            + _event({"type": "message_delta", "delta": delta, "usage": usage_dict(usage)})
            + _event({"type": "message_stop"})
        )

    def _open(self, kind: str, shell: dict[str, Any]) -> bytes:
        """Make a `kind` block the open one: close whatever else is open, then start it."""
        if self._kind == kind:
            return b""
        out = self._close_all()
        self._kind, self._block = kind, self._next
        return out + self._block_start(shell)

    def _block_start(self, shell: dict[str, Any]) -> bytes:
        index, self._next = self._next, self._next + 1
        return _event({"type": "content_block_start", "index": index, "content_block": shell})

    def _close_content(self) -> bytes:
        if self._kind is None:
            return b""
        self._kind = None
        return self._block_stop(self._block)

    def _close_tool(self, call: int) -> bytes:
        block = self._tools.pop(call, None)
        return b"" if block is None else self._block_stop(block)

    def _close_all(self) -> bytes:
        out = self._close_content()
        for call in sorted(self._tools, key=self._tools.__getitem__):
            out += self._close_tool(call)
        return out

    @staticmethod
    def _delta(index: int, delta: dict[str, Any]) -> bytes:
        return _event({"type": "content_block_delta", "index": index, "delta": delta})

    @staticmethod
    def _block_stop(index: int) -> bytes:
        return _event({"type": "content_block_stop", "index": index})


def _event(obj: dict[str, Any]) -> bytes:
    return encode(orjson.dumps(obj), obj["type"])
