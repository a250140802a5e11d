"""Typed reads of request fields shared by the three request readers."""

from __future__ import annotations

from typing import Any

from router.errors import BadRequest


def opt_number(body: dict[str, Any], key: str) -> float | None:
    """body[key] as a float when present and not null; a bool or anything else is a 400."""
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise BadRequest(f"{key} must be a number", param=key)
    return float(v)
