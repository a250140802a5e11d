"""cProfile of the router's own code under a fixed non-stream load: where the CPU of the request
path goes, by function. Compare checkouts in one run (`--repo` twice or more, `--rounds` to
alternate them): the absolute times shift with the machine, the ratio between two does not much.

    .venv/bin/python benchmarks/profile_path.py                       # this checkout, 20,000 requests
    .venv/bin/python benchmarks/profile_path.py --redis               # on Redis state (a redis-server child)
    .venv/bin/python benchmarks/profile_path.py --repo /tmp/base --repo . --rounds 3 --no-profile --redis
    .venv/bin/python benchmarks/profile_path.py --tracing --no-profile --rounds 3   # what tracing costs
    .venv/bin/python -m pstats router.prof                            # then: sort tottime, stats 30

The router runs `python -m cProfile -m router serve` (`--no-profile`: without cProfile, so its
CPU time is the real one) with a real key, plan, prices and ledger (the benchmarks' config), on a
fake provider that answers at once; `--concurrency` clients send chat requests through aiohttp;
SIGINT drains the router, which writes the profile. Each run prints the router's CPU per request
(`/proc`, from the first to the last request) and, with `--redis`, what redis-server did per
request: commands, read events (a batch of commands the router wrote at once: one round trip)
and its own CPU. `--tracing` runs, every round, tracing off and on (OTLP over HTTP to a sink in
this process that answers 200) with nothing, 10% and every request sampled.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH_AUTH, Processes, cpu_seconds, free_port, start_redis, wait_ready_aio, write_router_config
from _report import MachineLoad, load_note

# Tracing variants (`--tracing`): the router's environment for each; the sink's URL is added.
TRACING: dict[str, dict[str, str]] = {
    "trace-off": {},
    "trace-unsampled": {"OTEL_TRACES_SAMPLER": "always_off"},
    "trace-10%": {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    "trace-all": {"OTEL_TRACES_SAMPLER": "always_on"},
}

BODY = {"model": "bench", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}


@dataclass
class Run:
    repo: Path
    state: str
    took_s: float
    router_cpu_s: float
    requests: int
    redis: dict[str, float]  # per request: commands, reads, writes, cpu_us (empty on memory state)

    def row(self) -> str:
        per = self.router_cpu_s / self.requests * 1e6
        text = f"{self.requests / self.took_s:7.0f} req/s, router CPU {per:5.0f} µs/request"
        if self.redis:
            r = self.redis
            text += (
                f"; redis per request: {r['commands']:.2f} commands, {r['reads']:.2f} read events"
                f" (round trips), {r['cpu_us']:.0f} µs CPU"
            )
        return text


async def load(s: aiohttp.ClientSession, url: str, requests: int, concurrency: int) -> None:
    sent = 0

    async def client() -> None:
        nonlocal sent
        while sent < requests:
            sent += 1
            async with s.post(f"{url}/v1/chat/completions", json=BODY, headers=BENCH_AUTH) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}: {await r.text()}")

    await asyncio.gather(*(client() for _ in range(concurrency)))


def redis_stats(url: str, pid: int) -> dict[str, float]:
    with redis.Redis.from_url(url, protocol=2) as client:
        info = client.info("stats")
    return {
        "commands": float(info["total_commands_processed"]),
        "reads": float(info["total_reads_processed"]),
        "writes": float(info["total_writes_processed"]),
        "cpu_us": cpu_seconds(pid) * 1e6,
    }


async def measured(
    url: str, router_pid: int, redis_at: tuple[str, int] | None, requests: int, concurrency: int
) -> tuple[float, float, dict[str, float]]:
    async with aiohttp.ClientSession() as s:
        await wait_ready_aio(s, url)
        await load(s, url, min(1000, requests), concurrency)  # warm-up: connections, caches
        before = redis_stats(*redis_at) if redis_at else {}
        cpu0, t0 = cpu_seconds(router_pid), time.monotonic()
        await load(s, url, requests, concurrency)
        took, cpu = time.monotonic() - t0, cpu_seconds(router_pid) - cpu0
        after = redis_stats(*redis_at) if redis_at else {}
    return took, cpu, {k: (after[k] - before[k]) / requests for k in after}


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that takes every export and keeps nothing."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def start_sink() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def run_once(
    repo: Path,
    out: Path | None,
    redis_at: tuple[str, int] | None,
    requests: int,
    concurrency: int,
    variant: str = "",
    sink: str = "",
) -> Run:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    if variant in TRACING and variant != "trace-off":
        env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": sink, **TRACING[variant]}
    with tempfile.TemporaryDirectory(prefix="router-profile-") as tmp:
        fport, rport = free_port(), free_port()
        fake = subprocess.Popen(
            [sys.executable, "-m", "router", "fake-upstream", "--port", str(fport), "--latency-ms", "0"],
            cwd=repo,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cfg = Path(tmp) / "router.yaml"
        state = None
        if redis_at:  # a prefix of its own per run: no run sees another's windows
            state = {"backend": "redis", "url": redis_at[0], "key_prefix": f"prof-{os.urandom(4).hex()}"}
        write_router_config(
            cfg,
            rport,
            {"fake": f"http://127.0.0.1:{fport}"},
            {"bench": ["fake"]},
            ledger_path=Path(tmp) / "l.jsonl",
            state=state,
        )
        profiler = ["-m", "cProfile", "-o", str(out)] if out else []
        argv = [sys.executable, *profiler, "-m", "router", "serve", "--config", str(cfg), "--port", str(rport)]
        router = subprocess.Popen(argv, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            took, cpu, per = asyncio.run(
                measured(f"http://127.0.0.1:{rport}", router.pid, redis_at, requests, concurrency)
            )
        finally:
            router.send_signal(signal.SIGINT)  # a graceful drain, then the profile is written
            router.wait(60)
            fake.kill()
            fake.wait()
    return Run(repo, variant or ("redis" if redis_at else "memory"), took, cpu, requests, per)


def print_profile(out: Path, top: int) -> None:
    own: dict[str, float] = defaultdict(float)
    for (path, _, name), (_, _, tottime, _, _) in pstats.Stats(str(out)).stats.items():  # type: ignore[attr-defined]
        if "/router/" in path and name != "lifespan":  # the lifespan's time is the idle event loop
            own[path.split("/router/")[-1] + ":" + name] += tottime
        elif "/redis/" in path:
            own["redis-py:" + path.split("/redis/")[-1] + ":" + name] += tottime
    print(f"  the router's own code and redis-py's: {sum(own.values()):.3f} s (cProfile, own time)")
    for key, t in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {t:7.3f} s  {key}")
    print(f"  profile: {out}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", action="append", help="a checkout to profile (repeat to compare; default this one)")
    p.add_argument("--out", default="router.prof", help="where the profile goes (default router.prof; -N per repo)")
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=1, help="run every repo this many times, alternately")
    p.add_argument("--redis", action="store_true", help="state.backend redis, on a redis-server child")
    p.add_argument("--both", action="store_true", help="memory and Redis state in turn, every round")
    p.add_argument("--no-profile", action="store_true", help="no cProfile: the real CPU per request")
    p.add_argument("--tracing", action="store_true", help="tracing off, and on with 0%%, 10%%, 100%% sampled")
    p.add_argument("--top", type=int, default=25, help="functions to print, by own time")
    args = p.parse_args()
    repos = [Path(r).resolve() for r in (args.repo or [Path(__file__).resolve().parent.parent])]
    outs: list[Path | None] = [None] * len(repos)
    if not args.no_profile:
        base = Path(args.out).resolve()
        outs = [base if len(repos) == 1 else base.with_name(f"{base.stem}-{i}{base.suffix}") for i in range(len(repos))]
    machine = MachineLoad()
    runs: list[Run] = []
    states = ["memory", "redis"] if args.both else ["redis" if args.redis else "memory"]
    if args.tracing:
        states = list(TRACING)
    sink, sink_url = start_sink() if args.tracing else (None, "")
    with tempfile.TemporaryDirectory(prefix="router-profile-redis-") as tmp, Processes(Path(tmp)) as procs:
        redis_at = start_redis(procs) if "redis" in states else None
        for rnd in range(args.rounds):
            for repo, out in zip(repos, outs, strict=True):
                for state in states:
                    at = redis_at if state == "redis" else None
                    run = run_once(repo, out, at, args.requests, args.concurrency, state, sink_url)
                    runs.append(run)
                    print(f"round {rnd + 1} {repo} {state}: {run.row()}", flush=True)
    print(f"\n{args.requests} requests per run, {args.concurrency} concurrent", end="")
    print(", under cProfile" if not args.no_profile else ", no profiler")

    def cpu(r: Run) -> float:
        return r.router_cpu_s / r.requests

    for repo in repos:
        for state in states:
            mine = [r for r in runs if r.repo == repo and r.state == state]
            per = " ".join(f"{cpu(r) * 1e6:.0f}" for r in mine)
            rate = " ".join(f"{r.requests / r.took_s:.0f}" for r in mine)
            print(f"{repo} {state}: CPU µs/request {per}; req/s {rate}")
        if args.both:
            pairs = zip(
                [r for r in runs if r.repo == repo and r.state == "memory"],
                [r for r in runs if r.repo == repo and r.state == "redis"],
                strict=True,
            )
            ratios = " ".join(f"{cpu(m) / cpu(r):.2f}" for m, r in pairs)
            print(f"{repo}: capacity on Redis / on memory (CPU per request, inverted): {ratios}")
    for repo in repos[1:]:
        for state in states:
            pairs = zip(
                [r for r in runs if r.repo == repos[0] and r.state == state],
                [r for r in runs if r.repo == repo and r.state == state],
                strict=True,
            )
            ratios = " ".join(f"{cpu(b) / cpu(a):.2f}" for a, b in pairs)
            print(f"{state}: CPU per request, {repo.name} / {repos[0].name}: {ratios}")
    for repo, out in zip(repos, outs, strict=True):
        if out is not None:
            print(f"\n{repo} (last round):")
            print_profile(out, args.top)
    if sink is not None:
        sink.shutdown()
    print(load_note(machine.finish()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
