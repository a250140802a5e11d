"""Reading anthropic-messages requests (/v1/messages bodies) into the IR, with precise
BadRequest errors for shapes that cannot be read or carried. Part of messages.py, which
re-exports `read_request`; apart only to keep each module a readable size."""

from __future__ import annotations

from typing import Any, cast

import orjson
import structlog

from router.config import Format
from router.errors import BadRequest
from router.formats.codec import ir, reasoning
from router.formats.codec.fields import (
    array,
    fail,
    kind,
    need_obj,
    need_str,
    obj,
    one_of,
    opt_bool,
    opt_int,
    opt_number,
    opt_obj,
    opt_str,
    show,
    strings,
)

FMT: Format = "anthropic-messages"
log = structlog.get_logger("router.formats.codec")

_KNOWN = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "metadata",
        "cache_control",
    }
)
_TOOL_KEYS = frozenset({"type", "name", "description", "input_schema", "strict", "cache_control"})
_ADAPTIVE_EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})
_THINKING_TYPES = frozenset({"enabled", "adaptive", "between_tools", "disabled"})
_CHOICE_TYPES = frozenset({"auto", "any", "tool", "none"})
# Blocks produced by server tools (they ran at Anthropic): no other format can replay them.
_SERVER_BLOCKS = frozenset({"server_tool_use", "container_upload"})


# ---------------------------------------------------------------- small readers


def _is_server_block(kind: str | None) -> bool:
    return kind is not None and (kind in _SERVER_BLOCKS or (kind.endswith("_tool_result") and kind != "tool_result"))


def split_data_url(url: str) -> tuple[str, str] | None:
    """(media_type, base64 data) of a base64 `data:` URL; None for anything else."""
    if not url.startswith("data:"):
        return None
    head, comma, data = url[5:].partition(",")
    params = head.split(";")
    if not comma or "base64" not in params[1:]:
        return None
    return params[0] or "image/png", data


def _json_text(v: dict[str, Any], param: str) -> str:
    try:
        return orjson.dumps(v).decode()
    except (orjson.JSONEncodeError, TypeError) as exc:  # e.g. an integer beyond 64 bits
        fail(f"{param} cannot be encoded as JSON: {exc}", param)


# ---------------------------------------------------------------- read_request


