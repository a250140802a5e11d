"""OpenAI Responses (`POST /v1/responses`): everything the router knows about it.

Streams are named events with a `sequence_number`, from `response.created` to one terminal
`response.completed` / `response.incomplete` / `response.failed`, which carries the usage. An
error ending is an `error` event and then `response.failed` with the stream's own response id.
Errors and credentials are as in Chat Completions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from router.formats.base import Codec, EventKind, StreamState, WireFormat, empty_shell
from router.formats.chat import openai_error_body
from router.formats.codec import responses as responses_codec
from router.formats.codec import responses_stream
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
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesStreamState(StreamState):
    """Also remembers the stream's response id and last sequence number, which its error ending
    must continue."""

    __slots__ = ("_response_id", "_seq")

    def __init__(self, input_estimate_tokens: int) -> None:
        super().__init__(input_estimate_tokens)
        self._response_id: str | None = None
        self._seq = 0

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
            return
        response = obj.get("response")
        if not isinstance(response, dict):
            return
        if self._response_id is None and isinstance(response.get("id"), str):
            self._response_id = response["id"]
        if kind in _TERMINAL:
            usage = response.get("usage")
            if isinstance(usage, dict):
                self._report(responses_codec.read_usage(usage))

    def error_tail(self, message: str, after_error: bool) -> bytes:
        out = b""
        seq = self._seq + 1
        if not after_error:  # else the upstream's own `error` event was relayed: only close it
            err = {"type": "error", "code": "upstream_error", "message": message, "param": None, "sequence_number": seq}
            out += encode(orjson.dumps(err), "error")
            seq += 1
        failed = {
            "type": "response.failed",
            "sequence_number": seq,
            "response": {
                "id": self._response_id or "resp_router_error",
                "object": "response",
                "status": "failed",
                "error": {"code": "server_error", "message": message},
                "output": [],
            },
        }
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
    header_prefix = "openai-"
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
