"""openai-chat: writing requests, and reading and writing answers and errors; `read_request`
(validation, the tool-message merge) lives in chat_read.py and is re-exported here. Streams are in
chat_stream.py.

Answers: only choices[0] is read (n>1 unsupported). `message.refusal` is read as a Text part after
the content: it is the model's own words and the client should see them; the stop reason still
follows finish_reason (an OpenAI refusal ends with "stop", unlike Anthropic's classifier `refusal`,
which is written back as content_filter). Reasoning (`reasoning_content`, or `reasoning`) is a
Thinking part; it goes back to an upstream only when a chat upstream produced it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from router.formats.codec import ir
from router.formats.codec.chat_read import FMT, read_request
from router.formats.codec.fields import count, sub, usage_in
from router.formats.codec.reasoning import effort_for
from router.types import Usage

__all__ = ["FMT", "read_answer", "read_error", "read_request", "read_usage", "write_answer", "write_request"]

# OpenAI rejects more than 4 stop sequences; Anthropic clients may send more.
MAX_STOP = 4
# An error page that is not JSON (an HTML 502 from a proxy) is cut to this many characters.
_MAX_ERROR_TEXT = 1000

FINISH_TO_STOP: dict[str, ir.Stop] = {
    "stop": "end",  # chat cannot tell a stop sequence from a natural end
    "length": "length",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filter",
}
STOP_TO_FINISH: dict[ir.Stop, str] = {
    "end": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "content_filter",  # Anthropic's refusal is a classifier stop (protocols.md D.4)
    "pause": "length",  # the turn is unfinished; LiteLLM's choice
}


# ---------------------------------------------------------------- requests


def _write_user(m: ir.Message) -> list[dict[str, Any]]:
    """Tool results become `tool` messages, first; images they held (tool messages are text-only)
    and the rest of the turn follow as one user message."""
    out: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for part in m.parts:
        if isinstance(part, ir.ToolResult):
            text = "\n".join(c.text for c in part.content if isinstance(c, ir.Text))
            if part.is_error:  # chat has no error flag: say it in the text the model reads
                text = f"Error: {text}"
            out.append({"role": "tool", "tool_call_id": part.call_id, "content": text})
            moved.extend(_image_part(c) for c in part.content if isinstance(c, ir.Image))
        elif isinstance(part, ir.Text):
            rest.append({"type": "text", "text": part.text})
        elif isinstance(part, ir.Image):
            rest.append(_image_part(part))
    rest = moved + rest
    if len(rest) == 1 and rest[0]["type"] == "text":
        out.append({"role": "user", "content": rest[0]["text"]})
    elif rest:
        out.append({"role": "user", "content": rest})
    return out


def _image_part(img: ir.Image) -> dict[str, Any]:
    url = img.url if img.url is not None else f"data:{img.media_type or 'image/png'};base64,{img.data or ''}"
    spec: dict[str, Any] = {"url": url}
    if img.detail is not None:
        spec["detail"] = img.detail
    return {"type": "image_url", "image_url": spec}


def _call_json(c: ir.ToolCall) -> dict[str, Any]:
    return {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}


def _write_assistant(m: ir.Message) -> list[dict[str, Any]]:
    # Texts are joined with nothing, as a chat stream would have delivered them. Thinking goes back
    # only to a chat upstream that produced it (reasoning_content); others cannot take it.
    text = "".join(p.text for p in m.parts if isinstance(p, ir.Text))
    calls = [_call_json(p) for p in m.parts if isinstance(p, ir.ToolCall)]
    thinking = "".join(p.text for p in m.parts if isinstance(p, ir.Thinking) and p.origin == FMT)
    if not (text or calls or thinking):
        return []  # nothing chat can carry (e.g. only another provider's signed thinking)
    msg: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        msg["tool_calls"] = calls
    if thinking:
        msg["reasoning_content"] = thinking
    return [msg]


# IR / other formats' names of droppable fields -> the chat field they become.
_PARAM_ALIASES = {"max_tokens": "max_completion_tokens", "max_output_tokens": "max_completion_tokens"}


def write_request(req: ir.Request, model: str, opts: ir.RequestOptions) -> dict[str, Any]:
    """IR -> a chat completions body for `model`."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": s} for s in req.system]
    for m in req.messages:
        messages.extend(_write_user(m) if m.role == "user" else _write_assistant(m))
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": req.stream}
    if req.stream:
        body["stream_options"] = {"include_usage": True}  # the router bills from the usage chunk
    if req.tools:
        # OpenAI rejects tool_choice and parallel_tool_calls when no tools are given.
        body["tools"] = [_tool_json(t) for t in req.tools]
        if req.tool_choice is not None:
            tc = req.tool_choice
            body["tool_choice"] = {"type": "function", "function": {"name": tc.name}} if tc.mode == "tool" else tc.mode
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
    optional = {
        "max_completion_tokens": req.max_tokens,  # max_tokens is deprecated and refused by o-series
        "temperature": req.temperature,
        "top_p": req.top_p,
        "stop": req.stop[:MAX_STOP] or None,
        "user": req.user,
    }
    body.update((k, v) for k, v in optional.items() if v is not None)
    r = req.reasoning
    if r is not None:
        if not r.enabled:
            body["reasoning_effort"] = "none"
        elif r.effort is not None:
            body["reasoning_effort"] = r.effort
        elif r.budget_tokens is not None:
            body["reasoning_effort"] = effort_for(r.budget_tokens)
    for name in opts.drop_params - {"model", "messages"}:
        body.pop(name, None)
        body.pop(_PARAM_ALIASES.get(name, name), None)
    return body


