"""Operating the router: `router serve` in a real subprocess stopped with SIGTERM (drain) and
reloaded with SIGHUP, and /metrics after real traffic, parsed with prometheus-client's parser."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from router.billing.auth import hash_key
from router.config import load_config
from tests.conftest import CHAT
from tests.redis_server import free_port

KEY = "toc-ops-" + "o" * 40
AUTH = {"authorization": f"Bearer {KEY}"}


def write_config(path: Path, fakes: Any, providers: list[str], ledger: Path, port: int, **server: Any) -> None:
    server_yaml = ", ".join(f"{k}: {v}" for k, v in {"host": "127.0.0.1", "port": port, **server}.items())
    lines = [f"server: {{{server_yaml}}}", f"ledger: {{path: '{ledger}'}}", "providers:"]
    for name in providers:
        lines.append(
            f"  - {{name: {name}, base_url: '{fakes[name].url}', formats: [openai-chat],"
            " health: {interval_s: 30, timeout_s: 1}}"
        )
    routes = ", ".join(f"{{provider: {n}, model: {n}-m}}" for n in providers)
    lines += [
        "models:",
        f"  - {{name: m, routes: [{routes}], price: {{input_per_mtok: 1, output_per_mtok: 2}}}}",
        "plans:",
        "  - {name: pro, models: ['*']}",
        "keys:",
        f"  - {{id: ops, hash: '{hash_key(KEY)}', plan: pro}}",
    ]
    path.write_text("\n".join(lines) + "\n")


class Serve:
    """`python -m router serve` on a free port; stderr (the JSON log) kept for the test."""

    def __init__(self, config: Path, port: int, log: Path, workers: int = 1) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self._log = log.open("wb")
        self.log_path = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "router", "serve", "--config", str(config), "--workers", str(workers)],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            start_new_session=True,  # stop() kills the group: workers too, not orphaned holding Redis
        )
        deadline = time.monotonic() + 15 + 5 * workers
        try:
            while not self.ready():
                assert self.proc.poll() is None, self.log()
                assert time.monotonic() < deadline, "router did not become ready"
                time.sleep(0.05)
        except BaseException:
            self.stop()  # not yet in the fixture's list: stop the process and close the log here
            raise

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base}/health/ready", timeout=0.5).status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the parent and its workers
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._log.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Serve] = []

    def start(config: Path, port: int, workers: int = 1) -> Serve:
        s = Serve(config, port, tmp_path / f"router-{len(started)}.log", workers)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def test_sigterm_drains_a_stream_then_exits_0(fakes, tmp_path, serve):
    """Readiness turns 503 at once; the stream in flight completes; exit 0; the ledger has it."""
    fakes.set("alpha", chunks=10, chunk_delay_ms=100)
    port, ledger = free_port(), tmp_path / "usage.jsonl"
    write_config(tmp_path / "r.yaml", fakes, ["alpha"], ledger, port, drain_grace_s=0.3, drain_timeout_s=10)
    s = serve(tmp_path / "r.yaml", port)
    with httpx.Client(base_url=s.base, headers=AUTH, timeout=10) as client:
        with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as stream:
            lines = stream.iter_lines()
            assert next(lines).startswith("data: ")
            s.proc.send_signal(signal.SIGTERM)
            time.sleep(0.1)
            assert httpx.get(f"{s.base}/health/ready", timeout=2).status_code == 503, "not ready while draining"
            rest = list(lines)
    assert "data: [DONE]" in rest
    assert s.proc.wait(timeout=15) == 0
    [record] = [orjson.loads(x) for x in ledger.read_bytes().splitlines()]
    assert record["status"] == 200 and record["output_tokens"] > 0


def test_drain_timeout_ends_open_streams_with_an_error_event(fakes, tmp_path, serve):
    fakes.set("alpha", chunks=50, chunk_delay_ms=200)
    port = free_port()
    write_config(
        tmp_path / "r.yaml", fakes, ["alpha"], tmp_path / "u.jsonl", port, drain_grace_s=0.1, drain_timeout_s=0.5
    )
    s = serve(tmp_path / "r.yaml", port)
    with httpx.Client(base_url=s.base, headers=AUTH, timeout=15) as client:
        with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as stream:
            lines = stream.iter_lines()
            next(lines)
            s.proc.send_signal(signal.SIGTERM)
            rest = [x for x in lines if x]
    assert rest[-1].startswith('data: {"error"') and "shutting down" in rest[-1]
    assert s.proc.wait(timeout=15) == 0


def test_sighup_reload_adds_a_provider_and_a_broken_file_is_refused(fakes, tmp_path, serve):
    port = free_port()
    config = tmp_path / "r.yaml"
    write_config(config, fakes, ["alpha"], tmp_path / "u.jsonl", port)
    s = serve(config, port)
    with httpx.Client(base_url=s.base, headers=AUTH, timeout=10) as client:
        assert client.post("/v1/chat/completions", json=CHAT).headers["x-router-provider"] == "alpha"
        before = httpx.get(f"{s.base}/health/ready").json()["providers"]["alpha"]["routes"]["alpha/alpha-m"]
        assert before["ewma_ms"] is not None
        write_config(config, fakes, ["alpha", "beta"], tmp_path / "u.jsonl", port)
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while client.post("/v1/chat/completions", json=CHAT).headers.get("x-router-provider") != "beta":
            assert time.monotonic() < deadline, s.log()
            time.sleep(0.05)
        after = httpx.get(f"{s.base}/health/ready").json()["providers"]
        assert after["alpha"]["routes"]["alpha/alpha-m"]["ewma_ms"] is not None, "alpha's live state was kept"
        assert after["beta"]["probed"] is True, "beta was probed before it took traffic"
        config.write_text("providers: [\n")  # broken YAML
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "config_reload_failed" not in s.log():
            assert time.monotonic() < deadline, s.log()
            time.sleep(0.05)
        r = client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 200 and r.headers["x-router-provider"] in ("alpha", "beta"), (
            "the old config still serves"
        )
    failed = [orjson.loads(x) for x in s.log().splitlines() if "config_reload_failed" in x]
    assert failed and str(config) in failed[0]["error"]


def test_metrics_after_real_traffic(fakes, config_factory, router_server):
    rs = router_server(config_factory({"m": [("alpha", 0)]}, prices={"m": {"input_per_mtok": 1, "output_per_mtok": 2}}))
    for _ in range(3):
        assert rs.post("/v1/chat/completions", CHAT).status_code == 200
    assert rs.post("/v1/chat/completions", {**CHAT, "model": "nope"}).status_code == 404
    text = rs.client.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    ok = [v for (n, labels), v in samples.items() if n.endswith("requests_total") and ("provider", "alpha") in labels]
    assert sum(ok) == 3
    attempts = [
        v
        for (n, labels), v in samples.items()
        if "attempt" in n and ("outcome", "ok") in labels and ("provider", "alpha") in labels
    ]
    assert sum(attempts) == 3
    status = rs.client.get("/status.json").json()
    assert "alpha" in str(status)
    page = rs.client.get("/status")
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_watch_config_reloads_on_a_file_change(fakes, tmp_path, serve):
    """server.watch_config: a rewritten file is picked up without a signal."""
    port = free_port()
    config = tmp_path / "r.yaml"
    write_config(config, fakes, ["alpha"], tmp_path / "u.jsonl", port, watch_config="true")
    s = serve(config, port)
    with httpx.Client(base_url=s.base, headers=AUTH, timeout=10) as client:
        assert client.post("/v1/chat/completions", json=CHAT).headers["x-router-provider"] == "alpha"
        write_config(config, fakes, ["gamma"], tmp_path / "u.jsonl", port, watch_config="true")
        deadline = time.monotonic() + 10
        while client.post("/v1/chat/completions", json=CHAT).headers.get("x-router-provider") != "gamma":
            assert time.monotonic() < deadline, s.log()
            time.sleep(0.1)


def test_a_reload_applies_the_metrics_token_probe_settings_and_on_unavailable(fakes, tmp_path, router_server):
    """One reload (a file change, server.watch_config) sets server.metrics_token, alpha's probe
    interval and thresholds, and state.on_unavailable: /metrics wants the token at once, alpha's
    probes come at the new interval while its health is kept, and the state line stays quiet."""

    def write(metrics_token: str | None, health: str, on_unavailable: str) -> None:
        token = "" if metrics_token is None else f", metrics_token: '{hash_key(metrics_token)}'"
        text = (
            f"server: {{allow_anonymous: true, watch_config: true{token}}}\n"
            f"state: {{on_unavailable: {on_unavailable}}}\n"
            f"ledger: {{path: '{tmp_path / 'u.jsonl'}'}}\n"
            f"providers: [{{name: alpha, base_url: '{fakes['alpha'].url}', formats: [openai-chat],"
            f" health: {health}}}]\n"
            "models: [{name: m, routes: [{provider: alpha, model: alpha-m}]}]\n"
        )
        (tmp_path / "next.yaml").write_text(text)
        (tmp_path / "next.yaml").replace(config)  # a new inode: the watch sees it at its next look

    config = tmp_path / "r.yaml"
    write(None, "{interval_s: 30, timeout_s: 1}", "fail_closed")
    rs = router_server(load_config(config), config_path=str(config))
    assert rs.client.get("/metrics").status_code == 200
    probes = fakes.stats("alpha")["requests"]["/v1/models"]
    since = rs.ready().json()["providers"]["alpha"]["since"]
    token = "toc-op-" + "r" * 43
    with capture_logs() as logs:
        write(token, "{interval_s: 0.05, timeout_s: 1, unhealthy_after: 4, healthy_after: 3}", "fail_open")
        rs.wait_until(lambda: rs.client.get("/metrics").status_code == 401)
    assert rs.client.get("/metrics", headers={"authorization": f"Bearer {token}"}).status_code == 200
    rs.wait_until(lambda: fakes.stats("alpha")["requests"]["/v1/models"] >= probes + 5, timeout=3)
    alpha = rs.ready().json()["providers"]["alpha"]
    assert alpha["state"] == "healthy" and alpha["since"] == since, "its health was kept, not started afresh"
    events = [e["event"] for e in logs]
    assert "config_reloaded" in events and "config_reload_state_ignored" not in events


@pytest.mark.parametrize("to", ["parent", "group"])
def test_two_workers_drain_on_sigterm(fakes, tmp_path, serve, redis_server, to):
    """--workers 2 (Redis state): SIGTERM to the parent reaches the workers, which drain the
    stream in flight; the parent exits 0. Sent to the whole group (Ctrl-C, systemd's default
    KillMode), each worker gets it twice, from the sender and from the parent: still one drain."""
    fakes.set("alpha", chunks=8, chunk_delay_ms=100)
    port = free_port()
    config = tmp_path / "r.yaml"
    write_config(config, fakes, ["alpha"], tmp_path / "u.jsonl", port, drain_grace_s=0.2, drain_timeout_s=10)
    config.write_text(config.read_text() + f"state: {{backend: redis, url: '{redis_server.url}', key_prefix: w2}}\n")
    s = Serve.__new__(Serve)
    s.base, s.log_path = f"http://127.0.0.1:{port}", tmp_path / "w2.log"
    s._log = s.log_path.open("wb")
    s.proc = subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--config", str(config), "--workers", "2"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=s._log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not s.ready():
            assert s.proc.poll() is None and time.monotonic() < deadline, s.log()
            time.sleep(0.1)
        with httpx.Client(base_url=s.base, headers=AUTH, timeout=10) as client:
            with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as stream:
                lines = stream.iter_lines()
                next(lines)
                if to == "group":
                    os.killpg(s.proc.pid, signal.SIGTERM)
                else:
                    s.proc.send_signal(signal.SIGTERM)
                rest = list(lines)
        assert "data: [DONE]" in rest
        assert s.proc.wait(timeout=20) == 0
    finally:
        s.stop()


def test_client_limits_apply_in_every_worker(fakes, tmp_path, serve, redis_server):
    """`router serve --workers 2`: the limits of `server:` reach each worker (uvicorn pickles
    them with its config). Whichever worker takes them, a stalled head gets 408 at the header
    timeout and an oversized one 431."""
    port = free_port()
    config = tmp_path / "r.yaml"
    write_config(config, fakes, ["alpha"], tmp_path / "u.jsonl", port, header_timeout_s=0.3, max_header_bytes=2048)
    config.write_text(config.read_text() + f"state: {{backend: redis, url: '{redis_server.url}', key_prefix: lim}}\n")
    serve(config, port, workers=2)
    for _ in range(4):  # the kernel spreads connections over the two workers' accepts
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nhost: r\r\n")
            t0 = time.monotonic()
            assert sock.recv(65536).startswith(b"HTTP/1.1 408") and time.monotonic() - t0 < 2
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nx-big: " + b"a" * 4096 + b"\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 431")
