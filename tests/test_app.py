"""Tests for router.app: the HTTP health probe (over httpx.MockTransport), readiness, and the
uvicorn factory `app_from_env`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from router.app import Readiness, app_from_env, http_probe
from router.clock import ManualClock
from router.config import HealthConfig, ProviderConfig, parse_config
from router.routing.pool import Pool
from router.routing.table import RoutingTable


def _provider(**kw: Any) -> ProviderConfig:
    base: dict[str, Any] = {
        "name": "p",
        "base_url": "http://p.invalid",
        "formats": ("openai-chat",),
        "api_key": "sk-probe-key",
    }
    return ProviderConfig(**{**base, **kw})


async def _probe(cfg: ProviderConfig, handler: Any) -> bool:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await http_probe(cfg, client)()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "healthy"),
    [(200, True), (204, True), (301, True), (429, True), (401, False), (404, False), (500, False), (503, False)],
)
async def test_probe_status(status: int, healthy: bool) -> None:
    """Below 400 is healthy, and so is 429 (rate limited is up); any other error status is down."""
    assert await _probe(_provider(), lambda req: httpx.Response(status)) is healthy


@pytest.mark.anyio
async def test_probe_request_shape() -> None:
    """The probe uses the configured method and path with the provider's credentials."""
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200)

    cfg = _provider(health=HealthConfig(method="HEAD", path="/status"))
    assert await _probe(cfg, handler)
    [req] = seen
    assert req.method == "HEAD" and str(req.url) == "http://p.invalid/status"
    assert req.headers["authorization"] == "Bearer sk-probe-key"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "exc", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("bad")]
)
async def test_probe_transport_errors_are_down(exc: Exception) -> None:
    """A connection error or a timeout is an unhealthy probe, not an exception."""

    def handler(req: httpx.Request) -> httpx.Response:
        raise exc

    assert await _probe(_provider(), handler) is False


def _pool(probe_b: bool = True) -> Pool:
    config = parse_config(
        {
            "server": {"allow_anonymous": True},
            "providers": [
                {"name": "a", "base_url": "http://a.invalid", "formats": ["openai-chat"]},
                {
                    "name": "b",
                    "base_url": "http://b.invalid",
                    "formats": ["openai-chat"],
                    "health": {"enabled": probe_b},
                },
            ],
            "models": [{"name": "m", "routes": [{"provider": "a", "model": "x"}, {"provider": "b", "model": "x"}]}],
        }
    )
    return Pool(RoutingTable(config), ManualClock(), 10.0)


def test_readiness_waits_for_every_probed_provider() -> None:
    """Not ready until each probe-enabled provider has had its first probe; then ready if one is up."""
    pool = _pool()
    ready = Readiness(pool)
    assert not ready()
    pool.providers["a"].health.record(False)
    pool.providers["a"].health.record(False)
    assert not ready()
    pool.providers["b"].health.record(True)
    assert ready()
    pool.providers["b"].health.record(False)
    pool.providers["b"].health.record(False)
    assert not ready()


def test_readiness_ignores_unprobed_providers_first_round() -> None:
    """A provider with probes disabled does not hold readiness back (and counts as healthy)."""
    pool = _pool(probe_b=False)
    ready = Readiness(pool)
    assert not ready()
    pool.providers["a"].health.record(False)
    pool.providers["a"].health.record(False)
    assert ready()


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
