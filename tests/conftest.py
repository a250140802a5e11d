"""Shared fixtures, kept few: fake providers on real loopback sockets, a config factory, a
router server started on a real socket from a config, and a real redis-server.

Also two session-wide rules: log lines stay inside pytest's capture (`_quiet_logs`), and the
suite writes nothing into the repository (`pytest_sessionfinish` fails the run if it did)."""

from __future__ import annotations

import logging
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

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
REPO = Path(__file__).resolve().parent.parent
# Written by tools, not by the code under test.
_NOT_OURS = frozenset({".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"})
_REPO_FILES = pytest.StashKey[dict[str, tuple[int, int]]]()
_TOUCHED = pytest.StashKey[str]()


def _repo_files() -> dict[str, tuple[int, int]]:
    """Every file of the checkout with its (mtime, size), tools' caches left out."""
    files: dict[str, tuple[int, int]] = {}
    for root, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in _NOT_OURS]
        for name in names:
            path = os.path.join(root, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            files[os.path.relpath(path, REPO)] = (st.st_mtime_ns, st.st_size)
    return files


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_REPO_FILES] = _repo_files()


def _tracked() -> frozenset[str]:
    """The files git tracks: edits to them while the suite runs are the developer's (or
    UPDATE_GOLDEN's), not a test's stray write. Without git, nothing counts as tracked."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(p for p in out.stdout.decode(errors="replace").split("\0") if p)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a test created or deleted a file of the repository, or changed one git
    does not track (a ledger left under var/, a cache): tests write under tmp_path."""
    before, after = session.config.stash[_REPO_FILES], _repo_files()
    tracked = _tracked()
    touched = sorted(
        p
        for p in before.keys() | after.keys()
        if before.get(p) != after.get(p) and not (p in tracked and p in before and p in after)
    )
    if touched:
        shown = "\n  ".join(touched[:20])
        session.config.stash[_TOUCHED] = f"the test suite wrote into the repository ({REPO}):\n  {shown}"
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _TOUCHED in config.stash:
        terminalreporter.write_line(config.stash[_TOUCHED], red=True, bold=True)


def _route_logs_through_logging() -> None:
    """structlog's default prints to the stdout of the moment, so a line logged by a server
    thread between two tests lands in pytest's progress output. Through the logging module
    instead: pytest captures it per test (shown with a failure), and between tests nothing prints."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


# Between tests no capture handler is attached: without a handler of its own, logging would print
# warnings on stderr (its "last resort").
logging.getLogger().addHandler(logging.NullHandler())


@pytest.fixture(autouse=True)
def _quiet_logs() -> Iterator[None]:
    """Before each test and after it (a test may reset structlog to its defaults, or configure it
    for itself with `router.log.configure`)."""
    _route_logs_through_logging()
    yield
    _route_logs_through_logging()


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
def config_factory(_fake_servers: Fakes, tmp_path: Path) -> ConfigFactory:
    """A Config for the fake providers: `routes` maps a model to [(provider, priority), ...].

    Anonymous access is on unless `server={"allow_anonymous": False}`; `plans`, `keys`, `state`
    and `ledger` are passed through as given (the ledger defaults to a file under tmp_path, not
    the product's var/usage.jsonl in the working directory), `prices` maps a model name to its price, and
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
        ledger = ledger if ledger is not None else {"path": str(tmp_path / "usage.jsonl")}
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

    def start(config: Config, clock: Clock | None = None, wait_ready: bool = True, **app_options: Any) -> RouterServer:
        app = create_app(config, clock=clock, rng=random.Random(7), **app_options)
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
