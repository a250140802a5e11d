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

from typing import Any, cast, get_args

import orjson
import structlog

from router.config import Format
from router.formats.codec import ir
from router.formats.codec.fields import (
    array,
    fail,
    kind,
    need_obj,
    need_str,
    obj,
    one_of,
    opt_bool,
    opt_count,
    opt_list,
    opt_number,
    opt_obj,
    opt_str,
    show,
    strings,
)

FMT: Format = "openai-chat"
log = structlog.get_logger("router.formats.codec")

_EFFORTS: frozenset[str] = frozenset(get_args(ir.Effort))
_CHOICES = frozenset({"none", "auto", "required"})
_ALLOWED_MODES = frozenset({"auto", "required"})
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
        m = obj(m, p)
        role = m.get("role")
        if role == "function":
            fail("role 'function' is deprecated and cannot be translated; use tools", f"{p}.role")
        if not isinstance(role, str) or role not in _MSG_CARRIED:
            fail(f"unknown message role {show(role)}", f"{p}.role")
        self.dropped.update(f"messages.{k}" for k, v in m.items() if k not in _MSG_CARRIED[role] and v is not None)
        content = m.get("content")
        if role in ("system", "developer"):
            self.system.extend(_texts(content, f"{p}.content"))
        elif role == "tool":
            call_id = need_str(m, "tool_call_id", p)
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
        # DeepSeek and vLLM echo reasoning as `reasoning_content`, OpenRouter-style servers as
        # `reasoning`; a reasoning that is not a string (a structured one) is dropped.
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
                q = f"{p}.content[{j}]"
                part = obj(part, q)
                ptype = kind(part, q)
                if ptype not in ("text", "refusal"):
                    fail(f"assistant content parts must be text or refusal, not {show(ptype)}", f"{q}.type")
                text = need_str(part, ptype, q)
                if text:
                    parts.append(ir.Text(text))
        elif isinstance(content, str):
            if content:
                parts.append(ir.Text(content))
        elif content is not None:
            fail("assistant content must be a string, a list of parts or null", f"{p}.content")
        refusal = opt_str(m, "refusal", p)
        if refusal:
            parts.append(ir.Text(refusal))
        for j, call in enumerate(opt_list(m, "tool_calls", p) or ()):
            parts.append(_tool_call(call, f"{p}.tool_calls[{j}]"))
        return parts


