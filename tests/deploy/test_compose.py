"""deploy/compose.yaml and the files it mounts, held to each other and to the router (no Docker
here: what `docker compose up` would wire together is checked from the files)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from router.config import Config, load_config
from tests.deploy.artifacts import (
    DEPLOY,
    command_option,
    compose,
    drain_bound_s,
    duration_s,
    nginx,
    nginx_bytes,
    nginx_seconds,
    serves_get,
    service_env,
)
from tests.deploy.test_dockerfile import CONFIG_IN_IMAGE, entry_command
from tests.redis_server import free_port

HOST_ENV: dict[str, str] = {}  # `docker compose up` with nothing set: the defaults must do


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


def routers() -> dict[str, Any]:
    """The router replicas: the services that run `router serve`."""
    return {name: s for name, s in services().items() if s.get("command", [None])[0] == "serve"}


def fake_services() -> dict[str, Any]:
    return {name: s for name, s in services().items() if s.get("command", [None])[0] == "fake-upstream"}


def mounted_config(service: dict[str, Any]) -> str:
    """The host file a service mounts at the image's config path; fails unless read-only."""
    [mount] = [v for v in service["volumes"] if v.split(":")[1] == CONFIG_IN_IMAGE]
    source, _, mode = mount.split(":")
    assert mode == "ro", f"{mount}: the config is mounted read-only"
    return str(source)


def replica_config(name: str) -> Config:
    """A replica's config as the router loads it inside the container: the mounted file, with the
    replica's environment only."""
    service = routers()[name]
    return load_config(DEPLOY / mounted_config(service), env=service_env(service, HOST_ENV))


def test_the_stack_has_two_router_replicas_redis_nginx_prometheus_and_fake_providers():
    assert len(routers()) == 2
    assert len(fake_services()) >= 1
    assert {"redis", "nginx", "prometheus"} <= services().keys()


@pytest.mark.parametrize("name", ["router-1", "router-2"])
def test_each_replica_runs_the_image_command_on_its_config_and_drains_within_its_stop_grace(name):
    service = routers()[name]
    assert service["command"] == entry_command()[1:], "the image's own CMD, spelled out"
    config = replica_config(name)
    assert config.server.host == "0.0.0.0"
    assert config.state.backend == "redis", "the replicas share budgets and limits"
    assert duration_s(service["stop_grace_period"]) > drain_bound_s(config) + 2
    assert service.get("read_only") is True
    ledger_dir = config.ledger.path.rsplit("/", 1)[0]
    assert any(v.split(":")[1] == ledger_dir for v in service["volumes"]), "the ledger's directory is writable"


def test_the_replicas_share_one_config_and_one_redis_with_its_password():
    configs = [replica_config(name) for name in routers()]
    assert len({c.state.url for c in configs}) == 1
    url = urlsplit(configs[0].state.url or "")
    redis = services()["redis"]
    assert url.hostname == "redis" and url.port == 6379
    password = service_env(redis, HOST_ENV)["REDIS_PASSWORD"]
    assert password and url.password == password
    command = " ".join(redis["command"])
    assert '--requirepass "$$REDIS_PASSWORD"' in command, "compose's $$ leaves $REDIS_PASSWORD to the shell"
    assert service_env(redis, HOST_ENV)["REDISCLI_AUTH"] == password, "the healthcheck's redis-cli authenticates"
    for name in routers():
        assert routers()[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_provider_base_urls_are_the_fake_services():
    config = replica_config("router-1")
    served = {}
    for name, service in fake_services().items():
        command = service["command"]
        assert command_option(command, "--host") == "0.0.0.0", f"{name} listens beyond its loopback"
        served[name] = int(command_option(command, "--port"))
    used = {(urlsplit(p.base_url).hostname, urlsplit(p.base_url).port) for p in config.providers}
    assert used == set(served.items()), "every provider is a fake service at its port, every fake is used"


def fake_healthcheck_url(service: dict[str, Any]) -> Any:
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], "exec form; no curl in the slim image"
    start = test[3].index("http://")
    return urlsplit(test[3][start : test[3].index("'", start)])


