"""Responses stream events as the official `openai` SDK validates them.

A client built with `_strict_response_validation=True` runs every stream event through
`openai._models.validate_type`, i.e. `TypeAdapter(ResponseStreamEvent).validate_python(data)`:
full pydantic validation (not `construct`), so a missing required field fails. `responses_events`
does that, and also validates each event with the member its `type` names in pydantic's strict
mode (no coercion: a string where an int belongs fails too), which also keeps a failure readable:
the union is not discriminated for pydantic, so its errors list all of its members.
"""

from __future__ import annotations

from typing import Any, get_args

import orjson
from openai.types.responses import ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from router.formats.sse import SSEParser

SDK_EVENT = TypeAdapter[Any](ResponseStreamEvent)
BY_TYPE: dict[str, type[BaseModel]] = {
    get_args(m.model_fields["type"].annotation)[0]: m for m in get_args(get_args(ResponseStreamEvent)[0])
}


def validate(obj: dict[str, Any]) -> Any:
    """One event's JSON, validated as the SDK does and strictly; the SDK's event object."""
    model = BY_TYPE.get(obj.get("type"))  # type: ignore[arg-type]
    assert model is not None, f"not a Responses stream event type: {obj.get('type')!r}"
    model.model_validate(obj, strict=True)
    return SDK_EVENT.validate_python(obj)


def responses_events(raw: bytes) -> list[dict[str, Any]]:
    """The events of a Responses SSE byte stream, each named by its type and validated."""
    parser = SSEParser()
    out = []
    for ev in parser.feed(raw):
        obj = orjson.loads(ev.data)
        assert ev.event == obj["type"], "event: names the data's type"
        validate(obj)
        out.append(obj)
    assert parser.pending() == b"", "the bytes end with a whole event"
    return out
