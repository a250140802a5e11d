"""Typed reads of fields, the one home for them: the request readers' strict reads (a value of the
wrong type is a BadRequest whose `param` is the field's path, `messages[3].content[0].type`), and
the lenient reads of upstream answers (token counts, sub-objects, usage).

Strict reads: absent and null read as None (a default), anything else must have the field's type.
Each costs one isinstance on the good path; the path string is built only when a read fails
(`where` is the path of the object holding `key`, "" at the top of the body).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, NoReturn

from router.errors import BadRequest
from router.types import Usage

# A value echoed in an error message is cut here: a request may carry megabytes in any field.
_SHOWN = 60
_KINDS: dict[type, str] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


def kind_of(value: Any) -> str:
    """A JSON value's kind for a message: "an object", "a string", "null", ..."""
    return "null" if value is None else _KINDS.get(type(value), type(value).__name__)


def show(value: Any) -> str:
    """A value as quoted in an error message, cut to a few dozen characters."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def fail(message: str, param: str) -> NoReturn:
    raise BadRequest(message, param=param)


def _wrong(param: str, want: str, value: Any) -> NoReturn:
    fail(f"{param} must be {want}, not {kind_of(value)}", param)


# ---------------------------------------------------------------- a value at a known path


def obj(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _wrong(param, "an object", value)
    return value


def string(value: Any, param: str) -> str:
    if not isinstance(value, str):
        _wrong(param, "a string", value)
    return value


def array(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        _wrong(param, "an array", value)
    return value


def strings(value: Any, param: str) -> list[str]:
    """An array of strings; the error names the first item that is not one."""
    for i, s in enumerate(array(value, param)):
        if not isinstance(s, str):
            _wrong(f"{param}[{i}]", "a string", s)
    return value  # type: ignore[no-any-return]  # checked item by item above


def one_of(value: Any, allowed: Collection[str], param: str) -> str:
    """A string from `allowed` (type-checked first: a list or object is never looked up)."""
    if not isinstance(value, str) or value not in allowed:
        fail(f"{param} must be one of {', '.join(sorted(allowed))}; got {show(value)}", param)
    return value


# ---------------------------------------------------------------- a field of an object


def kind(d: dict[str, Any], where: str, default: str | None = None) -> str | None:
    """The object's `type`: a string, or `default` when absent or null."""
    v = d.get("type")
    if v is None:
        return default
    if not isinstance(v, str):
        _wrong(path(where, "type"), "a string", v)
    return v


def need_str(d: dict[str, Any], key: str, where: str = "") -> str:
    v = d.get(key)
    if not isinstance(v, str):
        _wrong(path(where, key), "a string", v)
    return v


def need_obj(d: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
    v = d.get(key)
    if not isinstance(v, dict):
        _wrong(path(where, key), "an object", v)
    return v


def opt_str(d: dict[str, Any], key: str, where: str = "") -> str | None:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        _wrong(path(where, key), "a string", v)
    return v


def opt_bool(d: dict[str, Any], key: str, where: str = "") -> bool | None:
    v = d.get(key)
    if v is not None and not isinstance(v, bool):
        _wrong(path(where, key), "a boolean", v)
    return v


def opt_int(d: dict[str, Any], key: str, where: str = "") -> int | None:
    """An integer (a bool is not one, nor is 1.0)."""
    v = d.get(key)
    if v is not None and type(v) is not int:
        _wrong(path(where, key), "an integer", v)
    return v


def opt_count(d: dict[str, Any], key: str, where: str = "") -> int | None:
    """A non-negative integer."""
    v = d.get(key)
    if v is not None and (type(v) is not int or v < 0):
        fail(f"{path(where, key)} must be a non-negative integer", path(where, key))
    return v


def opt_number(d: dict[str, Any], key: str, where: str = "") -> float | None:
    """A number as a float; a bool is not one."""
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        _wrong(path(where, key), "a number", v)
    return float(v)


def opt_obj(d: dict[str, Any], key: str, where: str = "") -> dict[str, Any] | None:
    v = d.get(key)
    if v is not None and not isinstance(v, dict):
        _wrong(path(where, key), "an object", v)
    return v


def opt_list(d: dict[str, Any], key: str, where: str = "") -> list[Any] | None:
    v = d.get(key)
    if v is not None and not isinstance(v, list):
        _wrong(path(where, key), "an array", v)
    return v


# ---------------------------------------------------------------- upstream answers: lenient


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