def test_each_fake_has_its_own_healthcheck_on_what_the_router_probes():
    """The image's HEALTHCHECK is the router's readiness on 8080: a fake, from the same image,
    must replace it, or it would stay unhealthy and the replicas would never start."""
    config = replica_config("router-1")
    by_host = {urlsplit(p.base_url).hostname: p for p in config.providers}
    for name, service in fake_services().items():
        url = fake_healthcheck_url(service)
        assert url.hostname == "127.0.0.1" and url.port == int(command_option(service["command"], "--port"))
        assert url.path == by_host[name].health.path
    for name in routers():
        assert {routers()[name]["depends_on"][f]["condition"] for f in fake_services()} == {"service_healthy"}


def test_a_fakes_healthcheck_command_passes_against_a_running_fake_and_fails_without_one(fakes):
    """Run for real, against the session's fake provider (same code as the image's)."""
    service = next(iter(fake_services().values()))
    code = service["healthcheck"]["test"][3]
    port = fake_healthcheck_url(service).port
    live = code.replace(f":{port}/", f":{urlsplit(fakes['alpha'].url).port}/")
    assert subprocess.run([sys.executable, "-c", live], capture_output=True, timeout=10).returncode == 0
    dead = code.replace(f":{port}/", f":{free_port()}/")
    assert subprocess.run([sys.executable, "-c", dead], capture_output=True, timeout=10).returncode != 0


def test_nginx_sends_to_both_replicas_and_streams_unbuffered():
    config = replica_config("router-1")
    service = services()["nginx"]
    [mount] = service["volumes"]
    source, target, mode = mount.split(":")
    assert (target, mode) == ("/etc/nginx/nginx.conf", "ro")
    http = nginx((DEPLOY / source).read_text()).one("http")
    upstream = http.one("upstream", "router")
    servers = {s.args[0] for s in upstream.all("server")}
    assert servers == {f"{name}:{config.server.port}" for name in routers()}
    assert nginx_seconds(upstream.value("keepalive_timeout")[0]) < config.server.keepalive_timeout_s
    server = http.one("server")
    [published] = service["ports"]
    assert published.rsplit(":", 1)[1] == server.value("listen")[0]
    location = server.one("location", "/")
    assert location.value("proxy_pass") == ["http://router"]
    assert location.value("proxy_http_version") == ["1.1"]
    assert location.value("proxy_buffering") == ["off"], "SSE events leave as they arrive"
    for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
        assert nginx_seconds(location.value(timeout)[0]) > config.routing.deadline_s
    assert "non_idempotent" not in location.value("proxy_next_upstream"), "a sent POST is never repeated"
    assert nginx_bytes(http.value("client_max_body_size")[0]) > config.server.max_body_bytes
    assert nginx_seconds(http.value("client_body_timeout")[0]) == config.server.body_timeout_s
    hidden = server.one("location", "=", "/metrics")
    assert hidden.value("return") == ["404"] and serves_get("/metrics")
    # Client credentials pass as nginx passes every client header: nothing may clear them.
    cleared = [d.args[0].lower() for d in location.all("proxy_set_header") if d.args[1:] in ([], [""])]
    assert not {"authorization", "x-api-key"} & set(cleared)
    assert "off" not in [d.args[0] for d in location.all("proxy_pass_request_headers")]


def test_prometheus_scrapes_each_replica_directly():
    config = replica_config("router-1")
    service = services()["prometheus"]
    [mount] = service["volumes"]
    source, target, _ = mount.split(":")
    assert f"--config.file={target}" in service["command"]
    scrape = yaml.safe_load((DEPLOY / source).read_text())
    [job] = scrape["scrape_configs"]
    assert serves_get(job["metrics_path"])
    [static] = job["static_configs"]
    assert set(static["targets"]) == {f"{name}:{config.server.port}" for name in routers()}
    assert config.server.metrics_token is None, "no token configured: Prometheus sends none"
    assert "authorization" not in job


def test_only_the_gateway_and_prometheus_are_published_on_the_hosts_loopback():
    published = {name: s["ports"] for name, s in services().items() if "ports" in s}
    assert published.keys() == {"nginx", "prometheus"}
    assert all(p.startswith("127.0.0.1:") for ports in published.values() for p in ports)
