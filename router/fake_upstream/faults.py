"""The fake provider's run-time fault switches: a mutable `Faults` dataclass (defaults = healthy)
and strict parsing from a dict (admin JSON body or CLI flags). Pure: no web framework here."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class FaultError(ValueError):
    """An unknown fault name or a value of the wrong type/range."""


@dataclass
class Faults:
    """Fault switches read by every request. Mutate in place: the running app holds this object."""

    latency_ms: float = 0  # delay before the response headers (time to first byte)
    chunk_delay_ms: float = 0  # delay before each content delta and before the final events
    chunks: int = 4  # number of text content deltas in a stream
    fail_rate: float = 0  # probability of answering `fail_status`
    status: int | None = None  # always answer this status, with an error body
    fail_status: int = 500
    retry_after: float | None = None  # `retry-after` header on injected error answers
    hang: bool = False  # never answer (before the headers)
    hang_after_headers: bool = False  # 200 + headers, then silence
    error_first: bool = False  # stream: the format's error event first, then the end
    reset_after_chunks: int | None = None  # stream: abort the connection after N deltas
    truncate_after_chunks: int | None = None  # stream: end cleanly after N deltas, no final events
    stall_after_chunks: int | None = None  # stream: go silent after N deltas
    error_after_chunks: int | None = None  # stream: the format's error event after N deltas, then the end
    garbage_event: bool = False  # stream: a `data: not-json{` event after the first delta
    no_done: bool = False  # chat stream: omit `data: [DONE]`
    health_status: int = 200  # status of GET /v1/models
    times: int | None = None  # the faults apply to the next N requests only
    text: str | None = None  # answer text override
    cached_tokens: int = 0  # input tokens reported as read from a cache (capped at the input)
    refuse_prefill: bool = False  # a request ending in an assistant message gets a 400, as some models give
    # Output tokens to report, as a long answer would, capped at the request's max tokens as a
    # model caps its answer (the text stays short): budgets meet answers longer than reserved.
    output_tokens: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Faults:
        """A new `Faults` from healthy defaults plus `data`; raises FaultError."""
        faults = cls()
        faults.update(data)
        return faults

    def update(self, data: Mapping[str, Any]) -> None:
        """Merge `data` in place. All-or-nothing: on FaultError nothing was changed."""
        parsed = {key: _parse(key, value) for key, value in data.items()}
        for key, value in parsed.items():
            setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        """The current switches as a JSON-able dict."""
        return dataclasses.asdict(self)

    def reset(self) -> None:
        """Everything back to the healthy defaults."""
        for field in _FIELDS:
            setattr(self, field.name, field.default)

    def clear_faults(self) -> None:
        """Healthy again, but keep what is not a traffic fault (probe status, answer shape)."""
        for field in _FIELDS:
            if field.name not in _KEPT_BY_TIMES:
                setattr(self, field.name, field.default)

    def take(self) -> Faults:
        """The faults for one request. With `times` set this returns a snapshot and counts down;
        at zero the live object turns healthy, so a test can say "fail once, then work"."""
        if self.times is None:
            return self  # the common case: no copy on the hot path
        snapshot = copy.copy(self)
        self.times -= 1
        if self.times <= 0:
            self.clear_faults()
        return snapshot


_FIELDS = dataclasses.fields(Faults)
_KEPT_BY_TIMES = frozenset({"health_status", "chunks", "text", "cached_tokens", "output_tokens"})


def _number(low: float, high: float | None = None) -> Callable[[str, Any], float]:
    def parse(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FaultError(f"{key}: expected a number, got {value!r}")
        if value < low or (high is not None and value > high):
            raise FaultError(f"{key}: {value!r} is out of range")
        return float(value)

    return parse


def _integer(low: int, high: int | None = None) -> Callable[[str, Any], int]:
    def parse(key: str, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise FaultError(f"{key}: expected an integer, got {value!r}")
        if value < low or (high is not None and value > high):
            raise FaultError(f"{key}: {value!r} is out of range")
        return value

    return parse


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FaultError(f"{key}: expected true or false, got {value!r}")
    return value


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise FaultError(f"{key}: expected a string, got {value!r}")
    return value


_Parser = Callable[[str, Any], Any]
# (parser, None allowed)
PARSERS: dict[str, tuple[_Parser, bool]] = {
    "latency_ms": (_number(0), False),
    "chunk_delay_ms": (_number(0), False),
    "chunks": (_integer(1, 10_000), False),
    "fail_rate": (_number(0, 1), False),
    "status": (_integer(400, 599), True),
    "fail_status": (_integer(400, 599), False),
    "retry_after": (_number(0), True),
    "hang": (_boolean, False),
    "hang_after_headers": (_boolean, False),
    "error_first": (_boolean, False),
    "reset_after_chunks": (_integer(0), True),
    "truncate_after_chunks": (_integer(0), True),
    "stall_after_chunks": (_integer(0), True),
    "error_after_chunks": (_integer(0), True),
    "garbage_event": (_boolean, False),
    "no_done": (_boolean, False),
    "health_status": (_integer(100, 599), False),
    "times": (_integer(1), True),
    "text": (_string, True),
    "cached_tokens": (_integer(0), False),
    "refuse_prefill": (_boolean, False),
    "output_tokens": (_integer(0), True),
}
assert set(PARSERS) == {f.name for f in _FIELDS}


def _parse(key: str, value: Any) -> Any:
    try:
        parser, nullable = PARSERS[key]
    except KeyError:
        raise FaultError(f"unknown fault {key!r}; known: {', '.join(PARSERS)}") from None
    if value is None:
        if not nullable:
            raise FaultError(f"{key}: may not be null")
        return None
    return parser(key, value)
