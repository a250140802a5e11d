"""Errors rendered in the client's own format: the JSON envelope of an error response, and the
error event(s) that end a stream that can no longer change its status.

OpenAI (chat and responses): {"error": {"message", "type", "code", "param"}}
Anthropic:                   {"type": "error", "error": {"type", "message"}}
"""

from __future__ import annotations

import orjson

from router.config import Format
from router.formats.sse import encode

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_body(fmt: Format, status: int, message: str, code: str, param: str | None = None) -> bytes:
    """The JSON body of an error response of `status` in the envelope of `fmt`."""
    if fmt == "anthropic-messages":
        etype = _ANTHROPIC_TYPES.get(status, "api_error")
        return orjson.dumps({"type": "error", "error": {"type": etype, "message": message}})
    etype = _OPENAI_TYPES.get(status, "server_error")
    return orjson.dumps({"error": {"message": message, "type": etype, "code": code, "param": param}})


def stream_error(
    fmt: Format,
    message: str,
    code: str = "upstream_error",
    response_id: str | None = None,
    sequence_number: int = 0,
    send_error_event: bool = True,
) -> bytes:
    """The event(s) that end a committed stream with an error, so the client never mistakes a
    failure for a clean end. Responses gets its `error` event and then `response.failed`
    (whose id is the stream's own, when known); `send_error_event=False` sends only the latter,
    for a stream whose upstream already sent its own `error` event."""
    if fmt == "openai-chat":
        chat_err = {"error": {"message": message, "type": "server_error", "code": code, "param": None}}
        return encode(orjson.dumps(chat_err))
    if fmt == "anthropic-messages":
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
        return encode(orjson.dumps(body), "error")
    out = b""
    seq = sequence_number
    if send_error_event:
        err = {"type": "error", "code": code, "message": message, "param": None, "sequence_number": seq}
        out += encode(orjson.dumps(err), "error")
        seq += 1
    failed = {
        "type": "response.failed",
        "sequence_number": seq,
        "response": {
            "id": response_id or "resp_router_error",
            "object": "response",
            "status": "failed",
            "error": {"code": "server_error", "message": message},
            "output": [],
        },
    }
    return out + encode(orjson.dumps(failed), "response.failed")
