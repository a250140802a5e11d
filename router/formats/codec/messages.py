"""anthropic-messages <-> IR: requests, non-stream answers and error bodies (streams are in
messages_stream.py; reading requests is in messages_read.py, re-exported here). Reads what
/v1/messages clients send; writes what Anthropic upstreams take.

Choices that lose something, in one place:
- server tools (web_search, bash, ...) and their result blocks run at Anthropic and have no
  counterpart elsewhere: dropped with the debug line; documents, search results and file-id
  images cannot be carried at all: BadRequest, so the client learns why instead of a silent loss.
- a `system` role inside `messages` is hoisted to the top-level system list (its position is lost).
- cache_control markers are a caching hint: dropped silently.
- written tool_use `input` must be an object: arguments that are not a JSON object (a call cut
  off by max_tokens) are sent as {} with a debug line, rather than failing the whole turn.
- thinking is left off when the last assistant turn called tools without a signed thinking block
  (a history from another provider): Anthropic would refuse the request otherwise.
- a history that starts with an assistant turn is written as is: Anthropic decides (it accepts
  it today); inserting a fake user turn would change the conversation.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.formats.codec import ir, reasoning
from router.formats.codec.fields import count, sub, usage_in
from router.formats.codec.messages_read import FMT, log, read_request, split_data_url
from router.types import Usage

__all__ = ["FMT", "read_answer", "read_error", "read_request", "read_usage", "write_answer", "write_request"]

STOP_FROM: dict[str, ir.Stop] = {
    "end_turn": "end",
    "max_tokens": "length",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "pause_turn": "pause",
    "refusal": "refusal",
    "model_context_window_exceeded": "length",  # the answer was cut short, as by max_tokens
}
STOP_TO: dict[str, str] = {
    "end": "end_turn",
    "length": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "content_filter": "refusal",  # Anthropic's only "the provider stopped it" reason
    "refusal": "refusal",
    "pause": "pause_turn",
}
# Base64 magic prefixes, for inline images whose media type nobody named (Anthropic requires one).
_MAGIC = (("iVBORw0KGgo", "image/png"), ("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"), ("UklGR", "image/webp"))
_THINKING_BLOCKS = ("thinking", "redacted_thinking")
_MAX_ERROR_TEXT = 1000  # a non-JSON error body (an HTML page from a proxy) is cut to this


# ---------------------------------------------------------------- write_request


def write_request(req: ir.Request, model: str, opts: ir.RequestOptions) -> dict[str, Any]:
    """IR -> an Anthropic /v1/messages body for `model`, shaped to what the API accepts."""
    dropped: list[str] = []
    max_tokens = req.max_tokens if req.max_tokens is not None else opts.default_max_tokens
    messages = _write_messages(req.messages, dropped)
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": messages}
    if req.system:
        body["system"] = "\n\n".join(req.system)
    thinking = _write_reasoning(body, req.reasoning, max_tokens, opts)
    if thinking and not _can_think(messages):
        del body["thinking"]
        thinking = False
        dropped.append("thinking")
    if not thinking and messages and messages[-1]["role"] == "assistant":
        # With thinking off, Anthropic refuses thinking blocks in a final (prefill) assistant turn.
        last = messages[-1]
        last["content"] = [b for b in last["content"] if b["type"] not in _THINKING_BLOCKS]
        if not last["content"]:
            messages.pop()
    for key, value in (("temperature", req.temperature), ("top_p", req.top_p), ("top_k", req.top_k)):
        if value is not None:
            body[key] = value
    stop = [s for s in req.stop if s.strip()]  # Anthropic rejects whitespace-only stop sequences
    if stop:
        body["stop_sequences"] = stop
    for key in ("temperature", "top_p", "top_k", "stop_sequences"):
        # The route's drop_params (by wire or IR name); and with thinking on, Anthropic rejects
        # any change to the sampling parameters.
        rejected = key in opts.drop_params or (key == "stop_sequences" and "stop" in opts.drop_params)
        if key in body and (rejected or (thinking and key != "stop_sequences")):
            del body[key]
            dropped.append(key)
    if req.tools:  # Anthropic refuses tool_choice without tools
        body["tools"] = [_write_tool(t) for t in req.tools]
        choice = _write_tool_choice(req.tool_choice, req.parallel_tool_calls, thinking, dropped)
        if choice is not None:
            body["tool_choice"] = choice
    if req.user:
        body["metadata"] = {"user_id": req.user}
    body["stream"] = req.stream
    if dropped:
        log.debug("fields_dropped", fmt=FMT, fields=sorted(set(dropped)), side="write")
    return body


def _write_reasoning(body: dict[str, Any], r: ir.Reasoning | None, max_tokens: int, opts: ir.RequestOptions) -> bool:
    """Set thinking (and output_config.effort) per the route's form; True when thinking is on."""
    # 1. nothing asked, or asked off: no thinking field, so the model's default applies;
    # 2. adaptive: the effort, when one was given (else the model's default effort);
    # 3. budget: the client's budget or the effort's, kept below max_tokens; none fits: off.
    if r is None or not r.enabled or r.effort == "none":
        return False
    effort = r.effort or (None if r.budget_tokens is None else reasoning.effort_for(r.budget_tokens))
    if opts.thinking == "adaptive":
        body["thinking"] = {"type": "adaptive"}
        if effort is not None:
            body["output_config"] = {"effort": reasoning.adaptive_effort(effort)}
        return True
    if r.budget_tokens is not None:
        capped = min(r.budget_tokens, max_tokens - 1)
        budget = capped if capped >= reasoning.MIN_BUDGET else None
    else:
        budget = reasoning.budget_for(effort or reasoning.ADAPTIVE_DEFAULT, max_tokens)
    if budget is None:
        return False
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    return True


