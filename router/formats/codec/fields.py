"""Typed reads of fields shared by the three formats' readers: request numbers, token counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from router.errors import BadRequest
from router.types import Usage


def opt_number(body: dict[str, Any], key: str) -> float | None:
    """body[key] as a float when present and not null; a bool or anything else is a 400."""
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise BadRequest(f"{key} must be a number", param=key)
    return float(v)


def count(v: Any) -> int | None:
    """A token count, or None for anything that is not a non-negative int (bool included)."""
    if type(v) is int and v >= 0:
        return v
    return None


def sub(d: dict[str, Any], key: str) -> dict[str, Any]:
    v = d.get(key)
    return v if isinstance(v, dict) else {}


def usage_in(body: Any, read: Callable[[dict[str, Any]], Usage | None]) -> Usage | None:
    """`read` applied to a body's `usage` object; None when there is none. Never raises."""
    if not isinstance(body, dict):
        return None
    u = body.get("usage")
    return read(u) if isinstance(u, dict) else None