def _texts(content: Any, p: str) -> list[str]:
    """system/developer/tool content: a string or text parts (one text per part, no separator invented)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        fail(f"{p} must be a string or a list of text parts", p)
    out: list[str] = []
    for j, part in enumerate(content):
        q = f"{p}[{j}]"
        part = obj(part, q)
        if kind(part, q) != "text":
            fail(f"only text parts are allowed here, not {show(part.get('type'))}", f"{q}.type")
        out.append(need_str(part, "text", q))
    return out


def _user_parts(content: Any, p: str) -> list[ir.Part]:
    if isinstance(content, str):
        return [ir.Text(content)]
    if not isinstance(content, list):
        fail(f"{p} must be a string or a list of parts", p)
    parts: list[ir.Part] = []
    for j, part in enumerate(content):
        q = f"{p}[{j}]"
        part = obj(part, q)
        ptype = kind(part, q)
        if ptype == "text":
            parts.append(ir.Text(need_str(part, "text", q)))
        elif ptype == "image_url":
            spec = part.get("image_url")
            if isinstance(spec, str):  # a common client slip; the URL is unambiguous
                parts.append(_image(spec, None, f"{q}.image_url"))
                continue
            spec = obj(spec, f"{q}.image_url")
            url = need_str(spec, "url", f"{q}.image_url")
            parts.append(_image(url, opt_str(spec, "detail", f"{q}.image_url"), f"{q}.image_url.url"))
        elif ptype in ("input_audio", "file"):
            fail(f"content part type {ptype!r} cannot be translated for this model", f"{q}.type")
        else:
            fail(f"unknown content part type {show(ptype)}", f"{q}.type")
    return parts


def _image(url: str, detail: str | None, p: str) -> ir.Image:
    if url[:8].lower().startswith(("http://", "https://")):
        return ir.Image(url=url, detail=detail)
    if url[:5].lower() == "data:":
        head, sep, data = url[5:].partition(",")
        if sep and head.lower().endswith(";base64"):
            return ir.Image(data=data, media_type=head.split(";")[0] or None, detail=detail)
    fail(f"{p} must be an http(s) URL or a base64 data: URL", p)


def _tool_call(call: Any, p: str) -> ir.ToolCall:
    call = obj(call, p)
    ctype = kind(call, p, "function")
    if ctype != "function":
        fail(f"tool call type {show(ctype)} cannot be translated", f"{p}.type")
    call_id = need_str(call, "id", p)
    fn = need_obj(call, "function", p)
    name = need_str(fn, "name", f"{p}.function")
    args = fn.get("arguments")
    if isinstance(args, dict):  # some clients send the object itself
        args = orjson.dumps(args).decode()
    elif args is None:
        args = "{}"
    elif not isinstance(args, str):
        fail(f"{p}.function.arguments must be a JSON string", f"{p}.function.arguments")
    return ir.ToolCall(call_id, name, args)


def _tool(t: Any, p: str) -> ir.Tool:
    t = obj(t, p)
    ttype = kind(t, p)
    if ttype != "function":
        fail(f"tool type {show(ttype)} cannot be translated; only function tools", f"{p}.type")
    fn = need_obj(t, "function", p)
    q = f"{p}.function"
    return ir.Tool(
        need_str(fn, "name", q), opt_str(fn, "description", q), opt_obj(fn, "parameters", q), opt_bool(fn, "strict", q)
    )


def _tool_choice(v: Any, dropped: set[str]) -> ir.ToolChoice | None:
    if v is None:
        return None
    if isinstance(v, str):
        return ir.ToolChoice(cast(ir.ToolMode, one_of(v, _CHOICES, "tool_choice")))
    v = obj(v, "tool_choice")
    ctype = kind(v, "tool_choice")
    if ctype == "function":
        return ir.ToolChoice("tool", need_str(need_obj(v, "function", "tool_choice"), "name", "tool_choice.function"))
    if ctype == "allowed_tools":
        allowed = need_obj(v, "allowed_tools", "tool_choice")
        mode = one_of(allowed.get("mode"), _ALLOWED_MODES, "tool_choice.allowed_tools.mode")
        dropped.add("tool_choice.allowed_tools.tools")  # the IR cannot restrict to a subset
        return ir.ToolChoice(cast(ir.ToolMode, mode))
    fail(f"tool_choice type {show(ctype)} cannot be translated; only function or allowed_tools", "tool_choice.type")


def read_request(body: dict[str, Any]) -> ir.Request:
    """A chat completions request body -> IR. BadRequest names the offending field."""
    body = obj(body, "body")
    model = need_str(body, "model")
    if not model:
        fail("model must be a non-empty string", "model")
    reader = _RequestReader()
    for i, m in enumerate(array(body.get("messages"), "messages")):
        reader.message(m, f"messages[{i}]")
    tools = opt_list(body, "tools") or ()
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else strings(stop, "stop") if stop is not None else []
    reasoning = None
    effort = body.get("reasoning_effort")
    if effort is not None:
        effort = one_of(effort, _EFFORTS, "reasoning_effort")
        reasoning = ir.Reasoning(enabled=effort != "none", effort=cast(ir.Effort, effort))
    user = opt_str(body, "safety_identifier") or opt_str(body, "user")
    max_tokens = opt_count(body, "max_completion_tokens")
    req = ir.Request(
        model=model,
        messages=reader.messages,
        system=reader.system,
        tools=[_tool(t, f"tools[{i}]") for i, t in enumerate(tools)],
        tool_choice=_tool_choice(body.get("tool_choice"), reader.dropped),
        parallel_tool_calls=opt_bool(body, "parallel_tool_calls"),
        max_tokens=max_tokens if max_tokens is not None else opt_count(body, "max_tokens"),
        temperature=opt_number(body, "temperature"),
        top_p=opt_number(body, "top_p"),
        stop=stop,
        stream=bool(opt_bool(body, "stream")),
        reasoning=reasoning,
        user=user,
    )
    dropped = reader.dropped | {k for k, v in body.items() if k not in _CARRIED and v is not None}
    if dropped:
        log.debug("fields_dropped", fmt=FMT, fields=sorted(dropped))
    return req
