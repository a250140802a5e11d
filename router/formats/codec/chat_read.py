"""Reading an openai-chat request into the IR: the validation and the tool-message merge.
chat.py re-exports `read_request` with the rest of the format (writing, answers, errors).

Fields carried: model, messages (system/developer, user, assistant, tool), tools (function),
tool_choice, parallel_tool_calls, max_completion_tokens / max_tokens, temperature, top_p, stop,
stream, reasoning_effort, safety_identifier / user. `stream_options` is not carried: the endpoint
reads the client's include_usage from the raw body, and write_request always asks for usage.
Dropped, with one debug line per request (no counterpart in the IR): n (n>1 is not supported: the
answer has one choice), logprobs, top_logprobs, response_format, seed, presence_penalty,
frequency_penalty, logit_bias, metadata, store, service_tier, modalities, audio, prediction,
verbosity, web_search_options, prompt_cache_key, prompt_cache_retention, prompt_cache_options,
moderation, functions, function_call and any unknown field; on messages: name, assistant audio and
function_call, non-string reasoning; allowed_tools' tool list (its mode is kept).
Refused with BadRequest (dropping them would change the conversation): content parts other than text
and image_url (input_audio, file), image URLs that are neither http(s) nor base64 data URLs, custom
tools and custom tool calls, the deprecated role `function`.
"""

from __future__ import annotations

from typing import Any, NoReturn, cast, get_args

import orjson
import structlog

from router.config import Format
from router.errors import BadRequest
from router.formats.codec import ir
from router.formats.codec.fields import opt_number

FMT: Format = "openai-chat"
log = structlog.get_logger("router.formats.codec")

_EFFORTS: frozenset[str] = frozenset(get_args(ir.Effort))
# Top-level fields the IR carries; stream_options is consumed by the endpoint (see module doc).
_CARRIED = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_completion_tokens",
        "max_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "stream_options",
        "reasoning_effort",
        "user",
        "safety_identifier",
    }
)
_MSG_CARRIED: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content"}),
    "developer": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "refusal", "reasoning_content", "reasoning"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}


def _fail(message: str, param: str) -> NoReturn:
    raise BadRequest(message, param=param)


class _RequestReader:
    """One request's read: the hoisted system texts, the messages, and what was dropped."""

    def __init__(self) -> None:
        self.dropped: set[str] = set()
        self.system: list[str] = []
        self.messages: list[ir.Message] = []
        # The user message that tool results are being merged into: chat sends one `tool` message
        # per result, the IR (Anthropic's shape) one user turn holding them all, then the user's text.
        self._tool_turn: ir.Message | None = None

    def message(self, m: Any, p: str) -> None:
        if not isinstance(m, dict):
            _fail("each message must be an object", p)
        role = m.get("role")
        if role == "function":
            _fail("role 'function' is deprecated and cannot be translated; use tools", f"{p}.role")
        if not isinstance(role, str) or role not in _MSG_CARRIED:
            _fail(f"unknown message role {role!r}", f"{p}.role")
        self.dropped.update(f"messages.{k}" for k, v in m.items() if k not in _MSG_CARRIED[role] and v is not None)
        content = m.get("content")
        if role in ("system", "developer"):
            self.system.extend(_texts(content, f"{p}.content"))
        elif role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str):
                _fail("tool messages need a string tool_call_id", f"{p}.tool_call_id")
            result = ir.ToolResult(call_id, [ir.Text(t) for t in _texts(content, f"{p}.content")])
            if self._tool_turn is None:
                self._tool_turn = ir.Message("user", [])
                self.messages.append(self._tool_turn)
            self._tool_turn.parts.append(result)
        elif role == "user":
            parts = _user_parts(content, f"{p}.content")
            if self._tool_turn is not None:
                self._tool_turn.parts.extend(parts)
            elif parts:
                self.messages.append(ir.Message("user", parts))
            self._tool_turn = None
        else:
            self._tool_turn = None
            parts = self._assistant_parts(m, p)
            if parts:
                self.messages.append(ir.Message("assistant", parts))

    def _assistant_parts(self, m: dict[str, Any], p: str) -> list[ir.Part]:
        parts: list[ir.Part] = []
        # DeepSeek and vLLM echo reasoning as `reasoning_content`, OpenRouter-style servers as `reasoning`.
        reasoning = m.get("reasoning_content")
        if not isinstance(reasoning, str):
            reasoning = m.get("reasoning")
            if reasoning is not None and not isinstance(reasoning, str):
                self.dropped.add("messages.reasoning")
                reasoning = None
        if reasoning:
            parts.append(ir.Thinking(text=reasoning, origin=FMT))
        content = m.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
                    _fail("assistant content parts must be text or refusal", f"{p}.content[{j}]")
                text = part.get(part["type"])
                if not isinstance(text, str):
                    _fail(f"{part['type']} part needs a string", f"{p}.content[{j}]")
                if text:
                    parts.append(ir.Text(text))
        elif isinstance(content, str):
            if content:
                parts.append(ir.Text(content))
        elif content is not None:
            _fail("assistant content must be a string, a list of parts or null", f"{p}.content")
        refusal = m.get("refusal")
        if isinstance(refusal, str) and refusal:
            parts.append(ir.Text(refusal))
        calls = m.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            _fail("tool_calls must be a list", f"{p}.tool_calls")
        for j, call in enumerate(calls or []):
            parts.append(_tool_call(call, f"{p}.tool_calls[{j}]"))
        return parts


