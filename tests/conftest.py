"""Shared fixtures, kept few: fake providers on real loopback sockets, a config factory, a
router server started on a real socket from a config, and a real redis-server."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

# Hypothesis keeps a cache in the working directory unless told otherwise: tests write only
# under temporary directories. Set before any test module imports hypothesis.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "router-hypothesis"))

from router.app import create_app
from router.clock import Clock
from router.config import Config, parse_config
from router.fake_upstream.server import RunningServer, start_in_thread
from router.ops.threaded import ThreadedServer
from tests.redis_server import RedisServer, free_port

FAKE_NAMES = ("alpha", "beta", "gamma")
ALL_FORMATS = ["openai-chat", "anthropic-messages", "openai-responses"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Fakes(dict[str, RunningServer]):
    """The session's fake providers, by name, with helpers to steer them."""

    def set(self, name: str, **faults: Any) -> None:
        r = httpx.post(f"{self[name].url}/_admin/faults", json=faults, timeout=5)
        assert r.status_code == 200, r.text

    def stats(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self[name].url}/_admin/stats", timeout=5).json()
        return data

    def last(self, name: str, path: str) -> Any:
        """The last body this provider received on `path` (None if none came)."""
        r = httpx.get(f"{self[name].url}/_admin/last", params={"path": path}, timeout=5)
        return r.json() if r.status_code == 200 else None

    def served(self, name: str) -> int:
        """Completion requests this provider received (any of the three paths)."""
        reqs = self.stats(name)["requests"]
        return sum(v for k, v in reqs.items() if k.startswith("/v1/") and k != "/v1/models")


@pytest.fixture(scope="session")
def _fake_servers() -> Iterator[Fakes]:
    fakes = Fakes({name: start_in_thread(name) for name in FAKE_NAMES})
    yield fakes
    for server in fakes.values():
        server.stop()


@pytest.fixture
def fakes(_fake_servers: Fakes) -> Fakes:
    """Fake providers, reset to healthy before each test."""
    for server in _fake_servers.values():
        httpx.post(f"{server.url}/_admin/reset", timeout=5).raise_for_status()
    return _fake_servers


ConfigFactory = Callable[..., Config]


@pytest.fixture
def config_factory(_fake_servers: Fakes) -> ConfigFactory:
    """A Config for the fake providers: `routes` maps a model to [(provider, priority), ...].

    Anonymous access is on unless `server={"allow_anonymous": False}`; `plans`, `keys`, `state`
    and `ledger` are passed through as given, `prices` maps a model name to its price, and
    `formats` a fake's name to the formats it is configured to speak (default: all three), and
    `route_options` a fake's name to extra keys of its routes (thinking, drop_params, ...),
    `provider_options` a fake's name to extra keys of its provider entry.
    """

    def make(
        routes: dict[str, list[tuple[str, int]]] | None = None,
        timeouts: dict[str, float] | None = None,
        health: dict[str, Any] | None = None,
        breaker: dict[str, Any] | None = None,
        routing: dict[str, Any] | None = None,
        extra_providers: list[dict[str, Any]] | None = None,
        models_extra: dict[str, dict[str, Any]] | None = None,
        server: dict[str, Any] | None = None,
        plans: list[dict[str, Any]] | None = None,
        keys: list[dict[str, Any]] | None = None,
        state: dict[str, Any] | None = None,
        ledger: dict[str, Any] | None = None,
        prices: dict[str, dict[str, Any]] | None = None,
        formats: dict[str, list[str]] | None = None,
        route_options: dict[str, dict[str, Any]] | None = None,
        provider_options: dict[str, dict[str, Any]] | None = None,
    ) -> Config:
        routes = routes or {"m": [("alpha", 0), ("beta", 0)]}
        providers = [
            {
                "name": name,
                "base_url": server_.url,
                "formats": (formats or {}).get(name, ALL_FORMATS),
                "api_key": f"provider-key-{name}",
                "timeouts": {"connect_s": 1, "first_token_s": 2, "idle_s": 2, "total_s": 10, **(timeouts or {})},
                "health": {"interval_s": 30, "timeout_s": 1, **(health or {})},
                "breaker": {"fail_max": 3, "reset_timeout_s": 30, **(breaker or {})},
                **(provider_options or {}).get(name, {}),
            }
            for name, server_ in _fake_servers.items()
        ] + (extra_providers or [])
        models = [
            {
                "name": model,
                "routes": [
                    {"provider": p, "model": f"{p}-{model}", "priority": prio, **(route_options or {}).get(p, {})}
                    for p, prio in rs
                ],
                **({"price": prices[model]} if prices and model in prices else {}),
                **((models_extra or {}).get(model, {})),
            }
            for model, rs in routes.items()
        ]
        data: dict[str, Any] = {
            "server": {"max_body_bytes": 65536, "allow_anonymous": True, **(server or {})},
            "routing": {"backoff_min_s": 0.001, "backoff_max_s": 0.005, **(routing or {})},
            "providers": providers,
            "models": models,
        }
        for key, value in (("plans", plans), ("keys", keys), ("state", state), ("ledger", ledger)):
            if value is not None:
                data[key] = value
        return parse_config(data, source="test")

    return make


class RouterServer:
    def __init__(self, server: ThreadedServer, app: Any) -> None:
        self.server = server
        self.app = app
        self.url = server.url
        self.client = httpx.Client(base_url=server.url, timeout=10)

    def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.client.post(path, json=json, **kw)

    def ready(self) -> httpx.Response:
        return self.client.get("/health/ready")

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition not reached in time"
            time.sleep(0.02)


@pytest.fixture
def router_server(fakes: Fakes) -> Iterator[Callable[..., RouterServer]]:
    """Start the router on a real socket; waits until /health/ready says ready."""
    started: list[RouterServer] = []

    def start(config: Config, clock: Clock | None = None, wait_ready: bool = True) -> RouterServer:
        app = create_app(config, clock=clock, rng=random.Random(7))
        rs = RouterServer(ThreadedServer(app, limits=config.server).start(), app)
        started.append(rs)
        if wait_ready:
            rs.wait_until(lambda: rs.ready().status_code == 200)
        return rs

    yield start
    for rs in started:
        rs.client.close()
        rs.server.stop()


CHAT: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC: dict[str, Any] = {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
RESPONSES: dict[str, Any] = {"model": "m", "input": "hi"}
BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": CHAT,
    "/v1/messages": ANTHROPIC,
    "/v1/responses": RESPONSES,
}


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A running redis-server; a test that stops it must start it again before it ends."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not on PATH: install it (apt-get install redis-server); Redis state tests need it")
    server = RedisServer(binary, free_port())
    server.start()
    yield server
    server.stop()