def _can_think(messages: list[dict[str, Any]]) -> bool:
    """Anthropic: with thinking on, the last assistant turn, when it called tools, must open with
    its signed thinking block. A history from another provider has none (nothing we could send),
    so thinking is left off for the request instead of a 400."""
    last = next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), None)
    if last is None or not any(b["type"] == "tool_use" for b in last):
        return True
    return bool(last[0]["type"] in _THINKING_BLOCKS)


def _write_messages(messages: list[ir.Message], dropped: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        blocks = [b for p in m.parts if (b := _write_part(p, dropped)) is not None]
        if not blocks:  # e.g. an assistant turn that held only another provider's reasoning
            continue
        if out and out[-1]["role"] == m.role:  # Anthropic wants alternating turns: merge
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": m.role, "content": blocks})
    for turn in out:
        if turn["role"] == "user":  # tool_result blocks must open the user turn (stable sort)
            turn["content"].sort(key=lambda b: b["type"] != "tool_result")
    return out


def _write_part(p: ir.Part, dropped: list[str]) -> dict[str, Any] | None:
    if isinstance(p, ir.Text):
        # Anthropic rejects empty and whitespace-only text blocks (chat sends content "" beside tool_calls).
        return {"type": "text", "text": p.text} if p.text.strip() else None
    if isinstance(p, ir.Image):
        return _write_image(p)
    if isinstance(p, ir.ToolCall):
        return {"type": "tool_use", "id": tool_id(p.id), "name": p.name, "input": tool_input(p.arguments, dropped)}
    if isinstance(p, ir.ToolResult):
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_id(p.call_id)}
        content = [b for c in p.content if (b := _write_part(c, dropped)) is not None]
        if content:
            block["content"] = content
        if p.is_error:
            block["is_error"] = True
        return block
    # Thinking: Anthropic verifies signatures, so only its own signed or redacted blocks go back.
    if p.origin == FMT and p.redacted is not None:
        return {"type": "redacted_thinking", "data": p.redacted}
    if p.origin == FMT and p.signature:
        return {"type": "thinking", "thinking": p.text, "signature": p.signature}
    dropped.append("thinking")
    return None


def _write_image(img: ir.Image) -> dict[str, Any] | None:
    if img.data is not None:
        media_type, data = img.media_type or _sniff(img.data), img.data
    elif img.url is not None:
        split = split_data_url(img.url)
        if split is None:
            return {"type": "image", "source": {"type": "url", "url": img.url}}
        media_type, data = split
    else:
        return None
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _sniff(data: str) -> str:
    return next((mt for prefix, mt in _MAGIC if data.startswith(prefix)), "image/png")


def tool_id(call_id: str) -> str:
    """A tool id Anthropic accepts (^[a-zA-Z0-9_-]+$). Deterministic, so a call and its result
    still pair up after the same rewrite."""
    clean = "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in call_id)
    return clean or "_"


