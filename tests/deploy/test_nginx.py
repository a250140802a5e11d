"""deploy/nginx.conf run by a real nginx (Debian's package; skipped where it is missing) in front
of two real `router serve` replicas sharing a real Redis, on loopback: the compose stack without
Docker. Only what exists only inside the stack is rewritten: the replicas' host names and
ports, nginx's listen port and its pid and temp paths."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from router.config import load_config
from tests.deploy.artifacts import DEPLOY, ROOT
from tests.deploy.test_compose import routers
from tests.deploy.test_dockerfile import DEMO_KEY, entry_command, local_copy_of_the_deploy_config
from tests.redis_server import free_port

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")  # sbin: not on every user's PATH
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)")

CHAT = {"model": "demo-gpt", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "demo-gpt", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def local_nginx_conf(tmp_path: Path, upstreams: dict[str, int], listen: int) -> Path:
    """deploy/nginx.conf with each `server NAME:PORT` of the upstream on a loopback port, the
    listener on `listen`, the pid file and temp directories under tmp_path."""
    text = (DEPLOY / "nginx.conf").read_text()
    port = load_config(DEPLOY / "config" / "router.yaml", env={"REDIS_PASSWORD": "x"}).server.port
    replacements = {f"server {name}:{port} ": f"server 127.0.0.1:{p} " for name, p in upstreams.items()}
    replacements["listen 8080;"] = f"listen 127.0.0.1:{listen};"
    replacements["pid /tmp/nginx.pid;"] = f"pid {tmp_path}/nginx.pid;"
    temp = "".join(
        f"    {kind}_temp_path {tmp_path}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    replacements["http {\n"] = "http {\n" + temp
    for old, new in replacements.items():
        assert text.count(old) == 1, f"{old!r} is not in deploy/nginx.conf once"
        text = text.replace(old, new)
    path = tmp_path / "nginx.conf"
    path.write_text(text)
    return path


def test_nginx_accepts_the_config(tmp_path):
    conf = local_nginx_conf(tmp_path, {name: free_port() for name in routers()}, free_port())
    out = subprocess.run(
        [NGINX or "nginx", "-t", "-p", str(tmp_path), "-e", "stderr", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stderr
    assert "test is successful" in out.stderr
    assert not re.search(r"\[(warn|emerg)\]", out.stderr), out.stderr


class Stack:
    """Two replicas and nginx, started together; stopped by the fixture."""

    def __init__(self, tmp_path: Path, fakes: Any, redis_url: str) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[Any] = []
        self.ports = {name: free_port() for name in routers()}
        self.dirs: dict[str, Path] = {}
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        script = str(Path(sys.executable).parent / entry_command()[0])
        for name, port in self.ports.items():
            workdir = tmp_path / name
            workdir.mkdir()
            config = local_copy_of_the_deploy_config(workdir, port, fakes, {"backend": "redis", "url": redis_url})
            argv = [script, *(str(config) if a == "/etc/router/config.yaml" else a for a in entry_command()[1:])]
            self.dirs[name] = workdir
            self._start(name, argv, workdir, env)
        self.listen = free_port()
        conf = local_nginx_conf(tmp_path, self.ports, self.listen)
        self._start(
            "nginx",
            [NGINX or "nginx", "-p", str(tmp_path), "-e", "stderr", "-c", str(conf), "-g", "daemon off;"],
            tmp_path,
            env,
        )
        self.base = f"http://127.0.0.1:{self.listen}"

    def _start(self, name: str, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        log = (cwd / f"{name}.log").open("wb")
        self.logs.append(log)
        self.procs[name] = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        for name, port in self.ports.items():
            while not _ready(port):
                assert self.procs[name].poll() is None, f"{name} exited"
                assert time.monotonic() < deadline, f"{name} not ready in time"
                time.sleep(0.05)
        while not _listening(self.listen):
            assert self.procs["nginx"].poll() is None, "nginx exited"
            assert time.monotonic() < deadline, "nginx not listening in time"
            time.sleep(0.05)

    def ledger_lines(self, name: str) -> int:
        path = self.dirs[name] / "usage.jsonl"
        return path.read_bytes().count(b"\n") if path.exists() else 0

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=0.5).status_code == 200
    except httpx.TransportError:
        return False


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture
def stack(tmp_path, fakes, redis_server) -> Iterator[Stack]:
    s = Stack(tmp_path, fakes, redis_server.url)
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


def test_the_stack_behind_nginx_streams_balances_and_survives_a_stopping_replica(stack, fakes):
    fakes.set("alpha", chunks=6, chunk_delay_ms=120)
    fakes.set("beta", chunks=6, chunk_delay_ms=120)
    bearer = {"authorization": f"Bearer {DEMO_KEY}"}
    with httpx.Client(base_url=stack.base, timeout=10) as client:
        # A stream arrives event by event through nginx, not in one piece at the end.
        start = time.monotonic()
        with client.stream("POST", "/v1/chat/completions", headers=bearer, json={**CHAT, "stream": True}) as r:
            assert r.status_code == 200
            arrivals = [time.monotonic() - start for line in r.iter_lines() if line.startswith("data: ")]
        assert len(arrivals) >= 6 and arrivals[-1] - arrivals[0] > 0.4, arrivals
        # Both credentials headers pass: Authorization, and Anthropic's x-api-key.
        r = client.post(
            "/v1/messages", headers={"x-api-key": DEMO_KEY, "anthropic-version": "2023-06-01"}, json=MESSAGES
        )
        assert r.status_code == 200, r.text
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 401, "no key, no answer"
        # The request id: the client's own, else one nginx makes, is the router's.
        r = client.post("/v1/chat/completions", headers={**bearer, "x-request-id": "abc-123"}, json=CHAT)
        assert r.headers["x-request-id"] == "abc-123"
        r = client.post("/v1/chat/completions", headers=bearer, json=CHAT)
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"]), r.headers["x-request-id"]
        for _ in range(4):
            assert client.post("/v1/chat/completions", headers=bearer, json=CHAT).status_code == 200
        assert all(stack.ledger_lines(name) > 0 for name in routers()), "both replicas served"
        assert client.get("/metrics").status_code == 404, "the metrics stay inside"
        # One replica stops (as `docker compose stop` does): it drains and exits 0, and every
        # request meanwhile and after is answered by the other.
        stopping, other = list(routers())
        stack.procs[stopping].send_signal(signal.SIGTERM)
        served_before = stack.ledger_lines(other)
        deadline = time.monotonic() + 15
        answered = 0
        while stack.procs[stopping].poll() is None or answered < 4:
            assert time.monotonic() < deadline, "the replica did not exit in time"
            assert client.post("/v1/chat/completions", headers=bearer, json=CHAT).status_code == 200
            answered += stack.procs[stopping].poll() is not None
            time.sleep(0.05)
        assert stack.procs[stopping].returncode == 0
        assert stack.ledger_lines(other) >= served_before + 4
