"""Client request bodies, checked once at the endpoint: JSON object, a model, a boolean
`stream`, and the format's core fields with the right types. Pure; raises BadRequest."""

from __future__ import annotations

from typing import Any

import orjson

from router.errors import BadRequest
from router.formats import ClientRequest, WireFormat


def parse_request(fmt: WireFormat, raw: bytes, headers: dict[str, str], request_id: str) -> ClientRequest:
    if not raw.strip():
        raise BadRequest("the request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, not {_kind(body)}")
    model = body.get("model")
    if model is None:
        raise BadRequest("missing required field 'model'", param="model")
    if not isinstance(model, str):
        raise BadRequest(f"'model' must be a string, not {_kind(model)}", param="model")
    if not model:
        raise BadRequest("'model' must not be empty", param="model")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise BadRequest(f"'stream' must be a boolean, not {_kind(stream)}", param="stream")
    for name, types, tname, required in fmt.body_fields:
        value = body.get(name)
        if value is None:
            if required:
                raise BadRequest(f"missing required field '{name}'", param=name)
            continue
        if not isinstance(value, types) or isinstance(value, bool):
            raise BadRequest(f"'{name}' must be {tname}, not {_kind(value)}", param=name)
    return ClientRequest(fmt=fmt, model=model, stream=stream, body=body, headers=headers, request_id=request_id)


def _kind(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)
