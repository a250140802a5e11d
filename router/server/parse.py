"""Client request bodies, checked once at the endpoint: JSON object, a model, a boolean
`stream`, and the format's core fields with the right types. Pure; raises BadRequest."""

from __future__ import annotations

from typing import Any

import orjson

from router.config.schema import MAX_OUTPUT_TOKENS
from router.errors import BadRequest
from router.formats import ClientRequest, WireFormat
from router.formats.codec.fields import kind_of as _kind

# Deeper JSON than this is no LLM request: real ones nest a handful of levels (tool schemas a
# dozen or two), and orjson's writer gives up at 255, so a deeper body would fail later, as a 500.
DEFAULT_MAX_DEPTH = 64
# Longer than any real model name: the name is echoed in errors and logged on every access line.
MAX_MODEL_NAME = 256


def parse_request(
    fmt: WireFormat, raw: bytes, headers: dict[str, str], request_id: str, max_depth: int = DEFAULT_MAX_DEPTH
) -> ClientRequest:
    if not raw.strip():
        raise BadRequest("the request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, not {_kind(body)}")
    # Counting brackets is C-speed; only a body with that many can nest that deep.
    if raw.count(b"{") + raw.count(b"[") > max_depth and _depth_over(body, max_depth):
        raise BadRequest(f"the request body nests deeper than {max_depth} levels")
    model = body.get("model")
    if model is None:
        raise BadRequest("missing required field 'model'", param="model")
    if not isinstance(model, str):
        raise BadRequest(f"'model' must be a string, not {_kind(model)}", param="model")
    if not model:
        raise BadRequest("'model' must not be empty", param="model")
    if len(model) > MAX_MODEL_NAME:
        raise BadRequest(f"'model' is longer than {MAX_MODEL_NAME} characters", param="model")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise BadRequest(f"'stream' must be a boolean, not {_kind(stream)}", param="stream")
    for name in fmt.max_output_fields:
        cap = body.get(name)
        if isinstance(cap, int) and not isinstance(cap, bool) and not 0 <= cap <= MAX_OUTPUT_TOKENS:
            raise BadRequest(f"'{name}' must be between 0 and {MAX_OUTPUT_TOKENS:,}", param=name)
    for name, types, tname, required in fmt.body_fields:
        value = body.get(name)
        if value is None:
            if required:
                raise BadRequest(f"missing required field '{name}'", param=name)
            continue
        if not isinstance(value, types) or isinstance(value, bool):
            raise BadRequest(f"'{name}' must be {tname}, not {_kind(value)}", param=name)
    return ClientRequest(fmt=fmt, model=model, stream=stream, body=body, headers=headers, request_id=request_id)


def _depth_over(body: Any, limit: int) -> bool:
    """Whether containers nest deeper than `limit` (iteratively: a deep body cannot recurse us)."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False
