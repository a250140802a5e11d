"""Reading a YAML-shaped document without the schema: ${ENV} substitution, and `Reader`, whose
typed getters record `path: reason` problems instead of raising, so that one pass reports every
problem. `router.config.validate` applies it to the config schema.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TypeVar

D = TypeVar("D")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")  # ${VAR} or ${VAR:-default}
_NAME = re.compile(r"[A-Za-z0-9._-]+")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_SECONDS = re.compile(r"\d+(?:\.\d+)?")
FIELD_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # an RFC 9110 field name
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_duration(value: object) -> float | None:
    """Seconds from a number, a numeric string, or units in the order d, h, m, s ("2h", "1h30m",
    "1d", "45s"); None when `value` is none of these. The sign is left to the caller to check."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    if not isinstance(value, str):
        return float(value) if math.isfinite(value) else None
    if _SECONDS.fullmatch(value):
        return float(value)
    match = _DURATION.fullmatch(value) if value else None
    if match is None:
        return None
    return float(sum(int(n) * unit for n, unit in zip(match.groups(), (86400, 3600, 60, 1), strict=False) if n))


def name_problem(name: str) -> str | None:
    """Why `name` is no identifier (a provider, model, plan or key id), or None. Also what
    `router keys new` checks its --id and --plan against."""
    if _NAME.fullmatch(name):
        return None
    return f"must match [A-Za-z0-9._-]+, got {show(name)}"


def show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def header_value_problem(value: str) -> str | None:
    """Why `value` cannot be sent as an HTTP header value as it is, or None. Never quotes it: it
    may be a credential, and a config error is printed and logged."""
    if _CONTROL.search(value):
        # the usual cause: a key file (a Kubernetes Secret made --from-file) ends with a newline
        return "must be one line without control characters (CR, LF, tab...); a file's trailing newline?"
    if value != value.strip():
        return "must not start or end with whitespace"
    return None


