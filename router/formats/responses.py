"""OpenAI Responses (`POST /v1/responses`): everything the router knows about it.

Streams are named events with a `sequence_number`, from `response.created` to one terminal
`response.completed` / `response.incomplete` / `response.failed`, which carries the usage. An
error ending is an `error` event and then `response.failed` with the stream's own response id,
created_at and model, and the upstream's own error message when it sent one.
Errors and credentials are as in Chat Completions.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from router.formats.base import (
    Codec,
    Delivered,
    EventKind,
    Prepared,
    StreamState,
    StreamWriter,
    WireFormat,
    delivered,
    empty_shell,
)
from router.formats.chat import openai_error_body
from router.formats.codec import carry, responses_stream
from router.formats.codec import responses as responses_codec
from router.formats.codec import responses_items as items
from router.formats.sse import encode

_KINDS = {
    "response.created": EventKind.PRELUDE,
    "response.in_progress": EventKind.PRELUDE,
    "response.queued": EventKind.PRELUDE,
    "response.completed": EventKind.FINAL,
    "response.incomplete": EventKind.FINAL,
    "response.failed": EventKind.ERROR,
    "error": EventKind.ERROR,
}
_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
        "response.refusal.delta",
    }
)
_ITEM_EVENTS = frozenset(
    {
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.output_text.done",
        "response.function_call_arguments.done",
    }
)
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def strip_carried_thinking(body: dict[str, Any]) -> dict[str, Any]:
    """A native Responses body without the reasoning items whose encrypted_content is the
    router's token: thinking signed by another provider (an earlier turn served through
    Anthropic), which OpenAI could not decrypt and would refuse (a 400 after a failover, say).
    The whole item goes: without its encrypted content OpenAI would look it up by id, and it
    never stored it. Copies only what it changes; the common case costs one scan of the items."""
    inp = body.get("input")
    if not isinstance(inp, list) or not any(_carries_token(i) for i in inp):
        return body
    return {**body, "input": [i for i in inp if not _carries_token(i)]}


def _carries_token(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") == "reasoning" and carry.is_token(item.get("encrypted_content"))


class ResponsesStreamState(StreamState):
    """Also remembers what its error ending must continue or repeat: the stream's response id,
    created_at and model, its last sequence number, and the upstream's own error if it sent one;
    and what a resume needs: the output items done so far (by reference), the open message
    item's id, output_index and text, and the text delivered. A resume continues content part 0
    of a message item; a refusal or any other part is not resumed."""

    __slots__ = (
        "_args",
        "_blocked",
        "_call",
        "_closing",
        "_created_at",
        "_done",
        "_error",
        "_item",
        "_item_start",
        "_model",
        "_names",
        "_part_open",
        "_response_id",
        "_seq",
        "_text",
        "_texting",
        "_tooling",
        "_tools",
    )

    def __init__(self, input_estimate_tokens: int) -> None:
        super().__init__(input_estimate_tokens)
        self._response_id: str | None = None
        self._created_at: int | float | None = None
        self._model: str | None = None
        # The upstream's `error` event, or its response.failed's `error`: kept by reference and
        # read only if the stream needs its error ending.
        self._error: dict[str, Any] | None = None
        self._seq = 0
        self._done: dict[int, dict[str, Any]] = {}  # output_item.done's items by output_index
        self._item: tuple[str, int] | None = None  # the open message item: (id, output_index)
        self._item_start = 0  # where its text starts in _text
        self._part_open = False  # its output_text part was added
        self._text: list[str] = []  # the output_text deltas, as delivered
        self._texting = False  # the latest item added is a message, and no refusal came
        # Between the open item's output_text.done and its output_item.done: the client has part of
        # its closing events, which a writer cannot continue; not resumable for those few events.
        self._closing = False
        self._blocked = False  # a hosted tool item, or the end: never resumable
        # Function calls, numbered as the reader numbers them (in the order their items are added).
        self._tools: dict[int, int] = {}  # output_index -> IR tool-call index
        self._names: list[str] = []
        self._args: list[list[str]] = []  # argument deltas as delivered, by IR index
        self._call: tuple[str, int, str] | None = None  # the open call's item id, output_index, call_id
        self._tooling = False  # the latest item added is a function call

    def feed(self, obj: Any) -> None:
        if not isinstance(obj, dict):
            return
        seq = obj.get("sequence_number")
        if isinstance(seq, int):
            self._seq = seq
        kind = obj.get("type")
        if not isinstance(kind, str):
            kind = ""
        if kind in _DELTAS:
            delta = obj.get("delta")
            if isinstance(delta, str):
                self._add_chars(len(delta))
                if kind == "response.output_text.delta" and self._texting:
                    self._text.append(delta)
                elif kind == "response.function_call_arguments.delta" and delta:
                    tool = self._tools.get(obj.get("output_index"))  # type: ignore[arg-type]
                    if tool is not None:
                        self._args[tool].append(delta)
                elif kind == "response.refusal.delta":
                    self._texting = False
            return
        response = obj.get("response")
        if not isinstance(response, dict):
            if kind == "error":
                self._error = obj
            elif kind in _ITEM_EVENTS:
                self._item_event(kind, obj)
            return
        if self._response_id is None:
            self._opened(response)
        if kind in _TERMINAL:
            self._blocked = True
            usage = response.get("usage")
            if isinstance(usage, dict):
                self._report(responses_codec.read_usage(usage))
            if kind == "response.failed" and isinstance(err := response.get("error"), dict):
                self._error = err

    def feed_content(self, obj: Any) -> bool:
        if type(obj) is not dict or obj.get("type") != "response.output_text.delta":
            return False
        delta = obj.get("delta")
        if type(delta) is not str:
            return False
        seq = obj.get("sequence_number")
        if isinstance(seq, int):
            self._seq = seq
        self._add_chars(len(delta))
        if self._texting:
            self._text.append(delta)
        return True

    def _opened(self, response: dict[str, Any]) -> None:
        """The first response object with an id (normally response.created's) also gives the
        created_at and model that response.failed must repeat."""
        rid = response.get("id")
        if not isinstance(rid, str):
            return
        self._response_id = rid
        created = response.get("created_at")
        if isinstance(created, int | float) and not isinstance(created, bool):
            self._created_at = created
        model = response.get("model")
        if isinstance(model, str):
            self._model = model

    def _item_event(self, kind: str, obj: dict[str, Any]) -> None:
        index = obj.get("output_index")
        if kind in ("response.output_text.done", "response.function_call_arguments.done"):
            self._closing = True
            return
        if kind == "response.content_part.added":
            part = obj.get("part")
            ours = isinstance(part, dict) and part.get("type") == "output_text" and obj.get("content_index") == 0
            self._part_open = ours
            self._texting = self._texting and ours
            return
        item = obj.get("item")
        if not isinstance(item, dict) or type(index) is not int:
            return
        if kind == "response.output_item.done":
            self._done[index] = item
            self._closing = False
            if self._item is not None and self._item[1] == index:
                self._item = None  # the text stays the last content: a resume opens a new item
            if self._call is not None and self._call[1] == index:
                self._call = None  # the call stays the last content, complete
            return
        itype, item_id = item.get("type"), item.get("id")
        self._texting = itype == "message" and isinstance(item_id, str)
        self._tooling = itype == "function_call" and isinstance(item_id, str)
        if isinstance(item_id, str) and self._texting:
            self._item, self._item_start, self._part_open = (item_id, index), len(self._text), False
        else:
            self._item, self._call = None, None
            if itype == "function_call" and isinstance(item_id, str):
                self._tools[index] = len(self._names)
                name, call_id, args = item.get("name"), item.get("call_id"), item.get("arguments")
                self._names.append(name if isinstance(name, str) else "")
                self._args.append([args] if isinstance(args, str) and args else [])
                self._call = (item_id, index, call_id if isinstance(call_id, str) else "")
            self._blocked = self._blocked or itype not in ("reasoning", "function_call")

    def resume_point(self) -> Delivered | None:
        if self._blocked or self._closing or self._response_id is None:
            return None
        if not self._names:
            return Delivered("".join(self._text), ()) if self._texting and self._text else None
        if not self._tooling:
            return None  # a message or reasoning item after the calls: no call to continue
        return delivered(self._text, self._names, self._args)

    def resume_writer(self, include_usage: bool) -> StreamWriter:
        assert self._response_id is not None, "resume_writer before resume_text or resume_point"
        item, call = self._item, self._call
        open_item: responses_stream.OpenItem | responses_stream.OpenCall | None = None
        if item is not None:
            open_item = (*item, "".join(self._text[self._item_start :]), self._part_open)
        elif call is not None:
            tool = self._tools[call[1]]
            open_item = (call[0], call[1], tool, call[2], self._names[tool], "".join(self._args[tool]))
        created = int(self._created_at) if self._created_at is not None else int(time.time())
        return responses_stream.ResponsesStreamWriter.resume(
            self._response_id, self._model or "", created, self._seq + 1, self._done, open_item
        )

    def error_tail(self, message: str, after_error: bool) -> bytes:
        """`error` with the router's `message` (unless the upstream's own was relayed), then
        response.failed continuing the stream's id and sequence numbers. The failure carries the
        upstream's own error message (and code, within the SDK's closed set) when it sent one,
        else `message`."""
        out = b""
        seq = self._seq + 1
        if not after_error:
            err = {"type": "error", "code": "upstream_error", "message": message, "param": None, "sequence_number": seq}
            out += encode(orjson.dumps(err), "error")
            seq += 1
        cause = responses_stream.stream_error(self._error or {}, message)
        created = self._created_at if self._created_at is not None else int(time.time())
        # Every field the SDK's Response requires. The request's tools, tool_choice and
        # parallel_tool_calls never reach the relay: envelope()'s valid defaults stand in. The
        # output items the client already has are not repeated (the relay does not keep them).
        response = items.envelope(self._response_id or "resp_router_error", self._model or "", created, "failed", [])
        response["error"] = {"code": items.failed_code(cause), "message": cause.message}
        failed = {"type": "response.failed", "sequence_number": seq, "response": response}
        return out + encode(orjson.dumps(failed), "response.failed")


class ResponsesFormat(WireFormat):
    name = "openai-responses"
    codec = Codec(
        responses_codec.read_request,
        responses_codec.write_request,
        responses_codec.read_answer,
        responses_codec.write_answer,
        responses_codec.read_error,
        responses_codec.read_usage,
        responses_stream.ResponsesStreamReader,
        responses_stream.ResponsesStreamWriter,
    )
    path = "/v1/responses"
    forward_headers = frozenset({"openai-beta"})
    body_fields = (
        ("input", (str, list), "a string or an array", False),
        ("instructions", (str,), "a string", False),
        ("max_output_tokens", (int,), "an integer", False),
        ("tools", (list,), "an array", False),
    )
    max_output_fields = ("max_output_tokens",)
    param_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "temperature": ("temperature",),
        "top_p": ("top_p",),
        "reasoning": ("reasoning",),
    }

    def _with_assistant_text(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        given = body.get("input")
        if isinstance(given, str):
            items: list[Any] = [{"role": "user", "content": given}]
        else:
            items = list(given) if isinstance(given, list) else []
        return {**body, "input": [*items, {"role": "assistant", "content": text}]}

    def auth_headers(self, api_key: str | None, headers: dict[str, str], *, anthropic_version: str) -> None:
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"

    def prepare(self, body: dict[str, Any], model: str, drop: frozenset[str], stream: bool) -> Prepared:
        return Prepared(strip_carried_thinking(self._rewritten(body, model, drop)))

    def event_kind(self, obj: Any) -> EventKind:
        etype = obj.get("type") if isinstance(obj, dict) else None
        if not isinstance(etype, str):
            return EventKind.TRAILER
        if etype.endswith(".done"):
            return EventKind.TRAILER
        if etype == "response.output_item.added" and empty_shell(obj.get("item")):
            return EventKind.PRELUDE
        if etype == "response.content_part.added" and empty_shell(obj.get("part")):
            return EventKind.PRELUDE
        return _KINDS.get(etype, EventKind.CONTENT)

    def error_is_final(self, obj: Any) -> bool:
        # An `error` event is followed by `response.failed`, which the client still needs.
        return isinstance(obj, dict) and obj.get("type") == "response.failed"

    def stream_state(self, input_estimate_tokens: int) -> StreamState:
        return ResponsesStreamState(input_estimate_tokens)

    def error_body(self, status: int, message: str, code: str, param: str | None = None) -> bytes:
        return openai_error_body(status, message, code, param)


RESPONSES = ResponsesFormat()