def _tool_json(t: ir.Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name}
    if t.description is not None:
        fn["description"] = t.description
    if t.parameters is not None:
        fn["parameters"] = t.parameters
    if t.strict is not None:
        fn["strict"] = t.strict
    return {"type": "function", "function": fn}


# ---------------------------------------------------------------- answers


def read_answer(body: dict[str, Any]) -> ir.Answer:
    """A chat completion -> IR, choices[0] only. Never raises: missing pieces read as empty."""
    body = body if isinstance(body, dict) else {}
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    msg = choice.get("message")
    msg = msg if isinstance(msg, dict) else {}
    parts: list[ir.Text | ir.Thinking | ir.ToolCall] = []
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append(ir.Thinking(text=reasoning, origin=FMT))
    parts.extend(ir.Text(msg[k]) for k in ("content", "refusal") if isinstance(msg.get(k), str) and msg[k])
    calls = msg.get("tool_calls")
    for j, call in enumerate(calls if isinstance(calls, list) else []):
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and call.get("type", "function") == "function":
            args = fn.get("arguments")
            args = args if isinstance(args, str) else "{}"
            parts.append(ir.ToolCall(str(call.get("id") or f"call_{j}"), str(fn.get("name") or ""), args))
    ident, created = body.get("id"), body.get("created")
    return ir.Answer(
        id=ident if isinstance(ident, str) and ident else new_id(),
        model=str(body.get("model") or ""),
        parts=parts,
        stop=FINISH_TO_STOP.get(str(choice.get("finish_reason")), "end"),
        usage=usage_in(body, read_usage),
        created=created if type(created) is int else None,
    )


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage_json(u: Usage) -> dict[str, Any]:
    """IR usage -> CompletionUsage: prompt_tokens INCLUDES cache reads and writes."""
    prompt = u.input_tokens + u.cached_tokens + u.cache_write_tokens
    details: dict[str, int] = {"cached_tokens": u.cached_tokens}
    if u.cache_write_tokens:
        details["cache_write_tokens"] = u.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": details,
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def write_answer(ans: ir.Answer, model: str) -> dict[str, Any]:
    """IR -> a chat completion (one choice) as the openai SDK's ChatCompletion expects it."""
    text = "".join(p.text for p in ans.parts if isinstance(p, ir.Text))
    calls = [_call_json(p) for p in ans.parts if isinstance(p, ir.ToolCall)]
    thinking = "".join(p.text for p in ans.parts if isinstance(p, ir.Thinking))
    msg: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
    if calls:
        msg["tool_calls"] = calls
    if thinking:
        msg["reasoning_content"] = thinking
    out: dict[str, Any] = {
        "id": ans.id,
        "object": "chat.completion",
        "created": ans.created if ans.created is not None else int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": STOP_TO_FINISH[ans.stop]}],
    }
    if ans.usage is not None:
        out["usage"] = usage_json(ans.usage)
    return out


