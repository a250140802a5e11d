"""openai-responses items <-> IR parts, shared by responses.py (bodies) and responses_stream.py
(events): input items of a request as written (responses_read.py reads them), reasoning items,
output items of an answer, usage, stop reasons, response envelopes and error kinds.
"""

from __future__ import annotations

from typing import Any, Final

from router.config import Format
from router.formats.codec import ir
from router.types import Usage

FMT: Final[Format] = "openai-responses"


def _opt_str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


# ---------------------------------------------------------------- reasoning items -> IR


def read_reasoning(item: dict[str, Any]) -> ir.Thinking:
    """A reasoning item (input or output): summary texts joined by a blank line (raw reasoning
    `content` when there is no summary); encrypted_content and id kept for this format only."""
    texts = _texts(item.get("summary")) or _texts(item.get("content"))
    return ir.Thinking(
        text="\n\n".join(texts),
        encrypted=_opt_str(item.get("encrypted_content")),
        id=_opt_str(item.get("id")),
        origin=FMT,
    )


def _texts(parts: Any) -> list[str]:
    if not isinstance(parts, list):
        return []
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str) and p["text"]]


# ---------------------------------------------------------------- IR -> input items


def write_input(messages: list[ir.Message]) -> list[dict[str, Any]]:
    """IR messages -> input items: text and images as message items, tool calls and results as
    their own items, in the order the parts come."""
    items: list[dict[str, Any]] = []
    for m in messages:
        content: list[dict[str, Any]] = []  # parts of the message item being built

        def flush(role: str = m.role, content: list[dict[str, Any]] = content) -> None:
            if not content:
                return
            if role == "assistant":
                # Assistant history as a plain string: the API takes only output_text parts for
                # assistant content, and the SDK types output_text messages as stored output
                # (with id and status), which store=false requests should not name.
                items.append({"type": "message", "role": role, "content": "".join(c["text"] for c in content)})
            else:
                items.append({"type": "message", "role": role, "content": list(content)})
            content.clear()

        for p in m.parts:
            if isinstance(p, ir.Text):
                content.append({"type": "input_text", "text": p.text})
            elif isinstance(p, ir.Image):
                if m.role == "user" and (image := write_image(p)) is not None:
                    content.append(image)
            else:
                flush()
                if (item := _write_item(p)) is not None:
                    items.append(item)
        flush()
    return items


def write_image(img: ir.Image) -> dict[str, Any] | None:
    if img.url:
        url = img.url
    elif img.data:
        url = f"data:{img.media_type or 'image/png'};base64,{img.data}"
    else:
        return None
    # `detail` is required by the SDK's input_image type; "auto" is the API's own default.
    return {"type": "input_image", "image_url": url, "detail": img.detail or "auto"}


def _write_item(p: ir.Thinking | ir.ToolCall | ir.ToolResult) -> dict[str, Any] | None:
    if isinstance(p, ir.ToolCall):
        return {"type": "function_call", "call_id": p.id, "name": p.name, "arguments": p.arguments}
    if isinstance(p, ir.ToolResult):
        return {"type": "function_call_output", "call_id": p.call_id, "output": _tool_output(p)}
    # Reasoning goes back only to the format that made it, and only with its encrypted content:
    # requests are written with store=false, so a reasoning item the upstream must look up by id
    # alone would be refused ("items are not persisted when store is false").
    if p.origin != FMT or not p.encrypted:
        return None
    item: dict[str, Any] = {"type": "reasoning", "summary": _summary(p.text), "encrypted_content": p.encrypted}
    if p.id:
        item["id"] = p.id
    return item


def _tool_output(r: ir.ToolResult) -> str | list[dict[str, Any]]:
    # Responses has no is_error flag; the model learns of the failure from the text.
    prefix = "Error: " if r.is_error else ""
    if not any(isinstance(c, ir.Image) for c in r.content):
        return prefix + "\n".join(c.text for c in r.content if isinstance(c, ir.Text))
    parts: list[dict[str, Any]] = [{"type": "input_text", "text": prefix}] if prefix else []
    for c in r.content:
        if isinstance(c, ir.Text):
            parts.append({"type": "input_text", "text": c.text})
        elif (image := write_image(c)) is not None:
            parts.append(image)
    return parts


def _summary(text: str) -> list[dict[str, Any]]:
    return [{"type": "summary_text", "text": text}] if text else []


# ---------------------------------------------------------------- output items


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, texts: list[str], status: str = "completed") -> dict[str, Any]:
    content = [output_text(t) for t in texts]
    return {"type": "message", "id": item_id, "role": "assistant", "status": status, "content": content}


