"""`POST /v1/chat/completions` (protocols.md A): the request reader and the answer writer, with
tool calls and reasoning (`reasoning_content`, the DeepSeek/vLLM convention)."""

from __future__ import annotations

from typing import Any

from router.fake_upstream.answers import Answer, Prompt, text_of
from router.fake_upstream.formats import Stream, StreamBuilder, cap, data, dumps, first_tool, openai_error_body


class ChatFormat:
    """Data-only SSE ending with `data: [DONE]`."""

    request_id_header = b"x-request-id"

    def prompt(self, body: dict[str, Any]) -> Prompt:
        messages = body.get("messages")
        if not isinstance(messages, list):
            messages = []
        turns = [m for m in messages if isinstance(m, dict)]
        results: list[str] = []
        for m in reversed(turns):  # the trailing `tool` messages answer the last tool calls
            if m.get("role") != "tool":
                break
            results.append(text_of(m.get("content")))
        user = next((m for m in reversed(turns) if m.get("role") == "user"), None)
        effort = body.get("reasoning_effort")
        options = body.get("stream_options")
        return Prompt(
            user_text=text_of(user.get("content")) if user is not None else "",
            tool=first_tool(body.get("tools"), ("function",)),
            tool_results=tuple(reversed(results)) if results else None,
            reasoning=isinstance(effort, str) and effort != "none",
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
            prefill=_prefill(turns),
            max_output=cap(body, "max_completion_tokens") or cap(body, "max_tokens"),
        )

    def prefill_problem(self, prefill: str) -> str | None:
        return None

    def error_body(self, status: int, message: str, rid: str) -> bytes:
        return openai_error_body(status, message)  # the id travels in x-request-id

    def error_event(self, message: str) -> bytes:
        return data({"error": {"message": message, "type": "server_error", "param": None, "code": None}})

    @staticmethod
    def _usage(a: Answer) -> dict[str, Any]:
        return {
            "prompt_tokens": a.prompt_tokens,
            "completion_tokens": a.completion_tokens,
            "total_tokens": a.prompt_tokens + a.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": a.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": a.reasoning_tokens},
        }

    @staticmethod
    def _call_id(a: Answer, index: int) -> str:
        return f"call_{a.rid}_{index}"

    def complete(self, a: Answer) -> bytes:
        message: dict[str, Any] = {"role": "assistant", "content": a.text, "refusal": None}
        if a.reasoning is not None:
            message["reasoning_content"] = a.reasoning
        if a.calls:
            message["tool_calls"] = [
                {
                    "id": self._call_id(a, c.index),
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in a.calls
            ]
        choice = {
            "index": 0,
            "message": message,
            "finish_reason": "tool_calls" if a.calls else "stop",
            "logprobs": None,
        }
        return dumps(
            {
                "id": "chatcmpl-" + a.rid,
                "object": "chat.completion",
                "created": a.created,
                "model": a.model,
                "choices": [choice],
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
            return data({**base, "choices": [choice], **no_usage})

        out = StreamBuilder()
        out.event(chunk({"role": "assistant", "content": ""}))  # the role comes once, first (F.7)
        for piece in a.reasoning_pieces:
            out.delta(chunk({"reasoning_content": piece}))
        for piece in a.pieces:
            out.delta(chunk({"content": piece}))
        for c in a.calls:
            # id, type and name only in the call's first fragment; later ones carry index + arguments
            head = {"index": c.index, "id": self._call_id(a, c.index), "type": "function"}
            out.event(chunk({"tool_calls": [{**head, "function": {"name": c.name, "arguments": ""}}]}))
            for piece in c.pieces:
                out.delta(chunk({"tool_calls": [{"index": c.index, "function": {"arguments": piece}}]}))
        out.event(chunk({}, "tool_calls" if a.calls else "stop"))
        if a.include_usage:
            out.event(data({**base, "choices": [], "usage": self._usage(a)}))
        if not a.no_done:
            out.event(b"data: [DONE]\n\n")
        return out.build()


def _prefill(turns: list[dict[str, Any]]) -> str | None:
    """The text of a trailing assistant message without tool calls (a prefill), if there is one."""
    if not turns or turns[-1].get("role") != "assistant" or turns[-1].get("tool_calls"):
        return None
    return text_of(turns[-1].get("content")) or None