def substitute(node: object, path: str, env: Mapping[str, str], problems: list[str]) -> object:
    """Replace ${VAR} and ${VAR:-default} in every string scalar (`:-` also covers set-but-empty)."""
    if isinstance(node, dict):
        return {k: substitute(v, _join(path, k), env, problems) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [substitute(v, f"{path}[{i}]", env, problems) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def repl(m: re.Match[str]) -> str:
        value = env.get(m.group(1))
        if value or m.group(2) is not None:
            return value or m.group(2)
        if value is None:
            problems.append(f"{path or 'top level'}: environment variable {m.group(1)} is not set")
        return ""

    return _VAR.sub(repl, node)


class Reader:
    """One mapping of the document: typed getters that record `path: reason` problems.

    Each getter returns a usable value (the default on error), so validation carries on and reports
    everything at once. The keys asked for are the known keys; `done()` reports any other key.
    """

    def __init__(self, data: object, path: str, problems: list[str]) -> None:
        self.path, self.problems, self.known = path, problems, list[str]()
        self.shaped = data is None or isinstance(data, dict)  # else reported once, here
        if not self.shaped:
            self.fail("", f"expected a mapping, got {show(data)}")
        self.data: dict[object, object] = data if isinstance(data, dict) else {}

    def at(self, key: str) -> str:
        return _join(self.path, key)

    def fail(self, key: str, reason: str) -> None:
        self.problems.append(f"{self.at(key) if key else self.path or 'top level'}: {reason}")

    def get(self, key: str, required: bool = False) -> object:
        self.known.append(key)
        value = self.data.get(key)  # an explicit null means "the default"
        if value is None and required and self.shaped:
            self.fail(key, "is required")
        return value

    def done(self, result: D) -> D:
        for key in self.data:
            if key not in self.known:
                self.fail(str(key), f"unknown key (expected one of: {', '.join(self.known)})")
        return result

    def _bounds(self, key: str, value: float, gt: float | None, ge: float | None, le: float | None) -> bool:
        for bad, rel, bound in (
            (gt is not None and not value > gt, ">", gt),
            (ge is not None and not value >= ge, ">=", ge),
            (le is not None and not value <= le, "<=", le),
        ):
            if bad:
                self.fail(key, f"must be {rel} {bound}, got {value!r}")
                return False
        return True

    def integer(self, key: str, default: D, ge: int | None = None, le: int | None = None) -> int | D:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer, got {show(value)}")
            return default
        return value if self._bounds(key, value, None, ge, le) else default

    def number(
        self, key: str, default: D, gt: float | None = None, ge: float | None = None, required: bool = False
    ) -> float | D:
        value = self.get(key, required)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, f"expected a number, got {show(value)}")
            return default
        return float(value) if self._bounds(key, value, gt, ge, None) else default

    def duration(self, key: str, default: D, required: bool = False) -> float | D:
        value = self.get(key, required)
        seconds = None if value is None else parse_duration(value)
        if value is not None and seconds is None:
            self.fail(key, f"expected a duration like 2h, 30m, 45s, 1d or 1h30m, or seconds; got {show(value)}")
        return seconds if seconds is not None and self._bounds(key, seconds, 0, None, None) else default

    def string(self, key: str, default: D, required: bool = False, choices: tuple[str, ...] = ()) -> str | D:
        value = self.get(key, required)
        if value is None:
            return default
        if not isinstance(value, str):
            self.fail(key, f"expected a string, got {show(value)}")
        elif not value:
            self.fail(key, "must not be empty")
        elif choices and value not in choices:
            self.fail(key, f"must be one of {', '.join(choices)}; got {value!r}")
        else:
            return value
        return default

    def header_value(self, key: str, default: D) -> str | D:
        """A string sent in an HTTP header (a credential, a version); refused, never quoted, when
        it is not one clean line."""
        value = self.string(key, default)
        problem = header_value_problem(value) if isinstance(value, str) else None
        if problem:
            self.fail(key, problem)
            return default
        return value

    def headers(self, key: str) -> tuple[tuple[str, str], ...]:
        """A mapping of header name to value. The values may hold credentials: never quoted."""
        raw = self.get(key)
        if raw is not None and not isinstance(raw, dict):
            self.fail(key, f"expected a mapping of header name to value, got {show(raw)}")
        out: list[tuple[str, str]] = []
        for k, v in raw.items() if isinstance(raw, dict) else ():
            where = f"{key}.{k}"
            if not isinstance(k, str) or not FIELD_NAME.fullmatch(k):
                self.fail(key, f"expected header names, got {show(k)}")
            elif not isinstance(v, str) or not v:
                self.fail(where, f"expected a non-empty string value, got {type(v).__name__}")
            elif problem := header_value_problem(v):
                self.fail(where, problem)
            else:
                out.append((k, v))
        return tuple(out)

    def name(self, key: str) -> str:
        """A required identifier: [A-Za-z0-9._-]+."""
        name = self.string(key, "", required=True)
        problem = name_problem(name) if name else None
        if problem:
            self.fail(key, problem)
        return name

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None or isinstance(value, bool):
            return default if value is None else value
        self.fail(key, f"expected true or false, got {show(value)}")
        return default

    def sub(self, key: str) -> Reader:
        return Reader(self.get(key), self.at(key), self.problems)

    def maybe(self, key: str) -> Reader | None:
        """An optional mapping: None when absent (or null)."""
        value = self.get(key)
        return None if value is None else Reader(value, self.at(key), self.problems)

    def seq(self, key: str, required: bool = True) -> list[object]:
        """A list: required and non-empty, or else optional and possibly empty."""
        value = self.get(key, required)
        if value is not None and not isinstance(value, (list, tuple)):
            self.fail(key, f"expected a list, got {show(value)}")
        elif value is not None and not value and required:
            self.fail(key, "must be a non-empty list")
        return list(value) if isinstance(value, (list, tuple)) else []

    def items(self, key: str, required: bool = True) -> list[Reader]:
        return [Reader(v, f"{self.at(key)}[{i}]", self.problems) for i, v in enumerate(self.seq(key, required))]
