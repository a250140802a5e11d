"""`router demo`: the router on three fake providers (fast, slow, flaky) with a short burst of
traffic per phase, so a newcomer sees latency-weighted routing and failover happen. Then, when
asked to (`router demo` on a terminal), the router and its fakes stay up for the curl commands
it prints, until Ctrl-C."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import shlex
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from router.app import create_app
from router.config import Config
from router.fake_upstream.faults import Faults
from router.fake_upstream.server import RunningServer, start_in_thread
from router.ops.threaded import ThreadedServer

# How each demo provider behaves, by name; any other provider in the config is healthy.
PERSONALITIES: dict[str, dict[str, Any]] = {
    "fast": {"latency_ms": 15, "chunk_delay_ms": 2},
    "slow": {"latency_ms": 250, "chunk_delay_ms": 20},
    "flaky": {"latency_ms": 40, "chunk_delay_ms": 5, "fail_rate": 0.3, "fail_status": 503},
}
_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hello!"}]}),
    ("/v1/messages", {"max_tokens": 100, "messages": [{"role": "user", "content": "Hello!"}]}),
    ("/v1/responses", {"input": "Hello!"}),
]
_CONCURRENCY = 6
# The demo config's key (only its hash is in config/demo.yaml). Public: for the demo only.
DEMO_KEY = "toc-demo-0000000000000000000000000000000000000000"
_AUTH = {"authorization": f"Bearer {DEMO_KEY}"}


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _start_fakes(config: Config) -> tuple[Config, dict[str, RunningServer]]:
    """One fake per provider, on free ports; the config is pointed at them."""
    fakes: dict[str, RunningServer] = {}
    providers = []
    for p in config.providers:
        faults = Faults.from_dict(PERSONALITIES.get(p.name, {}))
        fakes[p.name] = start_in_thread(p.name, faults, seed=len(fakes))
        providers.append(dataclasses.replace(p, base_url=fakes[p.name].url))
    return dataclasses.replace(config, providers=tuple(providers)), fakes


async def _burst(url: str, models: list[str], n: int) -> list[tuple[int, str, int]]:
    """n requests over the three endpoints, half of them streamed: (status, provider, attempts)."""
    sem = asyncio.Semaphore(_CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=_AUTH) as client:

        async def one(i: int) -> tuple[int, str, int]:
            path, body = _BODIES[i % len(_BODIES)]
            payload = {**body, "model": models[i % len(models)], "stream": i % 2 == 1}
            async with sem, client.stream("POST", path, json=payload) as r:
                await r.aread()
                return (
                    r.status_code,
                    r.headers.get("x-router-provider", "-"),
                    int(r.headers.get("x-router-attempts", "1")),
                )

        return await asyncio.gather(*(one(i) for i in range(n)))


def _report(title: str, results: list[tuple[int, str, int]], seconds: float) -> bool:
    by_provider = collections.Counter(p for s, p, _ in results if s == 200)
    failed_over = sum(1 for s, _, a in results if s == 200 and a > 1)
    ok = sum(1 for s, _, _ in results if s == 200)
    print(f"\n== {title}: {ok}/{len(results)} answered 200 in {seconds:.1f}s, {failed_over} after failover")
    for provider, count in by_provider.most_common():
        bar = "#" * round(40 * count / max(1, ok))
        print(f"   {provider:<8} {count:>4}  {bar}")
    other = collections.Counter(s for s, _, _ in results if s != 200)
    if other:
        print(f"   non-200: {dict(other)}")
    return ok == len(results)


def _run_phase(title: str, url: str, models: list[str], n: int) -> bool:
    start = time.monotonic()
    results = asyncio.run(_burst(url, models, n))
    return _report(title, results, time.monotonic() - start)


def _show_keys(url: str, model: str) -> None:
    """What a key buys: its budget left, and the errors a client meets without one."""
    body = {"model": model, "messages": [{"role": "user", "content": "Hello!"}]}
    with httpx.Client(base_url=url, timeout=10) as client:
        ok = client.post("/v1/chat/completions", json=body, headers=_AUTH)
        no_key = client.post("/v1/chat/completions", json=body)
        unknown = client.post("/v1/chat/completions", json={**body, "model": "no-such-model"}, headers=_AUTH)
    print("\n== keys and budgets")
    print(
        f"   budget left in this window: ${float(ok.headers.get('x-ratelimit-remaining', 'nan')):.6f}"
        f" (resets at unix {ok.headers.get('x-ratelimit-reset', '-')})"
    )
    print(f"   without a key: {no_key.status_code} {no_key.json()['error']['message']}")
    print(f"   unknown model: {unknown.status_code} {unknown.json()['error']['message']}")


def curl_commands(url: str, model: str) -> list[str]:
    """Shell commands that try the demo router at `url` with the demo key."""
    auth = shlex.quote(f"authorization: Bearer {DEMO_KEY}")
    body = shlex.quote(f'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello!"}}]}}')
    return [
        f"curl -sS {url}/v1/models -H {auth}",
        f"curl -sS {url}/v1/chat/completions -H {auth} -H 'content-type: application/json' -d {body}",
    ]


def until_interrupted(url: str, commands: list[str]) -> None:
    """`router demo` on a terminal: the router stays up for the commands, until Ctrl-C."""
    print(f"\nthe router is still up on {url}, with its fake providers; try:\n")
    for command in commands:
        print(f"  {command}")
    print(f"\nstatus page: {url}/status    Ctrl-C to stop.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print()


def run_demo(config: Config, requests: int = 120, hold: Callable[[str, list[str]], None] | None = None) -> int:
    """`hold(url, commands)`, when given, runs after the demo while the router and the fakes are
    still up (`until_interrupted`); without it they stop when the demo ends."""
    config, fakes = _start_fakes(config)
    host, port = config.server.host, config.server.port
    if not _port_free(host, port):
        port = 0
    server = ThreadedServer(create_app(config), host, port, limits=config.server).start()
    models = [m.name for m in config.models]
    all_ok = True
    try:
        print(
            f"router listening on {server.url}; fake providers: " + ", ".join(f"{n} {f.url}" for n, f in fakes.items())
        )
        print(f"demo API key: {DEMO_KEY}")
        speaks = {p.name: p.formats for p in config.providers}
        for name, personality in PERSONALITIES.items():
            if name in fakes:
                print(f"   {name:<6} {personality}  speaks {', '.join(speaks[name])}")
        _wait_ready(server.url)
        all_ok &= _run_phase(
            "1. all up: latency-weighted choice favours fast; flaky's 503s fail over", server.url, models, requests
        )
        if "fast" in fakes:
            fakes["fast"].faults.update({"hang": True})
            all_ok &= _run_phase(
                "2. fast hangs: first-token timeouts, then its breaker opens", server.url, models, requests // 2
            )
            fakes["fast"].faults.update({"hang": False})
            # The longest wait between two trials: after it, fast's next trial is due.
            reset = max(p.breaker.reset_timeout_max_s for p in config.providers)
            print(f"\n   fast is back; waiting {reset:g}s for its breaker's half-open trial ...")
            time.sleep(reset + 0.5)
            all_ok &= _run_phase("3. fast recovered: traffic returns to it", server.url, models, requests // 2)
        _show_keys(server.url, models[0])
        ready = httpx.get(f"{server.url}/health/ready", timeout=5).json()
        print("\n== /health/ready")
        for name, p in ready["providers"].items():
            ewmas = [r["ewma_ms"] for r in p["routes"].values() if r["ewma_ms"] is not None]
            ewma = f"{min(ewmas):.0f}ms" if ewmas else "-"
            print(f"   {name:<6} {p['state']:<9} breaker={p['breaker']:<9} ewma={ewma:<6} ({p['reason']})")
        print("\ndemo finished: " + ("every request was answered" if all_ok else "some requests failed (see above)"))
        if hold is not None:
            hold(server.url, curl_commands(server.url, models[0]))
    finally:
        server.stop()
        for fake in fakes.values():
            fake.stop()
    return 0 if all_ok else 1


def _wait_ready(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the router did not become ready")