def _texts(content: Any, p: str) -> list[str]:
    """system/developer/tool content: a string or text parts (one text per part, no separator invented)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        _fail("content must be a string or a list of text parts", p)
    out: list[str] = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            _fail("only text parts are allowed here", f"{p}[{j}]")
        out.append(part["text"])
    return out


def _user_parts(content: Any, p: str) -> list[ir.Part]:
    if isinstance(content, str):
        return [ir.Text(content)]
    if not isinstance(content, list):
        _fail("user content must be a string or a list of parts", p)
    parts: list[ir.Part] = []
    for j, part in enumerate(content):
        q = f"{p}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                _fail("text part needs a string text", f"{q}.text")
            parts.append(ir.Text(part["text"]))
        elif kind == "image_url":
            spec = part.get("image_url")
            if isinstance(spec, str):  # a common client slip; the URL is unambiguous
                spec = {"url": spec}
            if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
                _fail("image_url part needs image_url.url", f"{q}.image_url")
            parts.append(_image(spec["url"], spec.get("detail"), f"{q}.image_url.url"))
        elif kind in ("input_audio", "file"):
            _fail(f"content part type {kind!r} cannot be translated for this model", f"{q}.type")
        else:
            _fail(f"unknown content part type {kind!r}", f"{q}.type")
    return parts


def _image(url: str, detail: Any, p: str) -> ir.Image:
    hint = detail if isinstance(detail, str) else None
    if url[:8].lower().startswith(("http://", "https://")):
        return ir.Image(url=url, detail=hint)
    if url[:5].lower() == "data:":
        head, sep, data = url[5:].partition(",")
        if sep and head.lower().endswith(";base64"):
            return ir.Image(data=data, media_type=head.split(";")[0] or None, detail=hint)
    _fail("image_url.url must be an http(s) URL or a base64 data: URL", p)


def _tool_call(call: Any, p: str) -> ir.ToolCall:
    if not isinstance(call, dict):
        _fail("each tool call must be an object", p)
    if call.get("type", "function") != "function":
        _fail(f"tool call type {call.get('type')!r} cannot be translated", f"{p}.type")
    fn = call.get("function")
    if not isinstance(call.get("id"), str) or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        _fail("a tool call needs id and function.name strings", p)
    args = fn.get("arguments")
    if isinstance(args, dict):  # some clients send the object itself
        args = orjson.dumps(args).decode()
    elif not isinstance(args, str):
        args = "{}"
    return ir.ToolCall(call["id"], fn["name"], args)


def _tool(t: Any, p: str) -> ir.Tool:
    if not isinstance(t, dict):
        _fail("each tool must be an object", p)
    if t.get("type") != "function":
        _fail(f"tool type {t.get('type')!r} cannot be translated; only function tools", f"{p}.type")
    fn = t.get("function")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        _fail("a function tool needs function.name", f"{p}.function")
    desc, params, strict = fn.get("description"), fn.get("parameters"), fn.get("strict")
    if desc is not None and not isinstance(desc, str):
        _fail("description must be a string", f"{p}.function.description")
    if params is not None and not isinstance(params, dict):
        _fail("parameters must be a JSON Schema object", f"{p}.function.parameters")
    if strict is not None and not isinstance(strict, bool):
        _fail("strict must be a boolean", f"{p}.function.strict")
    return ir.Tool(fn["name"], desc, params, strict)


def _tool_choice(v: Any, dropped: set[str]) -> ir.ToolChoice | None:
    if v is None:
        return None
    if v in ("none", "auto", "required"):
        return ir.ToolChoice(v)
    if isinstance(v, dict):
        fn = v.get("function")
        if v.get("type") == "function" and isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return ir.ToolChoice("tool", fn["name"])
        allowed = v.get("allowed_tools")
        mode = allowed.get("mode") if isinstance(allowed, dict) else None
        if v.get("type") == "allowed_tools" and mode in ("auto", "required"):
            dropped.add("tool_choice.allowed_tools.tools")  # the IR cannot restrict to a subset
            return ir.ToolChoice(mode)
    _fail("tool_choice must be none, auto, required or {type: function, function: {name}}", "tool_choice")


def _count(body: dict[str, Any], key: str) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if type(v) is not int or v < 0:
        _fail(f"{key} must be a non-negative integer", key)
    return v


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    v = body.get(key)
    if v is not None and not isinstance(v, kind):
        _fail(f"{key} must be a {kind.__name__}", key)
    return v


def read_request(body: dict[str, Any]) -> ir.Request:
    """A chat completions request body -> IR. BadRequest names the offending field."""
    if not isinstance(body, dict):
        _fail("the request body must be a JSON object", "body")
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        _fail("model must be a non-empty string", "model")
    if not isinstance(messages, list):
        _fail("messages must be a list", "messages")
    reader = _RequestReader()
    for i, m in enumerate(messages):
        reader.message(m, f"messages[{i}]")
    tools = _optional(body, "tools", list) or []
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    elif stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        _fail("stop must be a string or a list of strings", "stop")
    reasoning = None
    effort = body.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in _EFFORTS:
            _fail(f"reasoning_effort must be one of {sorted(_EFFORTS)}", "reasoning_effort")
        reasoning = ir.Reasoning(enabled=effort != "none", effort=cast(ir.Effort, effort))
    user = _optional(body, "safety_identifier", str) or _optional(body, "user", str)
    max_tokens = _count(body, "max_completion_tokens")
    req = ir.Request(
        model=model,
        messages=reader.messages,
        system=reader.system,
        tools=[_tool(t, f"tools[{i}]") for i, t in enumerate(tools)],
        tool_choice=_tool_choice(body.get("tool_choice"), reader.dropped),
        parallel_tool_calls=_optional(body, "parallel_tool_calls", bool),
        max_tokens=max_tokens if max_tokens is not None else _count(body, "max_tokens"),
        temperature=opt_number(body, "temperature"),
        top_p=opt_number(body, "top_p"),
        stop=stop or [],
        stream=bool(_optional(body, "stream", bool)),
        reasoning=reasoning,
        user=user,
    )
    dropped = reader.dropped | {k for k, v in body.items() if k not in _CARRIED and v is not None}
    if dropped:
        log.debug("fields_dropped", fmt=FMT, fields=sorted(dropped))
    return req
