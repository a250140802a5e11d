"""structlog configuration, done once: JSON lines (orjson) off a terminal, readable console
output on one (coloured only on a terminal, and never with NO_COLOR set), and a redaction
processor so that no key or secret reaches a log line."""

from __future__ import annotations

import contextvars
import datetime
import logging
import os
import re
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import orjson
import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_SECRET_FIELDS = frozenset({"authorization", "x-api-key", "api_key", "api-key", "key", "password", "secret", "token"})
# Client keys (toc-...), OpenAI/Anthropic style keys and bearer tokens, wherever they hide in a
# string. The lookbehind keeps words like "risk-assessment" intact.
SECRET_RE = re.compile(r"(?<![A-Za-z0-9])(toc-[A-Za-z0-9_\-]{6,}|sk-[A-Za-z0-9_\-]{6,})|(?i:bearer)\s+\S+")

# A URL in free text: its user info runs to the last "@" of the word (a password may hold an
# unescaped "@" or "/"), its query (and fragment) to the word's end.
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>\S*@)?(?P<rest>[^\s?]*)(?P<query>\?\S*)?")


def mask_urls(text: str) -> str:
    """Each URL in `text` with its user info as `***@` and its query as `?...`: either may carry
    a credential (a Redis password, an API key in `?key=`). The one masking of URLs for logs,
    pages and errors."""
    return _URL.sub(_mask, text) if "://" in text else text


def _mask(m: re.Match[str]) -> str:
    return f"{m['scheme']}{'***@' if m['userinfo'] else ''}{m['rest']}{'?...' if m['query'] else ''}"


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        # The substrings every match contains ("toc-", "sk-", "[Bb]earer"): a cheap pre-check
        # before the regex, since every field of every access line comes through here.
        if "toc-" in value or "sk-" in value or "earer" in value:
            return SECRET_RE.sub("[redacted]", value)
        return value
    if isinstance(value, dict):
        return {k: "[redacted]" if str(k).lower() in _SECRET_FIELDS else _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop secret-named fields and mask key-shaped substrings, also inside dicts and lists."""
    for name, value in event.items():
        if name in _SECRET_FIELDS or (not name.islower() and name.lower() in _SECRET_FIELDS):
            event[name] = "[redacted]"
        elif isinstance(value, (str, dict, list, tuple)):
            cleaned = _clean(value)
            if cleaned is not value:
                event[name] = cleaned
    return event


class _UtcTimestamp:
    """structlog's TimeStamper(fmt="iso", utc=True), same text ("2026-11-25T10:00:00.123456Z"),
    with the date and time formatted once per second rather than per line."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        now = time.time()
        second = int(now)
        micros = round((now - second) * 1_000_000)
        if micros == 1_000_000:
            second, micros = second + 1, 0
        if second != self._second:
            when = datetime.datetime.fromtimestamp(second, datetime.UTC)
            self._prefix = when.replace(tzinfo=None).isoformat()
            self._second = second
        # isoformat() leaves the fraction out when it is zero.
        event["timestamp"] = f"{self._prefix}.{micros:06d}Z" if micros else f"{self._prefix}Z"
        return event


def outside_request(emit: Callable[..., Any], event: str, **fields: Any) -> None:
    """Log `event` without the current request's context (its request id): for lines about the
    router's own state (a breaker flipping), which a request only happens to notice."""
    contextvars.Context().run(emit, event, **fields)


def configure(level: str = "info", fmt: str = "auto", cache: bool = True) -> None:
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _UtcTimestamp(),
        structlog.processors.format_exc_info,
        redact,
    ]
    if console:
        # `format: console` into a file or a pipe stays free of escape codes; no-color.org's
        # NO_COLOR (set and not empty) turns them off on a terminal too.
        colors = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
        processors.append(structlog.dev.ConsoleRenderer(colors=colors))
        factory: Any = structlog.PrintLoggerFactory(sys.stderr)
    else:
        processors.append(structlog.processors.JSONRenderer(serializer=orjson.dumps))
        factory = structlog.BytesLoggerFactory(sys.stderr.buffer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=factory,
        cache_logger_on_first_use=cache,
    )
