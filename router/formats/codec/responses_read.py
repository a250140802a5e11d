"""Reading an openai-responses request (/v1/responses body) into the IR: the top-level fields and
the input items, every field type-checked (a BadRequest names its path). responses.py re-exports
`read_request` with the rest of the format; what is carried, dropped and refused is listed there.

Consecutive input items of one IR role merge into one message: an assistant turn is its text,
reasoning and function_call items; function_call_output items (and a user message right after
them) form one user message, Anthropic's shape.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import structlog

from router.formats.codec import carry, ir
from router.formats.codec.fields import (
    fail,
    kind,
    need_str,
    obj,
    one_of,
    opt_bool,
    opt_int,
    opt_list,
    opt_number,
    opt_obj,
    opt_str,
    show,
)
from router.formats.codec.responses_items import FMT, read_reasoning

log = structlog.get_logger("router.formats.codec")

_SERVER_STATE = ("previous_response_id", "conversation", "prompt")
# Request fields read into the IR; everything else is dropped (and logged).
_READ = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "temperature",
        "top_p",
        "stream",
        "reasoning",
        "user",
        "safety_identifier",
    }
)
_EFFORTS: frozenset[str] = frozenset({"none", "minimal", "low", "medium", "high", "xhigh", "max"})
_SUMMARIES = frozenset({"auto", "concise", "detailed"})
_CHOICES = frozenset({"none", "auto", "required"})
_ALLOWED_MODES = frozenset({"auto", "required"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_MESSAGE_ROLES = frozenset({"user", "assistant", "system", "developer"})
# Input items other than message, function_call, function_call_output and reasoning carry a
# hosted or non-function tool's call or result (web_search_call, local_shell_call,
# custom_tool_call, ...). Those tools are dropped from the request (only function tools
# translate), so the items that echo them are dropped too, and logged. `item_reference` is the
# one refusal: it names server-side state a translated upstream cannot look up.
_REFERENCE = "item_reference"


def read_request(body: dict[str, Any]) -> ir.Request:
    body = obj(body, "body")
    for name in _SERVER_STATE:
        if body.get(name) is not None:
            fail(
                f"{name} refers to state stored at OpenAI; this model is served by a provider that does "
                "not speak the Responses API, so send the whole conversation in `input` instead",
                name,
            )
    dropped = [k for k in body if k not in _READ]
    req = ir.Request(model=need_str(body, "model"), messages=[])
    instructions = opt_str(body, "instructions")
    if instructions is not None:
        req.system.append(instructions)
    reader = InputReader(dropped)
    inp = body.get("input")
    if isinstance(inp, str):
        req.messages.append(ir.Message("user", [ir.Text(inp)]))
    elif isinstance(inp, list):
        reader.read(inp)
    else:
        fail("input must be a string or a list of items", "input")
    req.system.extend(reader.system)
    req.messages.extend(reader.messages)
    req.tools = _read_tools(opt_list(body, "tools"), dropped)
    req.tool_choice = _read_tool_choice(body.get("tool_choice"), dropped)
    req.parallel_tool_calls = opt_bool(body, "parallel_tool_calls")
    req.max_tokens = opt_int(body, "max_output_tokens")
    req.temperature = opt_number(body, "temperature")
    req.top_p = opt_number(body, "top_p")
    req.stream = bool(opt_bool(body, "stream"))
    req.reasoning = _read_reasoning(opt_obj(body, "reasoning"))
    # safety_identifier replaces the deprecated `user`; either names the end user.
    req.user = opt_str(body, "safety_identifier") or opt_str(body, "user")
    if dropped:
        log.debug("fields_dropped", fmt=FMT, fields=list(dict.fromkeys(dropped)))
    return req


def _read_tools(tools: list[Any] | None, dropped: list[str]) -> list[ir.Tool]:
    out: list[ir.Tool] = []
    for i, t in enumerate(tools or ()):
        p = f"tools[{i}]"
        t = obj(t, p)
        ttype = kind(t, p)
        if ttype != "function":
            # TODO: Codex nests its MCP tools in a `namespace` tool; flattening them
            # needs the namespace carried back on the call (function_call.namespace).
            dropped.append(f"tools.{ttype}")
            continue
        out.append(
            ir.Tool(
                name=need_str(t, "name", p),
                description=opt_str(t, "description", p),
                parameters=opt_obj(t, "parameters", p),
                strict=opt_bool(t, "strict", p),
            )
        )
    return out


def _read_tool_choice(choice: Any, dropped: list[str]) -> ir.ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        return ir.ToolChoice(cast(ir.ToolMode, one_of(choice, _CHOICES, "tool_choice")))
    choice = obj(choice, "tool_choice")
    ctype = kind(choice, "tool_choice")
    if ctype == "function":
        return ir.ToolChoice("tool", need_str(choice, "name", "tool_choice"))
    if ctype == "allowed_tools":
        mode = one_of(choice.get("mode"), _ALLOWED_MODES, "tool_choice.mode")
        dropped.append("tool_choice.tools")  # the allow-list has no counterpart; its mode does
        return ir.ToolChoice(cast(ir.ToolMode, mode))
    dropped.append(f"tool_choice.{ctype}")  # a hosted tool's choice: its tool is dropped too
    return None


def _read_reasoning(r: dict[str, Any] | None) -> ir.Reasoning | None:
    if r is None:
        return None
    effort = r.get("effort")
    if effort is not None:
        one_of(effort, _EFFORTS, "reasoning.effort")
    # generate_summary is the older name; a summary value this router does not know is left out.
    summary = opt_str(r, "summary", "reasoning") or opt_str(r, "generate_summary", "reasoning")
    return ir.Reasoning(
        enabled=effort != "none",
        effort=effort,
        summary=summary if summary in _SUMMARIES else None,
    )


# ---------------------------------------------------------------- input items


class InputReader:
    """Walks `input` items into system texts and IR messages (see the module doc)."""

    def __init__(self, dropped: list[str]) -> None:
        self.system: list[str] = []
        self.messages: list[ir.Message] = []
        self._dropped = dropped

    def read(self, items: list[Any]) -> None:
        for i, item in enumerate(items):
            param = f"input[{i}]"
            item = obj(item, param)
            itype = kind(item, param, "message")  # a bare {role, content} is a message
            if itype == "message":
                self._message(item, param)
            elif itype == "function_call":
                call = ir.ToolCall(
                    need_str(item, "call_id", param), need_str(item, "name", param), need_str(item, "arguments", param)
                )
                self._append("assistant", [call])
            elif itype == "function_call_output":
                call_id = need_str(item, "call_id", param)
                self._append("user", [ir.ToolResult(call_id, read_parts(item.get("output"), f"{param}.output", True))])
            elif itype == "reasoning":  # the router's token first: a signed block it carried (carry.py)
                encrypted = opt_str(item, "encrypted_content", param)
                self._append("assistant", [carry.read(encrypted) or _reasoning_item(item, param)])
            elif itype == _REFERENCE:
                fail(
                    f"{param}: item_reference names an item stored at OpenAI and cannot be sent to this model",
                    f"{param}.type",
                )
            else:
                self._dropped.append(f"input.{itype}")

    def _message(self, item: dict[str, Any], param: str) -> None:
        role = one_of(item.get("role"), _MESSAGE_ROLES, f"{param}.role")
        content = item.get("content")
        if role == "system" or role == "developer":
            # Each text part is kept as its own system text, in order (ir.Request.system).
            for part in read_parts(content, f"{param}.content", False):
                assert isinstance(part, ir.Text)  # images=False admits text only
                self.system.append(part.text)
        else:
            self._append(
                cast(Literal["user", "assistant"], role), list(read_parts(content, f"{param}.content", role == "user"))
            )

    def _append(self, role: Literal["user", "assistant"], parts: list[ir.Part]) -> None:
        if not parts:
            return
        if self.messages and self.messages[-1].role == role:
            self.messages[-1].parts.extend(parts)
        else:
            self.messages.append(ir.Message(role, parts))


def _reasoning_item(item: dict[str, Any], param: str) -> ir.Thinking:
    """A reasoning input item, its fields type-checked, read as the output reader reads one."""
    opt_str(item, "id", param)
    for key in ("summary", "content"):
        for j, part in enumerate(opt_list(item, key, param) or ()):
            opt_str(obj(part, f"{param}.{key}[{j}]"), "text", f"{param}.{key}[{j}]")
    return read_reasoning(item)


def read_parts(content: Any, param: str, images: bool) -> list[ir.Text | ir.Image]:
    """Message or tool-output content: a string or a list of parts. Text parts of any flavour
    (input_text, output_text, text) are Text; refusals are Text too (assistant history)."""
    if isinstance(content, str):
        return [ir.Text(content)] if content else []
    if not isinstance(content, list):
        fail(f"{param} must be a string or a list of content parts", param)
    out: list[ir.Text | ir.Image] = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        part = obj(part, where)
        ptype = kind(part, where)
        if ptype in _TEXT_PARTS:
            text = need_str(part, "text", where)
            if text:
                out.append(ir.Text(text))
        elif ptype == "refusal":
            out.append(ir.Text(need_str(part, "refusal", where)))
        elif ptype == "input_image" and images:
            out.append(_read_image(part, where))
        else:
            fail(f"{where}: content part of type {show(ptype)} cannot be carried here", f"{where}.type")
    return out


def _read_image(part: dict[str, Any], param: str) -> ir.Image:
    """An input_image part. A data: URL is split into media type and base64 data; an image by
    `file_id` names a file stored at OpenAI that no other upstream can fetch, so it is refused
    (silently dropping user content would change the question)."""
    url = opt_str(part, "image_url", param)
    detail = opt_str(part, "detail", param)
    if url:
        if not url.startswith("data:"):
            return ir.Image(url=url, detail=detail)
        head, sep, data = url.partition(",")
        if not sep or not head.endswith(";base64"):
            fail(f"{param}.image_url: only base64 data URLs are supported", f"{param}.image_url")
        return ir.Image(data=data, media_type=head[len("data:") : -len(";base64")] or None, detail=detail)
    if part.get("file_id") is not None:
        fail(
            f"{param}: images by file_id are stored at OpenAI and cannot be sent to this model; use image_url",
            f"{param}.file_id",
        )
    fail(f"{param}.image_url must be a string", f"{param}.image_url")
