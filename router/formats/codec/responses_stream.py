"""openai-responses streams <-> IR stream events: `ResponsesStreamReader` turns an upstream's
events into IR events, `ResponsesStreamWriter` turns IR events into the client's
`event: <type>` / `data: {...}` SSE, with sequence_number counting from 0.

Reader: text and refusal deltas are TextDelta; reasoning summary and raw reasoning text deltas
are ThinkingDelta (a blank line between summary parts, as read_answer joins them); a reasoning
item's encrypted_content is taken from its output_item.done (the copy in .added may be partial).
Hosted-tool events, annotations, in_progress, .done repeats are ignored; items that arrive whole
in output_item.done without deltas still yield their text or arguments.

Writer: one message item per text block, one reasoning item (one summary part) per thinking
block, one function_call item per tool call. It keeps each item's text or arguments until the
item is done: the format repeats them in the .done events and in response.completed. Another
provider's signed or redacted thinking goes into the reasoning item's encrypted_content as the
router's token (carry.py), on output_item.done and in response.completed: the signature comes
after the text, so output_item.added never has it (the SDK documents .added's copy as partial).
Not carried: Start.usage (folded into the final usage), the request's tools and settings (defaults).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from router.formats.codec import carry, ir
from router.formats.codec import responses_items as items
from router.formats.codec.fields import usage_in
from router.formats.codec.responses import read_usage
from router.formats.sse import encode
from router.types import Usage

FMT = items.FMT
OpenItem = tuple[str, int, str, bool]  # a message item to resume: id, output_index, text so far, part added
OpenCall = tuple[str, int, int, str, str, str]  # a function_call: id, output_index, tool index, call_id, name, args


class ResponsesStreamReader:
    """Upstream Responses events -> IR events (see the module docstring)."""

    def __init__(self) -> None:
        self._started = False
        self._ended = False  # after Finish or Error nothing more is read (error + failed: one Error)
        self._calls = 0  # function calls started: the next ToolStart index
        self._tool_by_item: dict[str, int] = {}
        self._tool_by_index: dict[int, int] = {}  # output_index -> tool index
        self._streamed: set[int] = set()  # output indexes whose text/arguments came as deltas

    def feed(self, obj: Any) -> list[ir.Event]:
        if self._ended or not isinstance(obj, dict):
            return []
        kind = obj.get("type")
        if kind in ("response.created", "response.queued", "response.in_progress"):
            return self._created(obj.get("response"))  # the first of these starts the stream
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            return self._delta(obj, lambda d: ir.TextDelta(d))
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return self._delta(obj, lambda d: ir.ThinkingDelta(d, origin=FMT))
        if kind == "response.reasoning_summary_part.added":
            index = obj.get("summary_index")
            return [ir.ThinkingDelta("\n\n", origin=FMT)] if isinstance(index, int) and index > 0 else []
        if kind == "response.output_item.added":
            item = obj.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                return self._tool_start(item, obj.get("output_index"))
            return []
        if kind == "response.function_call_arguments.delta":
            tool = self._tool_of(obj.get("item_id"), obj.get("output_index"))
            return self._delta(obj, lambda d: ir.ToolArgs(tool, d)) if tool is not None else []
        if kind == "response.output_item.done":
            return self._item_done(obj.get("item"), obj.get("output_index"))
        if kind in ("response.completed", "response.incomplete"):
            return self._finish(obj.get("response"))
        if kind == "response.failed":
            response = obj.get("response")
            err = response.get("error") if isinstance(response, dict) else None
            return self._error(err if isinstance(err, dict) else {})
        if kind == "error":
            return self._error(obj)
        return []

    def _created(self, response: Any) -> list[ir.Event]:
        if self._started or not isinstance(response, dict):
            return []
        self._started = True
        created = response.get("created_at")
        created = int(created) if isinstance(created, (int, float)) and not isinstance(created, bool) else None
        return [ir.Start(id=str(response.get("id") or ""), model=str(response.get("model") or ""), created=created)]

    def _delta(self, obj: dict[str, Any], make: Callable[[str], ir.Event]) -> list[ir.Event]:
        delta = obj.get("delta")
        if not isinstance(delta, str) or not delta:
            return []
        if isinstance(index := obj.get("output_index"), int):
            self._streamed.add(index)
        return [make(delta)]

    def _tool_start(self, item: dict[str, Any], output_index: Any) -> list[ir.Event]:
        tool = self._calls
        self._calls += 1
        if isinstance(item_id := item.get("id"), str):
            self._tool_by_item[item_id] = tool
        if isinstance(output_index, int):
            self._tool_by_index[output_index] = tool
        out: list[ir.Event] = [ir.ToolStart(tool, str(item.get("call_id") or ""), str(item.get("name") or ""))]
        args = item.get("arguments")
        if isinstance(args, str) and args:  # some servers put whole arguments in .added
            out.append(ir.ToolArgs(tool, args))
            if isinstance(output_index, int):
                self._streamed.add(output_index)
        return out

    def _tool_of(self, item_id: Any, output_index: Any) -> int | None:
        if isinstance(item_id, str) and item_id in self._tool_by_item:
            return self._tool_by_item[item_id]
        return self._tool_by_index.get(output_index) if isinstance(output_index, int) else None

    def _item_done(self, item: Any, output_index: Any) -> list[ir.Event]:
        if not isinstance(item, dict):
            return []
        kind = item.get("type")
        streamed = output_index in self._streamed
        out: list[ir.Event] = []
        if kind == "function_call":
            tool = self._tool_of(item.get("id"), output_index)
            if tool is None:  # done without added: start it now
                out = self._tool_start(item, output_index)
            elif not streamed and isinstance(args := item.get("arguments"), str) and args:
                out.append(ir.ToolArgs(tool, args))
        elif kind == "message":
            if not streamed:
                out.extend(ir.TextDelta(p.text) for p in items.read_output([item]) if isinstance(p, ir.Text) and p.text)
        elif kind == "reasoning":
            thinking = items.read_reasoning(item)
            if thinking.text and not streamed:
                out.append(ir.ThinkingDelta(thinking.text, origin=FMT))
            if thinking.encrypted:
                out.append(ir.ThinkingDelta(encrypted=thinking.encrypted, origin=FMT))
        else:
            return []  # hosted-tool items have no IR block
        out.append(ir.BlockEnd())
        return out

    def _finish(self, response: Any) -> list[ir.Event]:
        self._ended = True
        r = response if isinstance(response, dict) else {}
        output = r.get("output")
        has_calls = self._calls > 0 or (
            isinstance(output, list) and any(isinstance(i, dict) and i.get("type") == "function_call" for i in output)
        )
        return [ir.Finish(items.stop_from(r, has_calls), usage=usage_in(r, read_usage))]

    def _error(self, err: dict[str, Any]) -> list[ir.Event]:
        self._ended = True
        return [stream_error(err)]


def stream_error(err: dict[str, Any], default: str = "upstream error") -> ir.Error:
    """An upstream's `error` event, or the `error` of its response.failed, as IR; `default` when
    it names no message."""
    message, code = err.get("message"), err.get("code")
    return ir.Error(
        message=message if isinstance(message, str) and message else default,
        kind=items.error_kind(err.get("type"), code),
        code=code if isinstance(code, str) else None,
    )


@dataclass(slots=True)
class _Item:
    """An output item the writer has opened and not yet finished."""

    kind: Literal["message", "reasoning", "function_call"]
    index: int  # output_index
    id: str
    pieces: list[str] = field(default_factory=list)  # text or arguments, joined when done
    part_open: bool = False  # message: content part added; reasoning: summary part added
    encrypted: str | None = None
    carried: ir.Thinking | None = None  # reasoning: another provider's signature or redacted data
    call_id: str = ""
    name: str = ""


class ResponsesStreamWriter:
    """IR events -> the client's Responses SSE (see the module docstring)."""

    def __init__(self, model: str, include_usage: bool = True) -> None:
        self._model = model  # include_usage is chat's; Responses always reports usage
        self._seq = 0
        self._rid: str | None = None
        self._created = 0
        self._ended = False
        self._output: list[dict[str, Any] | None] = []  # done items by output_index (None: open)
        self._block: _Item | None = None  # the open message or reasoning item
        self._calls: dict[int, _Item] = {}  # open function_call items by tool index
        self._current: _Item | None = None  # what BlockEnd closes: the item last written to
        self._usage: Usage | None = None
        self._out: list[bytes] = []

    @classmethod
    def resume(
        cls, rid: str, model: str, created: int, seq: int, done: dict[int, Any], item: OpenItem | OpenCall | None
    ) -> ResponsesStreamWriter:
        """A writer continuing a response the client has up to sequence number `seq` - 1: its `done`
        items (by output_index) go into the terminal event's output; `item`: the message item the next
        TextDelta continues, or the function_call that ToolArgs of its tool index do (whole on .done)."""
        w = cls(model)
        w._rid, w._created, w._seq = rid, created, seq
        w._output = [done.get(i) for i in range(max([*done, -1 if item is None else item[1]]) + 1)]
        if item is not None and len(item) == 4:
            item_id, index, text, part_open = item
            w._block = w._current = _Item("message", index, item_id, [text] if text else [], part_open)
        elif item is not None:
            item_id, index, tool, call_id, name, args = item
            w._calls[tool] = w._current = _Item("function_call", index, item_id, [args], call_id=call_id, name=name)
        return w

    @property
    def response_id(self) -> str | None:
        return self._rid

    def write(self, ev: ir.Event) -> bytes:
        if self._ended:
            return b""
        if isinstance(ev, ir.Start):
            self._start(ev)
        elif isinstance(ev, ir.UsageUpdate):
            self._usage = ev.usage
        elif isinstance(ev, ir.BlockEnd):
            if self._current is not None:
                self._close(self._current)
        elif isinstance(ev, ir.Finish):
            self._ensure_started()
            self._finish(ev)
        elif isinstance(ev, ir.Error):
            self._ensure_started()
            self._fail(ev)
        else:
            self._ensure_started()
            self._content(ev)
        out = b"".join(self._out)
        self._out.clear()
        return out

    # ------------------------------------------------------------ lifecycle

    def _emit(self, kind: str, body: dict[str, Any]) -> None:
        self._out.append(encode(orjson.dumps({"type": kind, "sequence_number": self._seq, **body}), kind))
        self._seq += 1

    def _envelope(self, status: str) -> dict[str, Any]:
        assert self._rid is not None
        done = [item for item in self._output if item is not None]
        return items.envelope(self._rid, self._model, self._created, status, done)

    def _start(self, ev: ir.Start) -> None:
        if self._rid is not None:
            return
        self._rid = items.response_id(ev.id)
        self._created = ev.created if ev.created is not None else int(time.time())
        self._usage = ev.usage  # Anthropic's input count; Finish or UsageUpdate replace it
        envelope = self._envelope("in_progress")
        self._emit("response.created", {"response": envelope})
        self._emit("response.in_progress", {"response": envelope})

    def _ensure_started(self) -> None:
        # The SDK needs response.created first; an upstream that skipped its start gets one.
        if self._rid is None:
            self._start(ir.Start(id=uuid.uuid4().hex, model=self._model))

    def _finish(self, ev: ir.Finish) -> None:
        self._close_all("completed")
        status, incomplete = items.status_for(ev.stop)
        response = self._envelope(status)
        response["incomplete_details"] = incomplete
        response["usage"] = items.usage_out(ev.usage or self._usage)
        self._emit("response.completed" if status == "completed" else "response.incomplete", {"response": response})
        self._ended = True

    def _fail(self, ev: ir.Error) -> None:
        self._close_all("incomplete")
        code = ev.code or items.failed_code(ev)  # an OpenAI-style code, never an Anthropic error type
        self._emit("error", {"code": code, "message": ev.message, "param": None})
        response = self._envelope("failed")
        response["error"] = {"code": items.failed_code(ev), "message": ev.message}
        self._emit("response.failed", {"response": response})
        self._ended = True

    # ------------------------------------------------------------ items

    def _content(self, ev: ir.TextDelta | ir.ThinkingDelta | ir.ToolStart | ir.ToolArgs) -> None:
        if isinstance(ev, ir.TextDelta):
            if ev.text:
                self._append(self._block_of("message"), ev.text)
        elif isinstance(ev, ir.ThinkingDelta):
            own = ev.origin == FMT and ev.encrypted is not None
            signed = ev.origin != FMT and (bool(ev.signature) or ev.redacted is not None)
            if ev.text or own or signed:
                if self._block is not None and self._block.carried is not None:
                    self._close(self._block)  # a signed block ends at its signature: this is the next one
                item = self._block_of("reasoning")
                if ev.text:
                    self._append(item, ev.text)
                if own:
                    item.encrypted = ev.encrypted
                if signed:  # written into encrypted_content as a token when the item is done
                    item.carried = ir.Thinking(signature=ev.signature, redacted=ev.redacted, origin=ev.origin)
        elif isinstance(ev, ir.ToolStart):
            if ev.index not in self._calls:
                self._close_block()
                self._calls[ev.index] = item = self._open("function_call", "fc")
                item.call_id, item.name = ev.id, ev.name
                fc = items.call_item(item.id, ir.ToolCall(ev.id, ev.name, ""), "in_progress")
                self._emit("response.output_item.added", {"output_index": item.index, "item": fc})
        else:
            call = self._calls.get(ev.index)
            if call is not None and ev.fragment:  # args for an unknown or finished call are lost
                self._append(call, ev.fragment)

    def _block_of(self, kind: Literal["message", "reasoning"]) -> _Item:
        """The open text or reasoning item, opening it (and closing what came before) if needed."""
        if self._block is not None and self._block.kind == kind:
            return self._block
        self._close_block()
        for call in sorted(self._calls.values(), key=lambda c: c.index):
            self._close(call)  # text after tool calls means the calls are complete
        self._block = item = self._open(kind, "msg" if kind == "message" else "rs")
        # Added items are empty (content: [] / summary: []): the SDK helper appends to them.
        if kind == "message":
            added = items.message_item(item.id, [], "in_progress")
        else:
            added = items.reasoning_item(item.id, "", None)
        self._emit("response.output_item.added", {"output_index": item.index, "item": added})
        return item

    def _open(self, kind: Literal["message", "reasoning", "function_call"], prefix: str) -> _Item:
        assert self._rid is not None
        index = len(self._output)
        self._output.append(None)
        self._current = item = _Item(kind, index, items.item_id(self._rid, prefix, index))
        return item

    def _append(self, item: _Item, text: str) -> None:
        self._current = item
        at = {"item_id": item.id, "output_index": item.index}
        if item.kind == "function_call":
            self._emit("response.function_call_arguments.delta", {**at, "delta": text})
        elif item.kind == "message":
            if not item.part_open:
                item.part_open = True
                self._emit("response.content_part.added", {**at, "content_index": 0, "part": items.output_text("")})
            self._emit("response.output_text.delta", {**at, "content_index": 0, "delta": text, "logprobs": []})
        else:
            if not item.part_open:
                item.part_open = True
                part = {"type": "summary_text", "text": ""}
                self._emit("response.reasoning_summary_part.added", {**at, "summary_index": 0, "part": part})
            self._emit("response.reasoning_summary_text.delta", {**at, "summary_index": 0, "delta": text})
        item.pieces.append(text)

    def _close_block(self, status: str = "completed") -> None:
        if self._block is not None:
            self._close(self._block, status)

    def _close_all(self, status: str) -> None:
        self._close_block(status)
        for call in sorted(self._calls.values(), key=lambda c: c.index):
            self._close(call, status)

    def _close(self, item: _Item, status: str = "completed") -> None:
        """The item's .done events and its output_item.done, with the full text repeated."""
        text = "".join(item.pieces)
        at = {"item_id": item.id, "output_index": item.index}
        if item.kind == "message":  # opened by its first delta, so its content part is open
            self._emit("response.output_text.done", {**at, "content_index": 0, "text": text, "logprobs": []})
            self._emit("response.content_part.done", {**at, "content_index": 0, "part": items.output_text(text)})
            done = items.message_item(item.id, [text], status)
        elif item.kind == "reasoning":
            if item.part_open:
                self._emit("response.reasoning_summary_text.done", {**at, "summary_index": 0, "text": text})
                part = {"type": "summary_text", "text": text}
                self._emit("response.reasoning_summary_part.done", {**at, "summary_index": 0, "part": part})
            if item.carried is not None:
                item.carried.text = text  # the signature covers the text: the token holds both
                item.encrypted = carry.write(item.carried)
            done = items.reasoning_item(item.id, text, item.encrypted)
        else:
            self._emit("response.function_call_arguments.done", {**at, "arguments": text})
            done = items.call_item(item.id, ir.ToolCall(item.call_id, item.name, text), status)
            del self._calls[next(k for k, v in self._calls.items() if v is item)]
        self._output[item.index] = done
        self._emit("response.output_item.done", {"output_index": item.index, "item": done})
        if self._block is item:
            self._block = None
        if self._current is item:
            self._current = None
