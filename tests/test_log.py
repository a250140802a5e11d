"""Tests for router.log: the redaction processor, and that a logger configured by `configure()`
never writes a client key (toc-...), a provider secret (sk-...) or a Bearer token."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog
from structlog.testing import capture_logs

from router.log import configure, mask_urls, outside_request, redact

CLIENT_KEY = "toc-AbCdEf0123456789"
PROVIDER_KEY = "sk-proj-Zz9_Yy8-Xx7Ww6"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.payload.sig"
SECRETS = (CLIENT_KEY, PROVIDER_KEY, TOKEN)


def _assert_clean(text: str) -> None:
    for s in (*SECRETS, "toc-", "sk-", "Bearer "):
        assert s not in text, f"{s!r} leaked into: {text}"


def test_redact_secret_named_fields() -> None:
    """Fields named like credentials are replaced whatever their value or name case."""
    event = {"event": "x", "Authorization": "anything", "X-API-KEY": 1, "api_key": None, "token": "t", "password": "p"}
    out = redact(None, "info", dict(event))
    assert out == {"event": "x", **{k: "[redacted]" for k in event if k != "event"}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"client used {CLIENT_KEY} today", "client used [redacted] today"),
        (f"upstream key {PROVIDER_KEY}", "upstream key [redacted]"),
        ("sk-ant-api03-abcdefghij", "[redacted]"),
        (f"header Bearer {TOKEN} sent", "header [redacted] sent"),
        (f"{CLIENT_KEY},{PROVIDER_KEY}", "[redacted],[redacted]"),
        ("plain message", "plain message"),
        ("task-12 and desk-lamp", "task-12 and desk-lamp"),
    ],
)
def test_redact_masks_key_shaped_substrings(value: str, expected: str) -> None:
    """Key-shaped substrings inside any string field (the event too) are masked; the rest stays."""
    out = redact(None, "info", {"event": value, "detail": value})
    assert out == {"event": expected, "detail": expected}


def test_redact_leaves_non_strings_alone() -> None:
    """Numbers, booleans and None in non-secret fields pass untouched."""
    event = {"event": "e", "status": 200, "ok": True, "model": None, "ttfb_ms": 1.5}
    assert redact(None, "info", dict(event)) == event


def test_capture_logs_through_redact() -> None:
    """A router-style log call run through redact (as configure installs it) carries no secret."""
    with capture_logs(processors=[redact]) as logs:
        structlog.get_logger("router.test").warning(
            f"request failed for Bearer {TOKEN}",
            authorization=f"Bearer {CLIENT_KEY}",
            message=f"upstream said: invalid key {PROVIDER_KEY}",
            key=CLIENT_KEY,
            provider="alpha",
        )
    assert len(logs) == 1
    entry = logs[0]
    assert entry["provider"] == "alpha" and entry["log_level"] == "warning"
    assert entry["authorization"] == "[redacted]" and entry["key"] == "[redacted]"
    _assert_clean(repr(entry))


class _Stream(io.TextIOWrapper):
    """A text stream over bytes, like stderr, that says whether it is a terminal."""

    def __init__(self, tty: bool = False) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", write_through=True)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty

    def text(self) -> str:
        self.flush()
        raw = self.buffer
        assert isinstance(raw, io.BytesIO)
        return raw.getvalue().decode()


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Stand-in stderr factory; structlog is reset to its defaults afterwards."""

    def make(tty: bool = False) -> _Stream:
        stream = _Stream(tty)
        monkeypatch.setattr(sys, "stderr", stream)
        return stream

    try:
        yield make
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def _emit_secrets(log: Any) -> None:
    log.info("request", authorization=f"Bearer {CLIENT_KEY}", path="/v1/chat/completions")
    log.warning("request_failed", message=f"provider rejected {PROVIDER_KEY}", code="upstream_status")
    log.info(f"raw header was Bearer {TOKEN}", api_key=PROVIDER_KEY)
    try:
        raise ValueError(f"bad key {CLIENT_KEY}")
    except ValueError:
        log.exception("internal_error")


def test_json_output_is_redacted_and_carries_context(stderr: Any) -> None:
    """JSON lines (off a terminal): one object per call, context merged, no secret anywhere."""
    stream = stderr(tty=False)
    configure("info", "auto", cache=False)
    structlog.contextvars.bind_contextvars(request_id="rid-42")
    _emit_secrets(structlog.get_logger("router.test"))
    text = stream.text()
    _assert_clean(text)
    lines = [orjson.loads(line) for line in text.splitlines()]
    assert [e["event"] for e in lines] == ["request", "request_failed", "raw header was [redacted]", "internal_error"]
    assert all(e["request_id"] == "rid-42" and "timestamp" in e for e in lines)
    assert [e["level"] for e in lines] == ["info", "warning", "info", "error"]
    assert "ValueError: bad key [redacted]" in lines[3]["exception"]


