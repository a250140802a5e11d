"""`POST /v1/messages` (protocols.md B): the request reader and the answer writer, with thinking
blocks (fake signature) and tool_use blocks whose input streams as `input_json_delta` fragments."""

from __future__ import annotations

from typing import Any

import orjson

from router.fake_upstream.answers import Answer, Prompt, text_of
from router.fake_upstream.formats import ANTHROPIC_ERRORS, Stream, StreamBuilder, cap, dumps, event, first_tool


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


class MessagesFormat:
    """Named SSE events ending with `message_stop`."""

    request_id_header = b"request-id"

    def prompt(self, body: dict[str, Any]) -> Prompt:
        messages = body.get("messages")
        if not isinstance(messages, list):
            messages = []
        users = [_blocks(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        results = [text_of(b.get("content")) for b in (users[-1] if users else []) if b.get("type") == "tool_result"]
        user_text = ""
        for blocks in reversed(users):  # a tool-result turn has no text: quote the question before it
            texts = [b for b in blocks if b.get("type") == "text"]
            if texts:
                user_text = text_of(texts)
                break
        thinking = body.get("thinking")
        return Prompt(
            user_text=user_text,
            tool=first_tool(body.get("tools"), (None, "custom")),
            tool_results=tuple(results) if results else None,
            reasoning=isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"),
            prefill=_prefill(messages),
            max_output=cap(body, "max_tokens"),
        )

    def prefill_problem(self, prefill: str) -> str | None:
        # Anthropic's own rule, which a router continuing a stream must respect.
        if prefill != prefill.rstrip():
            return "messages: final assistant content cannot end with trailing whitespace"
        return None

    def error_body(self, status: int, message: str, rid: str) -> bytes:
        default = "api_error" if status >= 500 else "invalid_request_error"
        kind = ANTHROPIC_ERRORS.get(status, default)
        return dumps({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_" + rid})

    def error_event(self, message: str) -> bytes:
        return event(b"error", {"type": "error", "error": {"type": "overloaded_error", "message": message}})

    @staticmethod
    def _usage(a: Answer) -> dict[str, Any]:
        # input_tokens excludes cache reads (protocols B.3)
        usage: dict[str, Any] = {
            "input_tokens": a.prompt_tokens - a.cached_tokens,
            "output_tokens": a.completion_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": a.cached_tokens,
        }
        if a.reasoning is not None:
            usage["output_tokens_details"] = {"thinking_tokens": a.reasoning_tokens}
        return usage

    @staticmethod
    def _signature(a: Answer) -> str:
        return "sig-fake-" + a.rid

    @staticmethod
    def _tool_id(a: Answer, index: int) -> str:
        return f"toolu_{a.rid}_{index}"

    def complete(self, a: Answer) -> bytes:
        content: list[dict[str, Any]] = []
        if a.reasoning is not None:
            content.append({"type": "thinking", "thinking": a.reasoning, "signature": self._signature(a)})
        content.append({"type": "text", "text": a.text})
        for c in a.calls:
            tool_use = {"type": "tool_use", "id": self._tool_id(a, c.index), "name": c.name}
            content.append({**tool_use, "input": orjson.loads(c.arguments)})
        return dumps(
            {
                "id": "msg_" + a.rid,
                "type": "message",
                "role": "assistant",
                "model": a.model,
                "content": content,
                "stop_reason": "tool_use" if a.calls else "end_turn",
                "stop_sequence": None,
                "stop_details": None,
                "usage": self._usage(a),
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
                "input_tokens": a.prompt_tokens - a.cached_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": a.cached_tokens,
                "output_tokens": 1,
            },
        }
        out = StreamBuilder()
        out.event(event(b"message_start", {"type": "message_start", "message": message}))
        out.event(event(b"ping", {"type": "ping"}))
        index = 0  # blocks are numbered 0, 1, 2, ... and streamed one at a time (F.11)

        def start(block: dict[str, Any]) -> None:
            body = {"type": "content_block_start", "index": index, "content_block": block}
            out.event(event(b"content_block_start", body))

        def delta(body: dict[str, Any]) -> bytes:
            return event(b"content_block_delta", {"type": "content_block_delta", "index": index, "delta": body})

        def stop() -> None:
            nonlocal index
            out.event(event(b"content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1

        if a.reasoning is not None:
            start({"type": "thinking", "thinking": "", "signature": ""})  # the empty fields are required (F.12)
            for piece in a.reasoning_pieces:
                out.delta(delta({"type": "thinking_delta", "thinking": piece}))
            out.event(delta({"type": "signature_delta", "signature": self._signature(a)}))
            stop()
        start({"type": "text", "text": ""})
        for piece in a.pieces:
            out.delta(delta({"type": "text_delta", "text": piece}))
        stop()
        for c in a.calls:
            start({"type": "tool_use", "id": self._tool_id(a, c.index), "name": c.name, "input": {}})
            out.event(delta({"type": "input_json_delta", "partial_json": ""}))  # the real API's empty first piece
            for piece in c.pieces:
                out.delta(delta({"type": "input_json_delta", "partial_json": piece}))
            stop()
        usage: dict[str, Any] = {"output_tokens": a.completion_tokens}
        if a.reasoning is not None:
            usage["output_tokens_details"] = {"thinking_tokens": a.reasoning_tokens}
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use" if a.calls else "end_turn", "stop_sequence": None},
            "usage": usage,
        }
        out.event(event(b"message_delta", message_delta))
        out.event(event(b"message_stop", {"type": "message_stop"}))
        return out.build()


def _prefill(messages: list[Any]) -> str | None:
    """The text of a trailing assistant turn made only of text blocks (a prefill), if there is one."""
    last = messages[-1] if messages else None
    if not isinstance(last, dict) or last.get("role") != "assistant":
        return None
    blocks = _blocks(last.get("content"))
    if any(b.get("type") != "text" for b in blocks):
        return None
    return text_of(blocks) or None
