"""structlog configuration, done once: JSON lines (orjson) off a terminal, readable console
output on one, and a redaction processor so that no key or secret reaches a log line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_SECRET_FIELDS = frozenset({"authorization", "x-api-key", "api_key", "api-key", "key", "password", "secret", "token"})
# Client keys (toc-...), OpenAI/Anthropic style keys and bearer tokens, wherever they hide in a
# string. The lookbehind keeps words like "risk-assessment" intact.
_SECRET_RE = re.compile(
    r"(?<![A-Za-z0-9])(toc-[A-Za-z0-9_\-]{6,}|sk-[A-Za-z0-9_\-]{6,})|(?i:bearer)\s+\S+"
)
_HINTS = ("toc-", "sk-", "earer")  # a cheap pre-check before the regex, on the hot path


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_RE.sub("[redacted]", value) if any(h in value for h in _HINTS) else value
    if isinstance(value, dict):
        return {k: "[redacted]" if str(k).lower() in _SECRET_FIELDS else _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop secret-named fields and mask key-shaped substrings, also inside dicts and lists."""
    for name, value in event.items():
        if name.lower() in _SECRET_FIELDS:
            event[name] = "[redacted]"
        elif isinstance(value, (str, dict, list, tuple)):
            event[name] = _clean(value)
    return event


def configure(level: str = "info", fmt: str = "auto", cache: bool = True) -> None:
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    if console:
        processors.append(structlog.dev.ConsoleRenderer())
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