def call_item(item_id: str, call: ir.ToolCall, status: str = "completed") -> dict[str, Any]:
    fields = {"call_id": call.id, "name": call.name, "arguments": call.arguments, "status": status}
    return {"type": "function_call", "id": item_id, **fields}


def reasoning_item(item_id: str, text: str, encrypted: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "reasoning", "id": item_id, "summary": _summary(text)}
    if encrypted is not None:
        item["encrypted_content"] = encrypted
    return item


def read_output(output: Any) -> list[ir.Text | ir.Thinking | ir.ToolCall]:
    """Output items -> answer parts; hosted-tool items have no IR counterpart and are skipped."""
    parts: list[ir.Text | ir.Thinking | ir.ToolCall] = []
    for item in output if isinstance(output, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for c in item.get("content") or []:
                if isinstance(c, dict) and c.get("type") == "output_text" and isinstance(c.get("text"), str):
                    parts.append(ir.Text(c["text"]))
                elif isinstance(c, dict) and c.get("type") == "refusal" and isinstance(c.get("refusal"), str):
                    parts.append(ir.Text(c["refusal"]))
        elif kind == "function_call":
            args = item.get("arguments")
            call_id, name = str(item.get("call_id") or ""), str(item.get("name") or "")
            parts.append(ir.ToolCall(call_id, name, args if isinstance(args, str) else ""))
        elif kind == "reasoning":
            parts.append(read_reasoning(item))
    return parts


# ---------------------------------------------------------------- stop, usage, envelope


def stop_from(response: dict[str, Any], has_calls: bool) -> ir.Stop:
    """status/incomplete_details -> stop: incomplete for max_output_tokens is length, for
    content_filter content_filter; otherwise a completed answer with calls is tool_use."""
    if response.get("status") == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return "content_filter" if reason == "content_filter" else "length"
    return "tool_use" if has_calls else "end"


def status_for(stop: ir.Stop) -> tuple[str, dict[str, str] | None]:
    """stop -> (status, incomplete_details). Refusal reads as content_filter, the way OpenAI
    reports a filtered answer; pause and stop_sequence have no incomplete reason: completed."""
    if stop == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if stop in ("content_filter", "refusal"):
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def usage_out(u: Usage | None) -> dict[str, Any] | None:
    """IR usage -> Responses usage: input_tokens INCLUDES cache reads and writes here."""
    if u is None:
        return None
    total_in = u.input_tokens + u.cached_tokens + u.cache_write_tokens
    return {
        "input_tokens": total_in,
        "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": u.cache_write_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": total_in + u.output_tokens,
    }


def response_id(any_id: str) -> str:
    return any_id if any_id.startswith("resp_") else "resp_" + any_id


def item_id(rid: str, prefix: str, index: int) -> str:
    """A deterministic item id within one response: prefix, the response's own suffix, position."""
    return f"{prefix}_{rid.removeprefix('resp_')}_{index}"


def envelope(rid: str, model: str, created: float, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
    """A response object with every field the SDK's Response model requires. The request's
    tools, tool_choice and sampling settings are not known where answers are written: the
    defaults stand in for them."""
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "model": model,
        "output": output,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": None,
    }


# ---------------------------------------------------------------- errors

# OpenAI error codes/types -> Anthropic-style kinds, by substring, first match wins (code is
# looked at before type: 401s arrive as type invalid_request_error, code invalid_api_key).
_KINDS: tuple[tuple[str, str], ...] = (
    ("rate_limit", "rate_limit_error"),
    ("quota", "rate_limit_error"),
    ("api_key", "authentication_error"),
    ("auth", "authentication_error"),
    ("permission", "permission_error"),
    ("not_found", "not_found_error"),
    ("overload", "overloaded_error"),
    ("slow_down", "overloaded_error"),
    ("invalid", "invalid_request_error"),
    ("context_length", "invalid_request_error"),
)
# ResponseError.code is a closed set in the SDK; a code outside it would not validate.
_FAILED_CODES = frozenset({"server_error", "rate_limit_exceeded", "invalid_prompt"})


def error_kind(etype: Any, code: Any) -> str:
    for v in (code, etype):
        if isinstance(v, str):
            low = v.lower()
            for needle, kind in _KINDS:
                if needle in low:
                    return kind
    return "api_error"


def failed_code(err: ir.Error) -> str:
    """The response.failed error code for an IR error (the SDK's closed set)."""
    if err.code is not None and err.code in _FAILED_CODES:
        return err.code
    if err.kind == "rate_limit_error":
        return "rate_limit_exceeded"
    return "invalid_prompt" if err.kind == "invalid_request_error" else "server_error"
