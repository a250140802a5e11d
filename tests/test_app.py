"""Tests for router.app: the uvicorn factory `app_from_env`. (The probe is tested in
tests/upstream/test_probe.py, readiness in tests/ops/test_readiness.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from router.app import app_from_env


def test_app_from_env_reads_the_config_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ROUTER_CONFIG names the YAML file; the app is built from it with its models and pool."""
    path = tmp_path / "router.yaml"
    path.write_text(
        "providers:\n  - {name: a, base_url: 'http://a.invalid', formats: [openai-chat], api_key: '${KEY_A}'}\n"
        "models:\n  - {name: m, routes: [{provider: a, model: a-m}]}\n"
        "log: {level: warning, format: json}\nserver: {allow_anonymous: true}\n"
        f"ledger: {{path: '{tmp_path / 'usage.jsonl'}'}}\n"
    )
    monkeypatch.setenv("ROUTER_CONFIG", str(path))
    monkeypatch.setenv("KEY_A", "sk-from-env")
    try:
        app = app_from_env()
    finally:
        structlog.reset_defaults()
    assert app.state.runtime.config.provider("a").api_key == "sk-from-env"
    assert list(app.state.runtime.pool.routes) == ["a/a-m"]
