"""What `router serve` logs when it starts: the fields of the `starting` line, the Redis URL's
password hidden, the open-endpoint warning; and the lines of a real `router serve` subprocess."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
import pytest
from structlog.testing import capture_logs

import router
from router.billing.auth import hash_key
from router.config import Config, parse_config
from router.log import mask_urls
from router.ops.startup import announce_start, open_endpoints, starting_fields
from tests.redis_server import free_port

KEY = "toc-start-" + "s" * 40
REDIS_PASSWORD = "hunter2-redis-pass"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@r.internal:6379/0", "redis://***@r.internal:6379/0"),
        ("rediss://app:s3cret@r.internal:6380/1", "rediss://***@r.internal:6380/1"),
        ("redis://s3cret@r.internal", "redis://***@r.internal"),  # a password where the user goes
        ("redis://app:pa/ss@w:rd@r.internal:6379", "redis://***@r.internal:6379"),  # unescaped / and @
        ("unix:///run/redis.sock?db=0&password=s3cret", "unix:///run/redis.sock?..."),
        ("redis://r.internal/0?Password=s3cret&x=1", "redis://r.internal/0?..."),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_the_redis_urls_password_is_hidden(url: str, shown: str) -> None:
    """The user info (password and user alike) and the query, where redis-py also reads a password."""
    assert mask_urls(url) == shown


def _config(
    state: dict[str, Any] | None = None, ledger: dict[str, Any] | None = None, server: dict[str, Any] | None = None
) -> Config:
    return parse_config(
        {
            "server": server or {},
            "state": state or {"backend": "memory"},
            "ledger": ledger or {"path": "/srv/router/usage.jsonl"},
            "providers": [
                {"name": n, "base_url": f"http://{n}.invalid", "formats": ["openai-chat"], "api_key": "sk-provider-x"}
                for n in ("a", "b")
            ],
            "models": [{"name": m, "routes": [{"provider": "a", "model": m}]} for m in ("m1", "m2", "m3")],
            "plans": [{"name": "pro", "models": ["*"]}],
            "keys": [{"id": "k", "hash": hash_key(KEY), "plan": "pro"}],
        }
    )


def test_the_starting_line_says_what_is_served_and_nothing_secret() -> None:
    config = _config(
        {"backend": "redis", "url": f"redis://app:{REDIS_PASSWORD}@r.internal:6379/0"},
        server={"metrics_token": hash_key("toc-op-metrics")},
    )
    fields = starting_fields(config, "conf/router.yaml", "::1", 8080, 4)
    assert fields == {
        "version": router.__version__,
        "listen": "http://[::1]:8080",
        "config": os.path.abspath("conf/router.yaml"),
        "providers": 2,
        "models": 3,
        "keys": 1,
        "state": "redis",
        "state_url": "redis://***@r.internal:6379/0",
        "ledger": "/srv/router/usage.jsonl",
        "metrics": "token",
        "status": "open",
        "workers": 4,
        "pid": os.getpid(),
    }
    text = str(fields)
    assert REDIS_PASSWORD not in text and "sk-provider-x" not in text and "sha256:" not in text
    memory = starting_fields(_config(ledger={"enabled": False}), "r.yaml", "127.0.0.1", 8080, 1)
    assert memory["state"] == "memory" and "state_url" not in memory and memory["ledger"] == "off"


@pytest.mark.parametrize(
    ("host", "tokens", "open_"),
    [
        ("127.0.0.1", {}, []),
        ("localhost", {}, []),
        ("::1", {}, []),
        ("0.0.0.0", {}, ["/metrics", "/status.json"]),
        ("10.0.0.5", {"metrics_token": hash_key("toc-op-m")}, ["/status.json"]),
        ("router.internal", {"metrics_token": hash_key("toc-op-m"), "admin_token": hash_key("toc-op-a")}, []),
    ],
)
def test_open_operator_endpoints_off_loopback_are_warned(host: str, tokens: dict[str, str], open_: list[str]) -> None:
    config = _config(server=tokens)
    assert open_endpoints(config, host) == open_
    with capture_logs() as logs:
        announce_start(config, "r.yaml", host, 8080, 1)
    assert [e["event"] for e in logs] == ["starting"] + (["operator_endpoints_open"] if open_ else [])
    assert all(e.get("endpoints", open_) == open_ for e in logs)


def _lines(stream: IO[bytes], into: queue.Queue[dict[str, Any] | None]) -> None:
    for raw in stream:
        try:
            into.put(orjson.loads(raw))
        except orjson.JSONDecodeError:
            into.put({"event": "not json", "raw": raw.decode(errors="replace")})
    into.put(None)


def test_router_serve_logs_starting_then_serving(tmp_path: Path) -> None:
    """A real `router serve` (a subprocess, JSON lines on its stderr): `starting` with the fields,
    the Redis password hidden, then `serving` from the worker, when its port already answers."""
    port = free_port()
    config = tmp_path / "router.yaml"
    config.write_text(
        f"server: {{host: 127.0.0.1, port: {port}, drain_grace_s: 0}}\n"
        # Never connected to while no request comes: the URL only has to be shown.
        f"state: {{backend: redis, url: 'redis://:{REDIS_PASSWORD}@127.0.0.1:9/0'}}\n"
        f"ledger: {{path: '{tmp_path / 'usage.jsonl'}'}}\n"
        "log: {format: json}\n"
        "providers:\n  - {name: a, base_url: 'http://127.0.0.1:9', formats: [openai-chat], health: {enabled: false}}\n"
        "models:\n  - {name: m, routes: [{provider: a, model: m}]}\n"
        "plans:\n  - {name: pro, models: ['*']}\n"
        f"keys:\n  - {{id: acme, hash: '{hash_key(KEY)}', plan: pro}}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--config", str(config)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True)
    reader.start()
    seen: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 15
        while not seen or seen[-1]["event"] != "serving":
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"router serve exited before serving: {seen}"
            seen.append(line)
        assert httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        proc.stderr.close()
    [starting] = [e for e in seen if e["event"] == "starting"]
    assert starting["level"] == "info" and starting["listen"] == f"http://127.0.0.1:{port}"
    assert starting["config"] == str(config) and starting["version"] == router.__version__
    assert (starting["providers"], starting["models"], starting["keys"], starting["workers"]) == (1, 1, 1, 1)
    assert starting["state"] == "redis" and starting["state_url"] == "redis://***@127.0.0.1:9/0"
    assert starting["ledger"] == str(tmp_path / "usage.jsonl")
    assert seen[-1]["pid"] == starting["pid"] == proc.pid, "one worker: the process itself"
    assert REDIS_PASSWORD not in str(seen) and KEY not in str(seen)
