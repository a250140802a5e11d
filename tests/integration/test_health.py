"""Health probes and readiness over real loopback sockets: /health/ready is 503 until the first
probe round is over (bounded by the probe timeout), then 200; a provider's probe failing shows
why (a status, a refused connection) on /health/ready, /status.json and in the log; a required
Redis that stops makes the replica unready, and ready again when it is back."""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import replace
from typing import Any

from structlog.testing import capture_logs

from tests.redis_server import free_port

FAST = {"interval_s": 0.1, "timeout_s": 1, "unhealthy_after": 1}


def _provider(name: str, url: str, **health: Any) -> dict[str, Any]:
    return {"name": name, "base_url": url, "formats": ["openai-chat"], "health": health}


def test_not_ready_until_the_first_probe_round_is_over(fakes, config_factory, router_server):
    """A provider that accepts connections and never answers holds readiness back for its probe
    timeout, no longer: then 200 (alpha is healthy), the silent one unknown, saying why."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # never accepted: the kernel completes the handshake, nobody answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config = config_factory(
            {"m": [("alpha", 0)], "s": [("silent", 0)]},
            extra_providers=[_provider("silent", url, timeout_s=0.6, interval_s=30)],
        )
        started = time.monotonic()
        rs = router_server(config, wait_ready=False)
        first = rs.ready()
        assert first.status_code == 503 and first.headers["cache-control"] == "no-store"
        assert first.json()["status"] == "not_ready" and "first_probe_round" in first.json()["reasons"]
        assert first.json()["providers"]["silent"]["state"] == "unknown"
        rs.wait_until(lambda: rs.ready().status_code == 200, timeout=3)
        assert 0.5 < time.monotonic() - started < 3
        body = rs.ready().json()
    assert body["status"] == "ready" and body["reasons"] == [] and body["models_unavailable"] == []
    assert body["providers"]["alpha"]["state"] == "healthy" and body["providers"]["alpha"]["reason"] == "status 200"
    silent_state = body["providers"]["silent"]
    assert silent_state["state"] == "unknown", "one failure of unhealthy_after 2: not yet down, still routed"
    assert silent_state["reason"] == "timeout after 0.6s" and silent_state["last_probe"]["ok"] is False


def test_the_reason_of_a_failing_probe_is_shown_and_logged(fakes, config_factory, router_server):
    """beta's health path answers 503, `gone` refuses connections: each is unhealthy with its
    reason on /health/ready and /status.json, each change logged once with the URL probed and no
    credential; the replica stays ready (alpha); beta's recovery is logged too."""
    gone = f"http://127.0.0.1:{free_port()}"
    config = config_factory(
        {"m": [("alpha", 0), ("beta", 0)], "g": [("gone", 0)]},
        health=FAST,
        extra_providers=[_provider("gone", gone, **FAST)],
    )
    with capture_logs() as logs:
        rs = router_server(config)
        fakes.set("beta", health_status=503)
        rs.wait_until(lambda: rs.ready().json()["providers"]["beta"]["state"] == "unhealthy")
        ready = rs.ready()
        status = {p["name"]: p for p in rs.client.get("/status.json").json()["providers"]}
        fakes.set("beta", health_status=200)
        rs.wait_until(lambda: rs.ready().json()["providers"]["beta"]["state"] == "healthy")
    assert ready.status_code == 200 and ready.json()["reasons"] == []
    assert ready.json()["models_unavailable"] == ["g"], "no route for g; the replica is still ready"
    beta, dead = ready.json()["providers"]["beta"], ready.json()["providers"]["gone"]
    assert (beta["state"], beta["reason"], beta["last_probe"]["status"]) == ("unhealthy", "status 503", 503)
    assert (dead["state"], dead["reason"]) == ("unhealthy", "connection refused")
    for name, shown in (("beta", beta), ("gone", dead)):
        assert (status[name]["state"], status[name]["reason"]) == (shown["state"], shown["reason"])
    changes = [
        (e["provider"], e["old"], e["new"], e["reason"], e["url"])
        for e in logs
        if e["event"] == "provider_health_changed"
    ]
    beta_url = fakes["beta"].url + "/v1/models"
    assert ("beta", "healthy", "unhealthy", "status 503", beta_url) in changes
    assert ("beta", "unhealthy", "healthy", "status 200", beta_url) in changes
    assert [c for c in changes if c[0] == "gone"] == [
        ("gone", "unknown", "unhealthy", "connection refused", gone + "/v1/models")
    ]
    assert "provider-key-" not in str(logs), "the probe's credentials never reach the log"


def test_a_required_redis_that_stops_makes_the_replica_unready(fakes, config_factory, router_server, redis_server):
    """fail_closed: 503 state_unavailable (with the store's error) while Redis is gone, 200 when it
    is back; fail_open on the same outage: ready throughout, the store shown down."""

    def config(policy: str) -> Any:
        state = {
            "backend": "redis",
            "url": redis_server.url,
            "key_prefix": f"t-{uuid.uuid4().hex[:8]}",
            "timeout_s": 0.2,
            "ping_interval_s": 0.1,
            "on_unavailable": policy,
        }
        return config_factory(state=state)

    closed, open_ = router_server(config("fail_closed")), router_server(config("fail_open"))
    assert closed.ready().json()["state"] == {**closed.ready().json()["state"], "ok": True, "required": True}
    redis_server.stop()
    try:
        closed.wait_until(lambda: closed.ready().status_code == 503, timeout=3)
        down = closed.ready().json()
        open_.wait_until(lambda: open_.ready().json()["state"]["ok"] is False, timeout=3)
        assert open_.ready().status_code == 200 and open_.ready().json()["state"]["required"] is False
    finally:
        redis_server.start()
    assert down["reasons"] == ["state_unavailable"] and down["state"]["ok"] is False
    assert "state backend unavailable during ping" in down["state"]["error"]
    closed.wait_until(lambda: closed.ready().status_code == 200, timeout=5)
    assert closed.ready().json()["state"]["error"] is None


def test_a_key_with_a_newline_is_never_shown_and_requests_get_an_envelope(fakes, config_factory, router_server):
    """alpha's key ends with a newline (a Secret made --from-file; the config now refuses it, so
    the config is built around the check): its probe fails with a fixed reason that never quotes
    the key on /health/ready, /status.json or in the log, and a request gets the endpoint's 503
    envelope, not a 500 with a traceback."""
    config = config_factory({"m": [("alpha", 0)]}, health=FAST)
    leaky = replace(config.provider("alpha"), api_key="provider-key-alpha\n")
    config = replace(config, providers=tuple(leaky if p.name == "alpha" else p for p in config.providers))
    with capture_logs() as logs:
        rs = router_server(config, wait_ready=False)
        rs.wait_until(lambda: rs.ready().json()["providers"]["alpha"]["state"] == "unhealthy")
        ready, status = rs.ready(), rs.client.get("/status.json")
        r = rs.post("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        rs.wait_until(lambda: any(e["event"] == "request" for e in logs))
    assert ready.json()["providers"]["alpha"]["reason"] == "invalid request header (check api_key / headers)"
    assert r.status_code == 503 and r.json()["error"]["type"], r.text
    for text in (ready.text, status.text, r.text, repr(logs)):
        assert "provider-key-alpha" not in text
    assert not [e for e in logs if "exc_info" in e or "exception" in e or e.get("status") == 500]
    assert fakes.served("alpha") == 0, "nothing was sent"
