"""openai-responses (`POST /v1/responses`) <-> IR: requests, non-stream answers and error bodies.
Used only when the client and the upstream speak different formats (matching formats pass through
untouched, so nothing here limits a Responses client talking to a Responses upstream). Reading
requests is in responses_read.py (re-exported here), the items both ways in responses_items.py.

Read, mapped: instructions and system/developer messages (system), message items (user text and
images, assistant output_text and refusals), function_call / function_call_output / reasoning
items, function tools, tool_choice (none, auto, required, a function; allowed_tools keeps its
mode), parallel_tool_calls, max_output_tokens, temperature, top_p, stream, reasoning {effort,
summary}, safety_identifier / user.

Read, dropped with one debug line (they have no counterpart in another format):
- store, background, include, text (text.format structured output, verbosity), truncation,
  metadata, prompt_cache_key, prompt_cache_retention, service_tier, top_logprobs, max_tool_calls,
  stream_options, context_management, client_metadata, and any other field not listed above.
- tools other than type function (web_search, file_search, local_shell, shell, custom,
  apply_patch, mcp, namespace, ...) and the input items that echo their calls and results.
Refused with BadRequest (silently dropping user content would change the question): images by
file_id, input_file parts, item_reference items, and previous_response_id, conversation and
prompt: server-side state at OpenAI that a translated upstream cannot see (clients that translate
must send the whole history, as Codex does with store: false).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from router.formats.codec import carry, ir
from router.formats.codec import responses_items as items
from router.formats.codec.fields import count, sub, usage_in
from router.formats.codec.reasoning import effort_for
from router.formats.codec.responses_read import read_request
from router.types import Usage

__all__ = ["read_answer", "read_error", "read_request", "read_usage", "write_answer", "write_request"]


def write_request(req: ir.Request, model: str, opts: ir.RequestOptions) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model}
    if req.system:
        body["instructions"] = "\n\n".join(req.system)
    body["input"] = items.write_input(req.messages)
    if req.tools:
        body["tools"] = [_write_tool(t) for t in req.tools]
    if req.tool_choice is not None:
        tc = req.tool_choice
        body["tool_choice"] = {"type": "function", "name": tc.name} if tc.mode == "tool" else tc.mode
    if req.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.max_tokens is not None:
        body["max_output_tokens"] = req.max_tokens
    for key, value in (("temperature", req.temperature), ("top_p", req.top_p)):
        if value is not None and key not in opts.drop_params:
            body[key] = value
    # top_k and stop have no Responses field: they are left out.
    if req.reasoning is not None:
        body["reasoning"] = _write_reasoning(req.reasoning)
        if req.reasoning.enabled:
            # Without the stored copy (store=false below) reasoning only survives a turn as
            # encrypted content; ask for it so the next request can send it back.
            body["include"] = ["reasoning.encrypted_content"]
    if req.user:
        body["user"] = req.user
    # The router keeps no state at OpenAI: nothing may depend on a stored response.
    body["store"] = False
    body["stream"] = req.stream
    return body


def _write_tool(t: ir.Tool) -> dict[str, Any]:
    return {
        "type": "function",
        "name": t.name,
        "description": t.description,
        "parameters": t.parameters if t.parameters is not None else {"type": "object", "properties": {}},
        # Responses treats an omitted strict as true and then rejects the usual non-strict
        # schemas (optional properties, no additionalProperties: false); say false unless asked.
        "strict": bool(t.strict),
    }


def _write_reasoning(r: ir.Reasoning) -> dict[str, Any]:
    if not r.enabled:
        return {"effort": "none"}
    out: dict[str, Any] = {}
    effort = r.effort or (effort_for(r.budget_tokens) if r.budget_tokens is not None else None)
    if effort is not None:
        out["effort"] = effort
    # The client asked for reasoning: ask for its summary so it comes back as thinking text.
    out["summary"] = r.summary or "auto"
    return out


def read_answer(body: dict[str, Any]) -> ir.Answer:
    parts = items.read_output(body.get("output"))
    has_calls = any(isinstance(p, ir.ToolCall) for p in parts)
    created = body.get("created_at")
    return ir.Answer(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        parts=parts,
        stop=items.stop_from(body, has_calls),
        usage=usage_in(body, read_usage),
        created=int(created) if isinstance(created, (int, float)) and not isinstance(created, bool) else None,
    )


def write_answer(ans: ir.Answer, model: str) -> dict[str, Any]:
    rid = items.response_id(ans.id)
    output: list[dict[str, Any]] = []
    texts: list[str] = []  # a run of Text parts: one message item with a part each

    def flush() -> None:
        if texts:
            output.append(items.message_item(items.item_id(rid, "msg", len(output)), list(texts)))
            texts.clear()

    for p in ans.parts:
        if isinstance(p, ir.Text):
            texts.append(p.text)
            continue
        flush()
        if isinstance(p, ir.ToolCall):
            output.append(items.call_item(items.item_id(rid, "fc", len(output)), p))
            continue
        own = p.origin == items.FMT  # encrypted content and the item id are only ours to repeat
        # Another provider's signed block rides in encrypted_content as the router's token.
        encrypted = p.encrypted if own else carry.write(p)
        if p.text or encrypted:
            rs_id = p.id if own and p.id else items.item_id(rid, "rs", len(output))
            output.append(items.reasoning_item(rs_id, p.text, encrypted))
    flush()
    status, incomplete = items.status_for(ans.stop)
    out = items.envelope(rid, model, ans.created if ans.created is not None else int(time.time()), status, output)
    out["incomplete_details"] = incomplete
    out["usage"] = items.usage_out(ans.usage)
    return out


def read_error(body: bytes) -> ir.Error:
    """{"error": {"message", "type", "code"}} -> ir.Error; anything else keeps its text."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return ir.Error(message=text[:500] or "upstream error")
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, str):
        return ir.Error(message=err)
    if not isinstance(err, dict):
        return ir.Error(message="upstream error")
    code = err.get("code")
    message = err.get("message")
    return ir.Error(
        message=message if isinstance(message, str) and message else "upstream error",
        kind=items.error_kind(err.get("type"), code),
        code=code if isinstance(code, str) else None,
    )


def read_usage(u: dict[str, Any]) -> Usage | None:
    # input_tokens INCLUDES cache reads and writes; output_tokens includes reasoning.
    inp, out = count(u.get("input_tokens")), count(u.get("output_tokens"))
    if inp is None and out is None:
        return None
    details = sub(u, "input_tokens_details")
    cached = count(details.get("cached_tokens")) or 0
    write = count(details.get("cache_write_tokens")) or 0
    reasoning = count(sub(u, "output_tokens_details").get("reasoning_tokens")) or 0
    return Usage(max(0, (inp or 0) - cached - write), cached, write, out or 0, reasoning)