def read_request(body: dict[str, Any]) -> ir.Request:
    """A /v1/messages request body -> IR. BadRequest for shapes that cannot be read or carried."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    dropped = [k for k in body if k not in _KNOWN]
    model = need_str(body, "model")
    if not model:
        fail("model must be a non-empty string", "model")
    system = _read_system(body.get("system"), "system")
    messages = _read_messages(body.get("messages"), system, dropped)
    tools = _read_tools(body.get("tools"), dropped)
    tool_choice, parallel = _read_tool_choice(body.get("tool_choice"))
    metadata = opt_obj(body, "metadata") or {}
    user = opt_str(metadata, "user_id", "metadata")
    dropped.extend(f"metadata.{k}" for k in metadata if k != "user_id")
    stop = body.get("stop_sequences")
    req = ir.Request(
        model=model,
        messages=messages,
        system=system,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        max_tokens=opt_int(body, "max_tokens"),
        temperature=opt_number(body, "temperature"),
        top_p=opt_number(body, "top_p"),
        top_k=opt_int(body, "top_k"),
        stop=list(strings(stop, "stop_sequences")) if stop is not None else [],
        stream=bool(opt_bool(body, "stream")),
        reasoning=_read_reasoning(body.get("thinking"), body.get("output_config"), dropped),
        user=user,
    )
    if dropped:
        log.debug("fields_dropped", fmt=FMT, fields=sorted(set(dropped)))
    return req


def _read_system(v: Any, param: str) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v] if v else []
    if not isinstance(v, list):
        fail(f"{param} must be a string or a list of text blocks", param)
    texts = []
    for i, block in enumerate(v):
        p = f"{param}[{i}]"
        block = obj(block, p)
        if kind(block, p) != "text":
            fail(f"{p} must be a text block, not {show(block.get('type'))}", f"{p}.type")
        texts.append(need_str(block, "text", p))
    return texts


def _read_messages(v: Any, system: list[str], dropped: list[str]) -> list[ir.Message]:
    out: list[ir.Message] = []
    for i, m in enumerate(array(v, "messages")):
        param = f"messages[{i}]"
        m = obj(m, param)
        role, content = m.get("role"), m.get("content")
        if role == "system":  # SDK 2.14 allows it; no other format has a mid-conversation system turn
            system.extend(_read_system(content, f"{param}.content"))
        elif role == "user" or role == "assistant":
            out.append(ir.Message(role=role, parts=_read_content(content, role, f"{param}.content", dropped)))
        else:
            fail(f"{param}.role must be 'user' or 'assistant', not {show(role)}", f"{param}.role")
    return out


def _read_content(v: Any, role: str, param: str, dropped: list[str]) -> list[ir.Part]:
    if isinstance(v, str):
        return [ir.Text(v)]
    if not isinstance(v, list):
        fail(f"{param} must be a string or a list of content blocks", param)
    parts: list[ir.Part] = []
    for j, block in enumerate(v):
        p = f"{param}[{j}]"
        block = obj(block, p)
        btype = kind(block, p)
        if btype == "text":
            parts.append(ir.Text(need_str(block, "text", p)))
            if block.get("citations"):
                dropped.append("citations")
            continue
        if _is_server_block(btype):
            dropped.append(f"content.{btype}")
            continue
        user_kind = btype in ("image", "tool_result")
        if btype not in ("image", "tool_result", "tool_use", "thinking", "redacted_thinking"):
            fail(f"content block type {show(btype)} cannot be translated for this model", f"{p}.type")
        if user_kind != (role == "user"):
            fail(f"{btype} blocks belong in {'user' if user_kind else 'assistant'} messages", f"{p}.type")
        if btype == "image":
            parts.append(_read_image(block, p))
        elif btype == "tool_result":
            parts.append(_read_tool_result(block, p))
        elif btype == "tool_use":
            call_id, name = need_str(block, "id", p), need_str(block, "name", p)
            parts.append(ir.ToolCall(call_id, name, _json_text(opt_obj(block, "input", p) or {}, f"{p}.input")))
        elif btype == "thinking":
            sig = opt_str(block, "signature", p)
            text = opt_str(block, "thinking", p) or ""
            parts.append(ir.Thinking(text=text, signature=sig or None, origin=FMT))
        else:
            parts.append(ir.Thinking(redacted=need_str(block, "data", p), origin=FMT))
    return parts


def _read_image(block: dict[str, Any], param: str) -> ir.Image:
    src = need_obj(block, "source", param)
    q = f"{param}.source"
    stype = kind(src, q)
    if stype == "base64":
        return ir.Image(data=need_str(src, "data", q), media_type=need_str(src, "media_type", q))
    if stype == "url":
        url = need_str(src, "url", q)
        split = split_data_url(url)
        return ir.Image(url=url) if split is None else ir.Image(data=split[1], media_type=split[0])
    fail(f"image source type {show(stype)} cannot be translated for this model", f"{q}.type")


def _read_tool_result(block: dict[str, Any], param: str) -> ir.ToolResult:
    call_id = need_str(block, "tool_use_id", param)
    c = block.get("content")
    content: list[ir.Text | ir.Image] = []
    if isinstance(c, str):
        content.append(ir.Text(c))
    elif isinstance(c, list):
        for k, item in enumerate(c):
            p = f"{param}.content[{k}]"
            item = obj(item, p)
            itype = kind(item, p)
            if itype == "text":
                content.append(ir.Text(need_str(item, "text", p)))
            elif itype == "image":
                content.append(_read_image(item, p))
            else:
                fail(f"tool_result content type {show(itype)} cannot be translated", f"{p}.type")
    elif c is not None:
        fail(f"{param}.content must be a string or a list of blocks", f"{param}.content")
    return ir.ToolResult(call_id=call_id, content=content, is_error=bool(opt_bool(block, "is_error", param)))


def _read_tools(v: Any, dropped: list[str]) -> list[ir.Tool]:
    if v is None:
        return []
    tools = []
    for i, t in enumerate(array(v, "tools")):
        p = f"tools[{i}]"
        t = obj(t, p)
        ttype = kind(t, p)
        if ttype is not None and ttype != "custom":  # a server tool: Anthropic runs it, no other format can
            dropped.append(f"tools.{ttype}")
            continue
        dropped.extend(f"tools.{k}" for k in t if k not in _TOOL_KEYS)
        tools.append(
            ir.Tool(
                name=need_str(t, "name", p),
                description=opt_str(t, "description", p),
                parameters=need_obj(t, "input_schema", p),
                strict=opt_bool(t, "strict", p),
            )
        )
    return tools


def _read_tool_choice(v: Any) -> tuple[ir.ToolChoice | None, bool | None]:
    if v is None:
        return None, None
    v = obj(v, "tool_choice")
    # Only the non-default value says something: parallel calls are allowed unless disabled.
    parallel = False if opt_bool(v, "disable_parallel_tool_use", "tool_choice") else None
    ctype = one_of(v.get("type"), _CHOICE_TYPES, "tool_choice.type")
    if ctype == "auto":
        return ir.ToolChoice("auto"), parallel
    if ctype == "any":
        return ir.ToolChoice("required"), parallel
    if ctype == "none":
        return ir.ToolChoice("none"), None
    return ir.ToolChoice("tool", need_str(v, "name", "tool_choice")), parallel


def _read_reasoning(thinking: Any, output_config: Any, dropped: list[str]) -> ir.Reasoning | None:
    effort: ir.Effort | None = None
    if output_config is not None:
        oc = obj(output_config, "output_config")
        dropped.extend(f"output_config.{k}" for k in oc if k != "effort")  # format: no IR counterpart yet
        e = oc.get("effort")
        if e is not None:
            effort = cast(ir.Effort, one_of(e, _ADAPTIVE_EFFORTS, "output_config.effort"))
    if thinking is None:
        # Effort alone is the newer depth control (thinking left to the model's default).
        return None if effort is None else ir.Reasoning(effort=effort)
    th = obj(thinking, "thinking")
    dropped.extend(f"thinking.{k}" for k in th if k not in ("type", "budget_tokens"))
    ttype = one_of(th.get("type"), _THINKING_TYPES, "thinking.type")
    if ttype == "enabled":
        budget = opt_int(th, "budget_tokens", "thinking")
        if budget is None:
            fail("thinking.budget_tokens is required with thinking enabled", "thinking.budget_tokens")
        # An explicit output_config.effort is the more direct statement of effort.
        return ir.Reasoning(budget_tokens=budget, effort=effort or reasoning.effort_for(budget))
    if ttype == "disabled":
        return ir.Reasoning(enabled=False)
    # adaptive, between_tools (thinking on, the model picks when)
    return ir.Reasoning(effort=effort or reasoning.ADAPTIVE_DEFAULT)
