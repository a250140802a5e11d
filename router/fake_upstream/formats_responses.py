"""`POST /v1/responses` (protocols.md C): the request reader and the answer writer, with a
reasoning item (summary + fake encrypted_content) and function_call items."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from router.fake_upstream.answers import Answer, Prompt, text_of
from router.fake_upstream.formats import Stream, StreamBuilder, cap, dumps, event, first_tool, openai_error_body


class ResponsesFormat:
    """Named SSE events with `sequence_number`, ending with `response.completed`."""

    request_id_header = b"x-request-id"

    def prompt(self, body: dict[str, Any]) -> Prompt:
        given = body.get("input")
        items = [i for i in given if isinstance(i, dict)] if isinstance(given, list) else []
        results: list[str] = []
        for item in reversed(items):  # trailing function_call_output items answer the last calls
            if item.get("type") != "function_call_output":
                break
            results.append(text_of(item.get("output")))
        user = next(
            (i for i in reversed(items) if i.get("role") == "user" and i.get("type", "message") == "message"), None
        )
        reasoning = body.get("reasoning")
        effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
        return Prompt(
            user_text=given if isinstance(given, str) else text_of(user.get("content")) if user is not None else "",
            tool=first_tool(body.get("tools"), ("function",)),
            tool_results=tuple(reversed(results)) if results else None,
            reasoning=isinstance(effort, str) and effort != "none",
            prefill=_prefill(items),
            max_output=cap(body, "max_output_tokens"),
        )

    def prefill_problem(self, prefill: str) -> str | None:
        return None

    def error_body(self, status: int, message: str, rid: str) -> bytes:
        return openai_error_body(status, message)  # the id travels in x-request-id

    def error_event(self, message: str) -> bytes:
        body = {"type": "error", "code": "server_error", "message": message, "param": None, "sequence_number": 0}
        return event(b"error", body)

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
            "input_tokens_details": {"cached_tokens": a.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": a.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": a.reasoning_tokens},
            "total_tokens": a.prompt_tokens + a.completion_tokens,
        }

    @staticmethod
    def _reasoning(a: Answer, summary: list[Any], done: bool) -> dict[str, Any]:
        item: dict[str, Any] = {"type": "reasoning", "id": "rs_" + a.rid, "summary": summary}
        if done:  # the copy in output_item.added may be incomplete; clients take the done one (C.3)
            item["encrypted_content"] = "enc-fake-" + a.rid
        return item

    @staticmethod
    def _message(a: Answer, status: str, content: list[Any]) -> dict[str, Any]:
        return {"type": "message", "id": "msg_" + a.rid, "role": "assistant", "status": status, "content": content}

    @staticmethod
    def _call(a: Answer, index: int, name: str, arguments: str, status: str) -> dict[str, Any]:
        return {
            "type": "function_call",
            "id": f"fc_{a.rid}_{index}",
            "call_id": f"call_{a.rid}_{index}",
            "name": name,
            "arguments": arguments,
            "status": status,
        }

    def _output(self, a: Answer) -> list[dict[str, Any]]:
        output = []
        if a.reasoning is not None:
            output.append(self._reasoning(a, [{"type": "summary_text", "text": a.reasoning}], True))
        part = {"type": "output_text", "text": a.text, "annotations": [], "logprobs": []}
        output.append(self._message(a, "completed", [part]))
        output += [self._call(a, c.index, c.name, c.arguments, "completed") for c in a.calls]
        return output

    def complete(self, a: Answer) -> bytes:
        return dumps(self._response(a, "completed", self._output(a), self._usage(a)))

    def stream(self, a: Answer) -> Stream:
        seq = 0

        def ev(name: str, body: dict[str, Any]) -> bytes:
            nonlocal seq
            out = event(name.encode(), {"type": name, "sequence_number": seq, **body})
            seq += 1
            return out

        out = StreamBuilder()
        in_progress = self._response(a, "in_progress", [], None)
        out.event(ev("response.created", {"response": in_progress}))
        out.event(ev("response.in_progress", {"response": in_progress}))
        done_items: list[dict[str, Any]] = []

        def item(added: dict[str, Any], stream: Callable[[int], None], done: dict[str, Any]) -> None:
            # each item: added, its own events, done, at the next output_index (C.3, F.16)
            index = len(done_items)
            out.event(ev("response.output_item.added", {"output_index": index, "item": added}))
            stream(index)
            out.event(ev("response.output_item.done", {"output_index": index, "item": done}))
            done_items.append(done)

        if a.reasoning is not None:
            summary = {"type": "summary_text", "text": a.reasoning}

            def reasoning(index: int) -> None:
                where = {"item_id": "rs_" + a.rid, "output_index": index, "summary_index": 0}
                out.event(ev("response.reasoning_summary_part.added", {**where, "part": {**summary, "text": ""}}))
                for piece in a.reasoning_pieces:
                    out.delta(ev("response.reasoning_summary_text.delta", {**where, "delta": piece}))
                out.event(ev("response.reasoning_summary_text.done", {**where, "text": a.reasoning}))
                out.event(ev("response.reasoning_summary_part.done", {**where, "part": summary}))

            item(self._reasoning(a, [], False), reasoning, self._reasoning(a, [summary], True))

        part = {"type": "output_text", "text": a.text, "annotations": []}

        def message(index: int) -> None:
            where = {"item_id": "msg_" + a.rid, "output_index": index, "content_index": 0}
            out.event(ev("response.content_part.added", {**where, "part": {**part, "text": ""}}))
            for piece in a.pieces:
                out.delta(ev("response.output_text.delta", {**where, "delta": piece, "logprobs": []}))
            out.event(ev("response.output_text.done", {**where, "text": a.text, "logprobs": []}))
            out.event(ev("response.content_part.done", {**where, "part": part}))

        item(self._message(a, "in_progress", []), message, self._message(a, "completed", [part]))
        for c in a.calls:
            added = self._call(a, c.index, c.name, "", "in_progress")

            def arguments(index: int, item_id: str = added["id"], pieces: tuple[str, ...] = c.pieces) -> None:
                where = {"item_id": item_id, "output_index": index}
                for piece in pieces:
                    out.delta(ev("response.function_call_arguments.delta", {**where, "delta": piece}))
                out.event(ev("response.function_call_arguments.done", {**where, "arguments": "".join(pieces)}))

            item(added, arguments, self._call(a, c.index, c.name, c.arguments, "completed"))
        usage = self._usage(a)
        out.event(ev("response.completed", {"response": self._response(a, "completed", done_items, usage)}))
        return out.build()


def _prefill(items: list[dict[str, Any]]) -> str | None:
    """The text of a trailing assistant message item (a prefill), if there is one."""
    last = items[-1] if items else None
    if last is None or last.get("role") != "assistant" or last.get("type", "message") != "message":
        return None
    return text_of(last.get("content")) or None