# ---------------------------------------------------------------- errors

# An OpenAI-compatible error's code or type (or an HTTP status some servers put in `code`) -> the
# IR's Anthropic-style kind. The code is looked up first: it is the more specific of the two
# (type invalid_request_error with code model_not_found is a not-found).
_KIND_NAMES: dict[str, tuple[str, ...]] = {
    "invalid_request_error": (
        "invalid_request_error",
        "invalid_request",
        "bad_request",
        "context_length_exceeded",
        "400",
    ),
    "authentication_error": ("authentication_error", "invalid_api_key", "unauthorized", "401"),
    "permission_error": ("permission_error", "permission_denied", "insufficient_permissions", "403"),
    "not_found_error": ("not_found_error", "not_found", "model_not_found", "404"),
    "rate_limit_error": (
        "rate_limit_error",
        "rate_limit_exceeded",
        "insufficient_quota",
        "requests",
        "tokens",
        "resource_exhausted",
        "429",
    ),
    "api_error": ("server_error", "api_error", "internal_error", "internal_server_error", "500"),
    "overloaded_error": ("overloaded_error", "overloaded", "service_unavailable", "unavailable", "503", "529"),
}
_KINDS: dict[str, str] = {name: kind for kind, names in _KIND_NAMES.items() for name in names}
# The reverse, for errors written to chat clients (OpenAI has no not-found or overloaded type).
_OPENAI_TYPES = {
    "api_error": "server_error",
    "overloaded_error": "server_error",
    "not_found_error": "invalid_request_error",
}


def error_from_json(obj: dict[str, Any]) -> ir.Error:
    """`{"error": {...}}` (or a bare error object, or `{"error": "text"}`) -> ir.Error."""
    err = obj.get("error", obj)
    if isinstance(err, str):
        return ir.Error(err or "upstream error")
    if not isinstance(err, dict):
        return ir.Error("upstream error")
    message, etype, code = err.get("message"), err.get("type"), err.get("code")
    code_s = str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None
    kind = _KINDS.get((code_s or "").lower()) or _KINDS.get(str(etype).lower(), "api_error")
    return ir.Error(message if isinstance(message, str) and message else "upstream error", kind, code_s)


def error_json(ev: ir.Error) -> dict[str, Any]:
    """ir.Error -> the chat error object (inside `{"error": ...}`)."""
    return {"message": ev.message, "type": _OPENAI_TYPES.get(ev.kind, ev.kind), "param": None, "code": ev.code}


def read_error(body: bytes) -> ir.Error:
    """An upstream non-2xx body (maybe not JSON) -> ir.Error. Never raises."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        return error_from_json(obj)
    text = body.decode("utf-8", "replace").strip()[:_MAX_ERROR_TEXT]
    return ir.Error(text or "upstream error")


def read_usage(u: dict[str, Any]) -> Usage | None:
    # prompt_tokens INCLUDES cache reads (and writes); completion_tokens includes reasoning.
    prompt, completion = count(u.get("prompt_tokens")), count(u.get("completion_tokens"))
    if prompt is None and completion is None:
        return None
    details = sub(u, "prompt_tokens_details")
    cached = count(details.get("cached_tokens")) or 0
    write = count(details.get("cache_write_tokens")) or 0
    reasoning = count(sub(u, "completion_tokens_details").get("reasoning_tokens")) or 0
    return Usage(max(0, (prompt or 0) - cached - write), cached, write, completion or 0, reasoning)
