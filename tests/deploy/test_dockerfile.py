"""The Dockerfile, held to the router: its stages and user, and its entry command and HEALTHCHECK
run for real from this install (no Docker here) against the deploy config on a free port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from router.config import load_config
from tests.deploy.artifacts import DEPLOY, ROOT, dockerfile, exec_form, healthcheck, last, serves_get
from tests.redis_server import free_port

CONFIG_IN_IMAGE = "/etc/router/config.yaml"
DEMO_KEY = "toc-demo-0000000000000000000000000000000000000000"  # public: config/demo.yaml


def final_stage() -> list[Any]:
    return dockerfile()[-1]


def entry_command() -> list[str]:
    stage = final_stage()
    return exec_form(last(stage, "ENTRYPOINT").args) + exec_form(last(stage, "CMD").args)


def test_two_stages_on_python_slim_and_the_runtime_installs_only_wheels():
    stages = dockerfile()
    assert len(stages) >= 2, "a builder stage and a runtime stage"
    bases = [s[0].args.split()[0] for s in stages]
    assert all(b == "${PYTHON_IMAGE}" for b in bases)
    default = Path(ROOT / "Dockerfile").read_text().split("ARG PYTHON_IMAGE=", 1)[1].split()[0]
    assert default == "python:3.11-slim"
    builder = stages[0]
    assert stages[0][0].args.endswith("AS builder")
    assert any(i.keyword == "RUN" and "pip wheel" in i.args for i in builder)
    runtime_runs = [i.args for i in final_stage() if i.keyword == "RUN"]
    assert any("--no-index" in r and "from=builder" in r for r in runtime_runs), "installs the builder's wheels only"
    assert not any(i.keyword == "COPY" for i in final_stage()), "no sources in the runtime image"


def test_the_build_context_is_only_what_the_builder_copies():
    """.dockerignore: everything out, then back in exactly what the Dockerfile COPYs, so no local
    virtual env, ledger, config or secret can end up in the context or an image layer."""
    lines = [x.strip() for x in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [x for x in lines if x and not x.startswith("#")]
    assert patterns[0] == "*"
    included = {p[1:] for p in patterns if p.startswith("!")}
    copied = {i.args.split()[0] for stage in dockerfile() for i in stage if i.keyword == "COPY"}
    assert included == copied == {"pyproject.toml", "router"}


def test_runs_as_a_non_root_user_created_in_the_image():
    stage = final_stage()
    user = last(stage, "USER").args
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, "a numeric uid: Kubernetes' runAsNonRoot can check it"
    assert any(i.keyword == "RUN" and f"--uid {uid}" in i.args for i in stage), "the user exists in the image"


def test_entry_command_is_exec_form_and_reads_the_mounted_config():
    """Exec form, so the router is PID 1 and receives SIGTERM itself (a shell form would put
    /bin/sh in between, which does not pass it on)."""
    command = entry_command()
    assert command[:2] == ["router", "serve"]
    assert command[command.index("--config") + 1] == CONFIG_IN_IMAGE
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["router"] == "router.cli:main", "the image's `router` is the project's own script"
    assert last(final_stage(), "STOPSIGNAL").args == "SIGTERM"


def test_exposed_port_and_healthcheck_match_the_config():
    config = load_config(DEPLOY / "config" / "router.yaml", env={"REDIS_PASSWORD": "x"})
    stage = final_stage()
    assert last(stage, "EXPOSE").args == str(config.server.port)
    check = healthcheck(last(stage, "HEALTHCHECK"))
    url = _healthcheck_url(check.command)
    assert url.port == config.server.port and url.hostname == "127.0.0.1"
    assert url.path == "/health/ready" and serves_get(url.path)
    assert {"interval", "timeout", "start-period", "retries"} <= check.options.keys()


def _healthcheck_url(command: list[str]) -> Any:
    assert command[:2] == ["python", "-c"], "no curl in the slim image"
    code = command[2]
    start = code.index("http://")
    return urlsplit(code[start : code.index("'", start)])


def test_entry_command_serves_becomes_ready_and_drains_on_sigterm(tmp_path, fakes):
    """The image's command as the image would run it, from this install: the `router` script in
    the same environment, cwd the image's WORKDIR stand-in, the deploy config with the fake
    providers' addresses and a free port. Ready within seconds (the HEALTHCHECK says healthy),
    serves a request, and on SIGTERM turns unhealthy at once and exits 0."""
    port = free_port()
    config = local_copy_of_the_deploy_config(tmp_path, port, fakes)
    command = entry_command()
    script = Path(sys.executable).parent / command[0]
    assert script.exists(), f"{script}: the project's console script"
    argv = [str(script), *(str(config) if a == CONFIG_IN_IMAGE else a for a in command[1:])]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    check = healthcheck(last(final_stage(), "HEALTHCHECK")).command
    check = [sys.executable, check[1], check[2].replace(":8080/", f":{port}/")]
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "router.log").open("wb")
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while subprocess.run(check, capture_output=True, timeout=10).returncode != 0:
            assert proc.poll() is None, (tmp_path / "router.log").read_text()
            assert time.monotonic() < deadline, "not healthy in time"
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=10) as client:
            r = client.post(
                "/v1/chat/completions",
                headers={"authorization": f"Bearer {DEMO_KEY}"},
                json={"model": "demo-gpt", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status_code == 200, r.text
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            assert client.get("/health/ready").status_code == 503, "draining: not ready"
        assert subprocess.run(check, capture_output=True, timeout=10).returncode != 0, "unhealthy while draining"
        assert proc.wait(timeout=15) == 0, (tmp_path / "router.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert (tmp_path / "usage.jsonl").read_bytes().count(b"\n") == 1, "the request was billed to the ledger"


def local_copy_of_the_deploy_config(
    tmp_path: Path, port: int, fakes: Any, state: dict[str, Any] | None = None, name: str = "config.yaml"
) -> Path:
    """deploy/config/router.yaml with what only exists inside the stack replaced: the listen
    address, the fake services' host names (fake-a and fake-b: the session's alpha and beta),
    Redis (memory unless `state`), the ledger's directory; and a short drain so tests stay fast."""
    data = yaml.safe_load((DEPLOY / "config" / "router.yaml").read_text())
    data["server"].update(host="127.0.0.1", port=port, drain_grace_s=1, drain_timeout_s=5)
    data["state"] = state or {"backend": "memory"}
    data["ledger"]["path"] = "usage.jsonl"  # relative: the working directory, as in the image
    for provider, fake in zip(data["providers"], ("alpha", "beta"), strict=True):
        provider["base_url"] = fakes[fake].url
        provider["health"]["interval_s"] = 30
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path