def tool_input(arguments: str, dropped: list[str]) -> dict[str, Any]:
    """Arguments JSON text -> the object tool_use.input requires ({} when it is not one)."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        return value
    dropped.append("tool_use.input")
    return {}


def _write_tool(t: ir.Tool) -> dict[str, Any]:
    schema = dict(t.parameters) if t.parameters else {"type": "object", "properties": {}}
    schema.setdefault("type", "object")  # required by Anthropic; chat allows parameters {}
    out: dict[str, Any] = {"name": t.name, "input_schema": schema}
    if t.description:
        out["description"] = t.description
    if t.strict:
        out["strict"] = True
    return out


def _write_tool_choice(
    tc: ir.ToolChoice | None, parallel: bool | None, thinking: bool, dropped: list[str]
) -> dict[str, Any] | None:
    mode = tc.mode if tc is not None else None
    if thinking and mode in ("required", "tool"):  # Anthropic forbids forced tool use with thinking on
        dropped.append("tool_choice")
        mode = "auto"
    if mode == "none":
        return {"type": "none"}
    out: dict[str, Any] | None = None
    if mode == "auto":
        out = {"type": "auto"}
    elif mode == "required" or (mode == "tool" and not (tc and tc.name)):
        out = {"type": "any"}
    elif mode == "tool" and tc is not None:
        out = {"type": "tool", "name": tc.name}
    if parallel is False:
        out = out or {"type": "auto"}
        out["disable_parallel_tool_use"] = True
    return out


# ---------------------------------------------------------------- answers and errors


def read_answer(body: dict[str, Any]) -> ir.Answer:
    """An Anthropic non-stream answer -> IR. Lenient: odd fields read as absent."""
    parts: list[ir.Text | ir.Thinking | ir.ToolCall] = []
    content = body.get("content")
    for block in content if isinstance(content, list) else []:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(ir.Text(block["text"]))
        elif kind == "thinking":
            text, sig = block.get("thinking"), block.get("signature")
            text = text if isinstance(text, str) else ""
            parts.append(ir.Thinking(text, sig if isinstance(sig, str) and sig else None, origin=FMT))
        elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
            parts.append(ir.Thinking(redacted=block["data"], origin=FMT))
        elif kind == "tool_use":
            parts.append(ir.ToolCall(_s(block.get("id")), _s(block.get("name")), json_text(block.get("input"))))
    stop = body.get("stop_reason")
    seq = body.get("stop_sequence")
    return ir.Answer(
        id=_s(body.get("id")),
        model=_s(body.get("model")),
        parts=parts,
        stop=STOP_FROM.get(stop, "end") if isinstance(stop, str) else "end",
        stop_sequence=seq if isinstance(seq, str) else None,
        usage=usage_in(body, read_usage),
    )


def _s(v: Any) -> str:
    return v if isinstance(v, str) else ""


def json_text(v: Any) -> str:
    """A tool input as arguments JSON text; "{}" for none or for what cannot be encoded."""
    try:
        return orjson.dumps({} if v is None else v).decode()
    except (orjson.JSONEncodeError, TypeError):
        return "{}"


def write_answer(ans: ir.Answer, model: str) -> dict[str, Any]:
    """IR -> the anthropic.types.Message body a /v1/messages client expects."""
    dropped: list[str] = []
    content: list[dict[str, Any]] = []
    for p in ans.parts:
        if isinstance(p, ir.Text):
            if p.text:
                content.append({"type": "text", "text": p.text})
        elif isinstance(p, ir.ToolCall):
            args = tool_input(p.arguments, dropped)
            content.append({"type": "tool_use", "id": tool_id(p.id), "name": p.name, "input": args})
        elif (block := thinking_block(p)) is not None:
            content.append(block)
    if dropped:
        log.debug("fields_dropped", fmt=FMT, fields=sorted(set(dropped)), side="answer")
    return {
        "id": message_id(ans.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_TO[ans.stop],
        "stop_sequence": ans.stop_sequence,
        "usage": usage_dict(ans.usage),
    }


def thinking_block(p: ir.Thinking) -> dict[str, Any] | None:
    """Thinking for a client: own signed/redacted blocks as they came; another provider's
    reasoning text with an empty signature (the SDK type requires the field; a signature is
    never invented). read_request reads that back as unsigned, so it never reaches Anthropic."""
    own = p.origin == FMT
    if p.redacted is not None:
        return {"type": "redacted_thinking", "data": p.redacted} if own else None
    if not p.text and not (own and p.signature):
        return None  # e.g. Responses' encrypted reasoning alone: nothing a client can show
    return {"type": "thinking", "thinking": p.text, "signature": (p.signature or "") if own else ""}


def message_id(ir_id: str) -> str:
    """The id shown to the client: stable, with Anthropic's msg_ prefix."""
    return ir_id if ir_id.startswith("msg_") else "msg_" + ir_id


def usage_dict(u: Usage | None) -> dict[str, Any]:
    """Anthropic usage: input_tokens EXCLUDES cache reads and writes (as ir Usage does)."""
    u = u or Usage()
    out: dict[str, Any] = {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
    }
    if u.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": u.reasoning_tokens}
    return out


def read_error(body: bytes) -> ir.Error:
    """An upstream error body -> message and Anthropic error type. Never raises."""
    try:
        obj = orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError):
        obj = None
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        msg, kind, details = err.get("message"), err.get("type"), err.get("details")
        code = details.get("error_code") if isinstance(details, dict) else None
        return ir.Error(
            message=msg if isinstance(msg, str) and msg else "upstream error",
            kind=kind if isinstance(kind, str) and kind else "api_error",
            code=code if isinstance(code, str) else None,
        )
    if isinstance(err, str) and err:
        return ir.Error(err)
    text = bytes(body).decode("utf-8", "replace").strip() if isinstance(body, bytes | bytearray) else ""
    return ir.Error(text[:_MAX_ERROR_TEXT] or "upstream error")


def read_usage(u: dict[str, Any]) -> Usage | None:
    # input_tokens EXCLUDES cache reads and writes, which come in their own fields.
    inp, out = count(u.get("input_tokens")), count(u.get("output_tokens"))
    if inp is None and out is None:
        return None
    return Usage(
        inp or 0,
        count(u.get("cache_read_input_tokens")) or 0,
        count(u.get("cache_creation_input_tokens")) or 0,
        out or 0,
        count(sub(u, "output_tokens_details").get("thinking_tokens")) or 0,
    )
