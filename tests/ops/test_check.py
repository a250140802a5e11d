"""Tests for router.ops.check: the /v1 warnings and the probe table (pure; the probes themselves
run against a live fake in tests/test_cli.py)."""

from __future__ import annotations

from router.config import parse_config
from router.ops.check import ProbeRow, base_url_warnings, probe_table
from router.upstream.probe import ProbeResult


def test_base_url_warnings_name_the_url_a_request_will_go_to() -> None:
    """Only a base_url ending in /v1; the path is the provider's first format's."""
    config = parse_config(
        {
            "server": {"allow_anonymous": True},
            "providers": [
                {"name": "a", "base_url": "https://a.example/api", "formats": ["openai-chat"]},
                {"name": "b", "base_url": "https://u:p@b.example/v1", "formats": ["anthropic-messages"]},
                {"name": "c", "base_url": "https://c.example/v1x", "formats": ["openai-chat"]},
            ],
            "models": [{"name": "m", "routes": [{"provider": "a", "model": "m"}]}],
        }
    )
    assert base_url_warnings(config) == [
        "providers[1].base_url ends in /v1: requests will go to https://***@b.example/v1/v1/messages"
    ]


def test_probe_table_fails_on_any_failed_probe_and_skips_disabled_ones() -> None:
    up = ProbeRow("a", "http://a/v1/models", ProbeResult(True, "status 429", 429, 0.01234))
    off = ProbeRow("c", "http://c/v1/models", None)
    down = ProbeRow("b", "http://b/v1/models", ProbeResult(False, "timeout after 2.0s", None, 2.0))
    ok, lines = probe_table([up, off])
    assert ok and lines[1].split() == ["a", "http://a/v1/models", "yes", "429", "12.3", "status", "429"]
    assert lines[2].split()[:5] == ["c", "http://c/v1/models", "-", "-", "-"]
    ok, lines = probe_table([up, down])
    assert not ok and lines[2].split() == ["b", "http://b/v1/models", "no", "-", "2000.0", "timeout", "after", "2.0s"]


def test_probe_table_columns_fit_a_long_provider_name_and_url() -> None:
    """Each column is as wide as its longest entry: a long name or URL pushes the next columns
    along in every row alike, so the reachable column starts at one offset on each line."""
    long_url = "https://gateway.example.internal/tenants/acme-production-eu-west/openai/v1/models"
    rows = [
        ProbeRow("a", "http://a/v1/models", ProbeResult(True, "status 200", 200, 0.01)),
        ProbeRow("a-very-long-provider-name-for-eu", long_url, ProbeResult(False, "status 503", 503, 0.02)),
        ProbeRow("c", "http://c/v1/models", None),
    ]
    _, lines = probe_table(rows)
    starts = {line.index(word) for line, word in zip(lines, ["reachable", "yes", "no", "-"], strict=True)}
    assert starts == {len("a-very-long-provider-name-for-eu") + 2 + len(long_url) + 2}
    assert lines[2].split()[:2] == ["a-very-long-provider-name-for-eu", long_url]
