"""Payload builders for the three wire formats (protocols.md A.3/A.4, B.3/B.4, C.2/C.3):
non-stream bodies, SSE events split into head / content deltas / tail, and error envelopes."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import orjson

_dumps = orjson.dumps


@dataclass(slots=True)
class Answer:
    """Everything that varies per request; the rest of each payload is constant."""

    model: str  # echoed from the request
    text: str
    pieces: tuple[str, ...]  # `text` split into the stream's content deltas
    prompt_tokens: int
    completion_tokens: int
    rid: str  # random hex shared by the ids of one answer
    created: int
    include_usage: bool = False  # chat: stream_options.include_usage
    no_done: bool = False  # chat: omit [DONE]


class Stream(NamedTuple):
    """An SSE answer: `head` before the first delta, one item per content delta, `tail` = final events."""

    head: bytes
    deltas: list[bytes]
    tail: bytes


class WireFormat(Protocol):
    request_id_header: bytes

    def error_body(self, status: int, message: str, rid: str) -> bytes: ...
    def error_event(self, message: str) -> bytes: ...
    def complete(self, a: Answer) -> bytes: ...
    def stream(self, a: Answer) -> Stream: ...


@functools.lru_cache(maxsize=256)
def split_text(text: str, n: int) -> tuple[str, ...]:
    """`text` in `n` nearly equal pieces (some are empty when n > len(text))."""
    size = len(text)
    return tuple(text[i * size // n : (i + 1) * size // n] for i in range(n))


def _data(obj: Any) -> bytes:
    return b"data: " + _dumps(obj) + b"\n\n"


def _event(name: bytes, obj: Any) -> bytes:
    return b"event: " + name + b"\ndata: " + _dumps(obj) + b"\n\n"


GARBAGE_EVENT = b"data: not-json{\n\n"

# status -> (type, code) as OpenAI answers them
_OPENAI_ERRORS: dict[int, tuple[str, str | None]] = {
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    503: ("server_error", "server_is_overloaded"),
}
_ANTHROPIC_ERRORS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def openai_error_body(status: int, message: str) -> bytes:
    """The OpenAI error envelope (protocols A.5), shared by chat and responses."""
    default = ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    kind, code = _OPENAI_ERRORS.get(status, default)
    return _dumps({"error": {"message": message, "type": kind, "code": code, "param": None}})


class ChatFormat:
    """`POST /v1/chat/completions`: data-only SSE ending with `data: [DONE]`."""

    request_id_header = b"x-request-id"

    def error_body(self, status: int, message: str, rid: str) -> bytes:
        return openai_error_body(status, message)  # the id travels in x-request-id

    def error_event(self, message: str) -> bytes:
        return _data({"error": {"message": message, "type": "server_error", "param": None, "code": None}})

    @staticmethod
    def _usage(a: Answer) -> dict[str, Any]:
        return {
            "prompt_tokens": a.prompt_tokens,
            "completion_tokens": a.completion_tokens,
            "total_tokens": a.prompt_tokens + a.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    def complete(self, a: Answer) -> bytes:
        return _dumps(
            {
                "id": "chatcmpl-" + a.rid,
                "object": "chat.completion",
                "created": a.created,
                "model": a.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": a.text, "refusal": None},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": self._usage(a),
            }
        )

    def stream(self, a: Answer) -> Stream:
        base: dict[str, Any] = {
            "id": "chatcmpl-" + a.rid,
            "object": "chat.completion.chunk",
            "created": a.created,
            "model": a.model,
        }
        # with include_usage every chunk but the usage chunk says `"usage": null` explicitly
        no_usage: dict[str, Any] = {"usage": None} if a.include_usage else {}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return _data({**base, "choices": [choice], **no_usage})

        tail = chunk({}, "stop")
        if a.include_usage:
            tail += _data({**base, "choices": [], "usage": self._usage(a)})
        if not a.no_done:
            tail += b"data: [DONE]\n\n"
        return Stream(
            chunk({"role": "assistant", "content": ""}),
            [chunk({"content": piece}) for piece in a.pieces],
            tail,
        )


class MessagesFormat:
    """`POST /v1/messages` (Anthropic): named SSE events ending with `message_stop`."""

    request_id_header = b"request-id"

    def error_body(self, status: int, message: str, rid: str) -> bytes:
        default = "api_error" if status >= 500 else "invalid_request_error"
        kind = _ANTHROPIC_ERRORS.get(status, default)
        return _dumps({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_" + rid})

    def error_event(self, message: str) -> bytes:
        return _event(b"error", {"type": "error", "error": {"type": "overloaded_error", "message": message}})

    def complete(self, a: Answer) -> bytes:
        return _dumps(
            {
                "id": "msg_" + a.rid,
                "type": "message",
                "role": "assistant",
                "model": a.model,
                "content": [{"type": "text", "text": a.text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "stop_details": None,
                "usage": {
                    "input_tokens": a.prompt_tokens,
                    "output_tokens": a.completion_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            }
        )

    def stream(self, a: Answer) -> Stream:
        message: dict[str, Any] = {
            "id": "msg_" + a.rid,
            "type": "message",
            "role": "assistant",
            "model": a.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": a.prompt_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
            },
        }
        head = (
            _event(b"message_start", {"type": "message_start", "message": message})
            + _event(b"ping", {"type": "ping"})
            + _event(
                b"content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        deltas = [
            _event(
                b"content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
            )
            for piece in a.pieces
        ]
        tail = (
            _event(b"content_block_stop", {"type": "content_block_stop", "index": 0})
            + _event(
                b"message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": a.completion_tokens},
                },
            )
            + _event(b"message_stop", {"type": "message_stop"})
        )
        return Stream(head, deltas, tail)


class ResponsesFormat:
    """`POST /v1/responses`: named SSE events with `sequence_number`, ending with `response.completed`."""

    request_id_header = b"x-request-id"

    def error_body(self, status: int, message: str, rid: str) -> bytes:
        return openai_error_body(status, message)  # the id travels in x-request-id

    def error_event(self, message: str) -> bytes:
        body = {"type": "error", "code": "server_error", "message": message, "param": None, "sequence_number": 0}
        return _event(b"error", body)

    @staticmethod
    def _response(a: Answer, status: str, output: list[Any], usage: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "id": "resp_" + a.rid,
            "object": "response",
            "created_at": a.created,
            "status": status,
            "model": a.model,
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "max_output_tokens": None,
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "store": False,
            "temperature": 1.0,
            "top_p": 1.0,
            "text": {"format": {"type": "text"}},
            "truncation": "disabled",
            "usage": usage,
            "previous_response_id": None,
            "metadata": {},
        }

    @staticmethod
    def _usage(a: Answer) -> dict[str, Any]:
        return {
            "input_tokens": a.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": a.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": a.prompt_tokens + a.completion_tokens,
        }

    @staticmethod
    def _message(a: Answer, status: str, content: list[Any]) -> dict[str, Any]:
        return {"type": "message", "id": "msg_" + a.rid, "role": "assistant", "status": status, "content": content}

    def complete(self, a: Answer) -> bytes:
        part = {"type": "output_text", "text": a.text, "annotations": [], "logprobs": []}
        output = [self._message(a, "completed", [part])]
        return _dumps(self._response(a, "completed", output, self._usage(a)))

    def stream(self, a: Answer) -> Stream:
        seq = 0

        def event(name: str, body: dict[str, Any]) -> bytes:
            nonlocal seq
            out = _event(name.encode(), {"type": name, "sequence_number": seq, **body})
            seq += 1
            return out

        item_id = "msg_" + a.rid
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        in_progress = self._response(a, "in_progress", [], None)
        head = (
            event("response.created", {"response": in_progress})
            + event("response.in_progress", {"response": in_progress})
            + event("response.output_item.added", {"output_index": 0, "item": self._message(a, "in_progress", [])})
            + event(
                "response.content_part.added",
                {**where, "part": {"type": "output_text", "text": "", "annotations": []}},
            )
        )
        deltas = [
            event("response.output_text.delta", {**where, "delta": piece, "logprobs": []}) for piece in a.pieces
        ]
        part = {"type": "output_text", "text": a.text, "annotations": []}
        done_item = self._message(a, "completed", [part])
        tail = (
            event("response.output_text.done", {**where, "text": a.text, "logprobs": []})
            + event("response.content_part.done", {**where, "part": part})
            + event("response.output_item.done", {"output_index": 0, "item": done_item})
            + event("response.completed", {"response": self._response(a, "completed", [done_item], self._usage(a))})
        )
        return Stream(head, deltas, tail)


FORMATS: dict[str, WireFormat] = {
    "/v1/chat/completions": ChatFormat(),
    "/v1/messages": MessagesFormat(),
    "/v1/responses": ResponsesFormat(),
}