def test_console_output_is_redacted(stderr: Any) -> None:
    """The console renderer (on a terminal, or format=console) is redacted too."""
    for tty, fmt in ((True, "auto"), (False, "console")):
        stream = stderr(tty=tty)
        configure("info", fmt, cache=False)
        _emit_secrets(structlog.get_logger("router.test"))
        text = stream.text()
        assert "request_failed" in text and "ValueError" in text
        _assert_clean(text)
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(text.splitlines()[0])


@pytest.mark.parametrize(
    ("tty", "fmt", "no_color", "coloured"),
    [
        (True, "auto", None, True),
        (True, "console", "1", False),  # NO_COLOR, on a terminal
        (True, "auto", "", True),  # set but empty: ignored (no-color.org)
        (False, "console", None, False),  # console lines into a file or a pipe
    ],
)
def test_console_colours_only_on_a_terminal_without_no_color(
    stderr: Any, monkeypatch: pytest.MonkeyPatch, tty: bool, fmt: str, no_color: str | None, coloured: bool
) -> None:
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    stream = stderr(tty=tty)
    configure("info", fmt, cache=False)
    structlog.get_logger().warning("breaker_state_changed", route="fast/m")
    text = stream.text()
    assert "breaker_state_changed" in text and "fast/m" in text
    assert ("\x1b[" in text) == coloured


def test_json_format_even_on_a_terminal(stderr: Any) -> None:
    """format=json forces JSON lines on a terminal."""
    stream = stderr(tty=True)
    configure("info", "json", cache=False)
    structlog.get_logger().info("hello", n=1)
    assert orjson.loads(stream.text())["n"] == 1


@pytest.mark.parametrize(
    ("level", "shown"), [("warning", ["w", "e"]), ("debug", ["d", "i", "w", "e"]), ("verbose", ["i", "w", "e"])]
)
def test_level_filters(stderr: Any, level: str, shown: list[str]) -> None:
    """The configured level filters lower ones; an unknown level name means info."""
    stream = stderr()
    configure(level, "json", cache=False)
    log = structlog.get_logger()
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [orjson.loads(line)["event"] for line in stream.text().splitlines()] == shown


def test_redact_reaches_into_containers() -> None:
    """A secret nested in a logged dict or list is masked as well."""
    out = redact(
        None, "info", {"event": "e", "headers": {"authorization": f"Bearer {CLIENT_KEY}"}, "keys": [PROVIDER_KEY]}
    )
    _assert_clean(repr(out))


def test_redact_lower_case_bearer() -> None:
    """`bearer <token>` (schemes are case-insensitive, RFC 9110 11.1) is masked like `Bearer`."""
    assert TOKEN not in redact(None, "info", {"event": f"auth: bearer {TOKEN}"})["event"]


def test_the_access_lines_key_id_survives_redaction() -> None:
    """The access line names the client key by its id under `key_id`, which is not a secret."""
    from router.types import AccessRecord

    record = AccessRecord(request_id="r", method="POST", path="/v1/messages")
    record.key_id = "acme-prod"
    out = redact(None, "info", {"event": "request", **record.fields()})
    assert out["key_id"] == "acme-prod"


def test_outside_request_drops_the_request_context() -> None:
    """A line about the router's own state carries no request id, even inside a request."""
    log = structlog.get_logger("test")
    merge = [structlog.contextvars.merge_contextvars]
    with capture_logs(processors=merge) as logs, structlog.contextvars.bound_contextvars(request_id="r-1"):
        outside_request(log.info, "flip", route="a")
        log.info("own")
    assert logs[0] == {"event": "flip", "route": "a", "log_level": "info"}
    assert logs[1]["request_id"] == "r-1"


def test_mask_urls_in_free_text() -> None:
    """Each URL's user info and query are masked, the rest of the text and URLs without either kept."""
    text = "to https://u:p@a.example/v1?key=k and redis://h:1/0, then done? yes"
    assert mask_urls(text) == "to https://***@a.example/v1?... and redis://h:1/0, then done? yes"
    assert mask_urls("no url here") == "no url here"
