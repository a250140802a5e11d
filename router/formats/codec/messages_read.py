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
from router.formats.codec.fields import opt_number

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
# Blocks produced by server tools (they ran at Anthropic): no other format can replay them.
_SERVER_BLOCKS = frozenset({"server_tool_use", "container_upload"})


# ---------------------------------------------------------------- small readers


def _is_server_block(kind: Any) -> bool:
    return kind in _SERVER_BLOCKS or (isinstance(kind, str) and kind.endswith("_tool_result") and kind != "tool_result")


def _bad(message: str, param: str) -> BadRequest:
    return BadRequest(message, param=param)


def _obj(v: Any, param: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _bad(f"{param} must be an object", param)
    return v


def _str(v: Any, param: str) -> str:
    if not isinstance(v, str):
        raise _bad(f"{param} must be a string", param)
    return v


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if type(v) is not int:
        raise _bad(f"{key} must be an integer", key)
    return v


def _json_text(v: Any, param: str) -> str:
    try:
        return orjson.dumps(v).decode()
    except (orjson.JSONEncodeError, TypeError) as exc:  # e.g. an integer beyond 64 bits
        raise _bad(f"{param} cannot be encoded as JSON: {exc}", param) from None


def split_data_url(url: str) -> tuple[str, str] | None:
    """(media_type, base64 data) of a base64 `data:` URL; None for anything else."""
    if not url.startswith("data:"):
        return None
    head, comma, data = url[5:].partition(",")
    params = head.split(";")
    if not comma or "base64" not in params[1:]:
        return None
    return params[0] or "image/png", data


# ---------------------------------------------------------------- read_request


def read_request(body: dict[str, Any]) -> ir.Request:
    """A /v1/messages request body -> IR. BadRequest for shapes that cannot be read or carried."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    dropped = [k for k in body if k not in _KNOWN]
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model must be a non-empty string", "model")
    system = _read_system(body.get("system"), "system")
    messages = _read_messages(body.get("messages"), system, dropped)
    tools = _read_tools(body.get("tools"), dropped)
    tool_choice, parallel = _read_tool_choice(body.get("tool_choice"))
    metadata = _obj(body.get("metadata") or {}, "metadata")
    user = metadata.get("user_id")
    if user is not None:
        _str(user, "metadata.user_id")
    dropped.extend(f"metadata.{k}" for k in metadata if k != "user_id")
    stop = body.get("stop_sequences") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _bad("stop_sequences must be a list of strings", "stop_sequences")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream must be a boolean", "stream")
    req = ir.Request(
        model=model,
        messages=messages,
        system=system,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        max_tokens=_opt_int(body, "max_tokens"),
        temperature=opt_number(body, "temperature"),
        top_p=opt_number(body, "top_p"),
        top_k=_opt_int(body, "top_k"),
        stop=list(stop),
        stream=bool(stream),
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
        raise _bad(f"{param} must be a string or a list of text blocks", param)
    texts = []
    for i, block in enumerate(v):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _bad(f"{param}[{i}] must be a text block", f"{param}[{i}]")
        texts.append(_str(block.get("text"), f"{param}[{i}].text"))
    return texts


def _read_messages(v: Any, system: list[str], dropped: list[str]) -> list[ir.Message]:
    if not isinstance(v, list):
        raise _bad("messages must be a list", "messages")
    out: list[ir.Message] = []
    for i, m in enumerate(v):
        param = f"messages[{i}]"
        m = _obj(m, param)
        role, content = m.get("role"), m.get("content")
        if role == "system":  # SDK 2.14 allows it; no other format has a mid-conversation system turn
            system.extend(_read_system(content, f"{param}.content"))
        elif role in ("user", "assistant"):
            out.append(ir.Message(role=role, parts=_read_content(content, role, f"{param}.content", dropped)))
        else:
            raise _bad(f"{param}.role must be 'user' or 'assistant'", f"{param}.role")
    return out


def _read_content(v: Any, role: str, param: str, dropped: list[str]) -> list[ir.Part]:
    if isinstance(v, str):
        return [ir.Text(v)]
    if not isinstance(v, list):
        raise _bad(f"{param} must be a string or a list of content blocks", param)
    parts: list[ir.Part] = []
    for j, block in enumerate(v):
        p = f"{param}[{j}]"
        block = _obj(block, p)
        kind = block.get("type")
        if kind == "text":
            parts.append(ir.Text(_str(block.get("text"), f"{p}.text")))
            if block.get("citations"):
                dropped.append("citations")
            continue
        if _is_server_block(kind):
            dropped.append(f"content.{kind}")
            continue
        user_kind = kind in ("image", "tool_result")
        if kind not in ("image", "tool_result", "tool_use", "thinking", "redacted_thinking"):
            raise _bad(f"content block type {kind!r} cannot be translated for this model", f"{p}.type")
        if user_kind != (role == "user"):
            raise _bad(f"{kind} blocks belong in {'user' if user_kind else 'assistant'} messages", f"{p}.type")
        if kind == "image":
            parts.append(_read_image(block, p))
        elif kind == "tool_result":
            parts.append(_read_tool_result(block, p))
        elif kind == "tool_use":
            call_id, name = _str(block.get("id"), f"{p}.id"), _str(block.get("name"), f"{p}.name")
            parts.append(ir.ToolCall(call_id, name, _json_text(block.get("input") or {}, f"{p}.input")))
        elif kind == "thinking":
            sig = block.get("signature")
            text = _str(block.get("thinking", ""), f"{p}.thinking")
            parts.append(ir.Thinking(text=text, signature=sig if isinstance(sig, str) and sig else None, origin=FMT))
        else:
            parts.append(ir.Thinking(redacted=_str(block.get("data"), f"{p}.data"), origin=FMT))
    return parts


def _read_image(block: dict[str, Any], param: str) -> ir.Image:
    src = _obj(block.get("source"), f"{param}.source")
    kind = src.get("type")
    if kind == "base64":
        data = _str(src.get("data"), f"{param}.source.data")
        return ir.Image(data=data, media_type=_str(src.get("media_type"), f"{param}.source.media_type"))
    if kind == "url":
        url = _str(src.get("url"), f"{param}.source.url")
        split = split_data_url(url)
        return ir.Image(url=url) if split is None else ir.Image(data=split[1], media_type=split[0])
    raise _bad(f"image source type {kind!r} cannot be translated for this model", f"{param}.source.type")


def _read_tool_result(block: dict[str, Any], param: str) -> ir.ToolResult:
    call_id = _str(block.get("tool_use_id"), f"{param}.tool_use_id")
    c = block.get("content")
    content: list[ir.Text | ir.Image] = []
    if isinstance(c, str):
        content.append(ir.Text(c))
    elif isinstance(c, list):
        for k, item in enumerate(c):
            p = f"{param}.content[{k}]"
            item = _obj(item, p)
            if item.get("type") == "text":
                content.append(ir.Text(_str(item.get("text"), f"{p}.text")))
            elif item.get("type") == "image":
                content.append(_read_image(item, p))
            else:
                raise _bad(f"tool_result content type {item.get('type')!r} cannot be translated", f"{p}.type")
    elif c is not None:
        raise _bad(f"{param}.content must be a string or a list of blocks", f"{param}.content")
    return ir.ToolResult(call_id=call_id, content=content, is_error=block.get("is_error") is True)


def _read_tools(v: Any, dropped: list[str]) -> list[ir.Tool]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise _bad("tools must be a list", "tools")
    tools = []
    for i, t in enumerate(v):
        p = f"tools[{i}]"
        t = _obj(t, p)
        kind = t.get("type")
        if kind not in (None, "custom"):  # a server tool: Anthropic runs it, no other format can
            dropped.append(f"tools.{kind}")
            continue
        desc, strict = t.get("description"), t.get("strict")
        dropped.extend(f"tools.{k}" for k in t if k not in _TOOL_KEYS)
        tools.append(
            ir.Tool(
                name=_str(t.get("name"), f"{p}.name"),
                description=None if desc is None else _str(desc, f"{p}.description"),
                parameters=_obj(t.get("input_schema"), f"{p}.input_schema"),
                strict=strict if isinstance(strict, bool) else None,
            )
        )
    return tools


def _read_tool_choice(v: Any) -> tuple[ir.ToolChoice | None, bool | None]:
    if v is None:
        return None, None
    v = _obj(v, "tool_choice")
    # Only the non-default value says something: parallel calls are allowed unless disabled.
    parallel = False if v.get("disable_parallel_tool_use") is True else None
    kind = v.get("type")
    if kind == "auto":
        return ir.ToolChoice("auto"), parallel
    if kind == "any":
        return ir.ToolChoice("required"), parallel
    if kind == "none":
        return ir.ToolChoice("none"), None
    if kind == "tool":
        return ir.ToolChoice("tool", _str(v.get("name"), "tool_choice.name")), parallel
    raise _bad("tool_choice.type must be one of auto, any, tool, none", "tool_choice.type")


def _read_reasoning(thinking: Any, output_config: Any, dropped: list[str]) -> ir.Reasoning | None:
    effort: ir.Effort | None = None
    if output_config is not None:
        oc = _obj(output_config, "output_config")
        dropped.extend(f"output_config.{k}" for k in oc if k != "effort")  # format: no IR counterpart yet
        e = oc.get("effort")
        if e is not None:
            if e not in _ADAPTIVE_EFFORTS:
                raise _bad("output_config.effort must be one of low, medium, high, xhigh, max", "output_config.effort")
            effort = cast(ir.Effort, e)
    if thinking is None:
        # Effort alone is the newer depth control (thinking left to the model's default).
        return None if effort is None else ir.Reasoning(effort=effort)
    th = _obj(thinking, "thinking")
    dropped.extend(f"thinking.{k}" for k in th if k not in ("type", "budget_tokens"))
    kind = th.get("type")
    if kind == "enabled":
        budget = th.get("budget_tokens")
        if type(budget) is not int:
            raise _bad("thinking.budget_tokens must be an integer", "thinking.budget_tokens")
        # An explicit output_config.effort is the more direct statement of effort.
        return ir.Reasoning(budget_tokens=budget, effort=effort or reasoning.effort_for(budget))
    if kind in ("adaptive", "between_tools"):  # between_tools: thinking on, the model picks when
        return ir.Reasoning(effort=effort or reasoning.ADAPTIVE_DEFAULT)
    if kind == "disabled":
        return ir.Reasoning(enabled=False)
    raise _bad("thinking.type must be one of enabled, adaptive, disabled", "thinking.type")
