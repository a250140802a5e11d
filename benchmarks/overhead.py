"""Router overhead: the same load against the fake provider directly and through the router,
interleaved in one run, reported as ratios.

Starts two child processes: a fake provider (`python -m router fake-upstream`) and the router
(`python -m router serve`, uvloop + httptools) with one provider and one model. The load
generator (aiohttp, this process) runs a closed loop of `--concurrency` workers. Every scenario
runs `--rounds` times against each target, alternating which target goes first, for
`--seconds / --rounds` per run, so a drift of the machine hits both targets alike.

    .venv/bin/python benchmarks/overhead.py
    .venv/bin/python benchmarks/overhead.py --concurrency 1 --scenarios chat,chat-stream
    .venv/bin/python benchmarks/overhead.py --json /tmp/overhead.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    LoadResult,
    Processes,
    Sample,
    cpu_seconds,
    free_port,
    install_sigterm_as_interrupt,
    interruptible,
    markdown_table,
    new_event_loop_policy,
    percentile,
    run_load,
    start_fake,
    start_router,
    write_router_config,
)

MODEL = "bench"  # the router's public model name; the fake echoes whatever model it gets


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    body: dict[str, Any]
    marker: bytes  # must occur near the end of a good answer
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


_MSG = [{"role": "user", "content": "Say hello."}]
_ANTHROPIC_HEADERS = (("anthropic-version", "2023-06-01"),)
SCENARIOS = {
    s.name: s
    for s in (
        Scenario("chat", "/v1/chat/completions", {"messages": _MSG}, b'"finish_reason":"stop"'),
        Scenario("chat-stream", "/v1/chat/completions", {"messages": _MSG, "stream": True}, b"data: [DONE]"),
        Scenario("anthropic", "/v1/messages", {"max_tokens": 64, "messages": _MSG}, b'"stop_reason":"end_turn"', _ANTHROPIC_HEADERS),
        Scenario(
            "anthropic-stream",
            "/v1/messages",
            {"max_tokens": 64, "messages": _MSG, "stream": True},
            b"event: message_stop",
            _ANTHROPIC_HEADERS,
        ),
        Scenario("responses", "/v1/responses", {"input": "Say hello."}, b'"status":"completed"'),
        Scenario("responses-stream", "/v1/responses", {"input": "Say hello.", "stream": True}, b"event: response.completed"),
    )
}
DEFAULT_SCENARIOS = "chat,chat-stream,anthropic-stream,responses"


def make_request(session: aiohttp.ClientSession, base_url: str, sc: Scenario, model: str):  # type: ignore[no-untyped-def]
    url = base_url + sc.path
    payload = json.dumps({"model": model, **sc.body}).encode()
    headers = {"content-type": "application/json", "authorization": "Bearer client-key", **dict(sc.headers)}

    async def one() -> Sample:
        t0 = time.perf_counter()
        async with session.post(url, data=payload, headers=headers) as resp:
            body = b"".join([chunk async for chunk in resp.content.iter_any()])  # the whole stream
            status = resp.status
        latency = time.perf_counter() - t0
        ok = status == 200 and sc.marker in body[-600:]
        return Sample(ok, latency, {} if ok else {"status": status, "tail": body[-200:].decode(errors="replace")})

    return one


@dataclass
class Acc:
    """One (scenario, target) pair, accumulated over the rounds."""

    ok: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    cpu_router_s: float = 0.0
    cpu_fake_s: float = 0.0
    cpu_client_s: float = 0.0
    first_failure: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.latencies_ms: list[float] = []

    def add(self, r: LoadResult, cpu_router: float, cpu_fake: float, cpu_client: float) -> None:
        self.ok += r.ok
        self.failed += len(r.samples) - r.ok
        self.elapsed_s += r.elapsed_s
        self.latencies_ms += r.latencies_ms()
        self.cpu_router_s += cpu_router
        self.cpu_fake_s += cpu_fake
        self.cpu_client_s += cpu_client
        if self.first_failure is None:
            bad = next((s for s in r.samples if not s.ok), None)
            if bad is not None:
                self.first_failure = bad.info

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        n = max(1, self.ok)
        return {
            "ok": self.ok,
            "failed": self.failed,
            "elapsed_s": round(self.elapsed_s, 3),
            "rps": self.ok / self.elapsed_s if self.elapsed_s else 0.0,
            "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99),
            "mean_ms": sum(lat) / len(lat) if lat else float("nan"),
            "router_cpu_us_per_req": self.cpu_router_s / n * 1e6,
            "fake_cpu_us_per_req": self.cpu_fake_s / n * 1e6,
            "client_cpu_us_per_req": self.cpu_client_s / n * 1e6,
            "first_failure": self.first_failure,
        }


async def measure(args: argparse.Namespace, fake_url: str, router_url: str, fake_pid: int, router_pid: int) -> dict[str, Any]:
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    targets = {"direct": (fake_url, "bench-model"), "router": (router_url, MODEL)}
    per_run = args.seconds / args.rounds
    acc = {(n, t): Acc() for n in names for t in targets}
    connector = aiohttp.TCPConnector(limit=args.concurrency * 2, limit_per_host=args.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if args.warmup > 0:  # open the keep-alive connections of both targets once
            for base, model in targets.values():
                await run_load(make_request(session, base, SCENARIOS[names[0]], model), args.concurrency, seconds=args.warmup)
        for rnd in range(args.rounds):
            for i, name in enumerate(names):
                order = ["direct", "router"] if (rnd + i) % 2 == 0 else ["router", "direct"]
                for target in order:
                    base, model = targets[target]
                    one = make_request(session, base, SCENARIOS[name], model)
                    c0 = (cpu_seconds(router_pid), cpu_seconds(fake_pid), time.process_time())
                    result = await run_load(one, args.concurrency, seconds=per_run)
                    c1 = (cpu_seconds(router_pid), cpu_seconds(fake_pid), time.process_time())
                    acc[(name, target)].add(result, c1[0] - c0[0], c1[1] - c0[1], c1[2] - c0[2])
                    if result.exceptions:
                        print(f"  {name}/{target}: exceptions {result.exceptions}", file=sys.stderr)
                    print(
                        f"  round {rnd + 1}/{args.rounds} {name:<17} {target:<6} "
                        f"{result.ok / result.elapsed_s:8.0f} req/s  ({len(result.samples) - result.ok} failed)",
                        file=sys.stderr,
                    )
    rows = []
    for name in names:
        d, r = acc[(name, "direct")].summary(), acc[(name, "router")].summary()
        rows.append(
            {
                "scenario": name,
                "direct": d,
                "router": r,
                "throughput_ratio": r["rps"] / d["rps"] if d["rps"] else float("nan"),
                "added_p50_ms": r["p50_ms"] - d["p50_ms"],
                "added_p99_ms": r["p99_ms"] - d["p99_ms"],
            }
        )
    return {"scenarios": rows}


def print_report(results: dict[str, Any]) -> None:
    meta = results["meta"]
    print(
        f"\nRouter overhead: concurrency {meta['concurrency']}, {meta['seconds']} s per scenario and target "
        f"({meta['rounds']} interleaved rounds), fake latency {meta['fake_latency_ms']} ms, "
        f"{meta['nproc']} CPUs, Python {meta['python']}, router log level {meta['router_log_level']}\n"
    )
    headers = [
        "scenario", "req/s direct", "req/s router", "ratio", "p50 direct ms", "p50 router ms", "added p50 ms",
        "p99 direct ms", "p99 router ms", "router CPU us/req", "failed d/r",
    ]  # fmt: skip
    rows = []
    for s in results["scenarios"]:
        d, r = s["direct"], s["router"]
        rows.append([
            s["scenario"], f"{d['rps']:.0f}", f"{r['rps']:.0f}", f"{s['throughput_ratio']:.2f}",
            f"{d['p50_ms']:.2f}", f"{r['p50_ms']:.2f}", f"{s['added_p50_ms']:+.2f}",
            f"{d['p99_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['router_cpu_us_per_req']:.0f}",
            f"{d['failed']}/{r['failed']}",
        ])  # fmt: skip
    print(markdown_table(headers, rows))
    for s in results["scenarios"]:
        for target in ("direct", "router"):
            if s[target]["first_failure"]:
                print(f"\nfirst failure, {s['scenario']} {target}: {s[target]['first_failure']}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concurrency", type=int, default=32, help="closed-loop workers (default 32)")
    p.add_argument("--seconds", type=float, default=3.0, help="measured seconds per scenario and target (default 3)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved runs the seconds are split into (default 2)")
    p.add_argument("--scenarios", default=DEFAULT_SCENARIOS, help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    p.add_argument("--warmup", type=float, default=0.5, help="seconds of unmeasured load per target at start")
    p.add_argument("--fake-latency-ms", type=float, default=0, help="fake provider's time to first byte (default 0)")
    p.add_argument("--fake-chunks", type=int, default=4, help="content deltas per fake stream (default 4)")
    p.add_argument("--router-log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="info (default) includes one access log line per request, as in production")  # fmt: skip
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.concurrency < 1 or args.seconds <= 0 or args.rounds < 1:
        p.error("--concurrency and --rounds must be >= 1, --seconds > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_as_interrupt()
    new_event_loop_policy()
    with tempfile.TemporaryDirectory(prefix="router-bench-") as tmp, Processes(Path(tmp)) as procs:
        try:
            fake_args = ["--latency-ms", str(args.fake_latency_ms), "--chunks", str(args.fake_chunks)]
            fake, fake_url = start_fake(procs, "bench", *fake_args)
            port = free_port()
            cfg = Path(tmp) / "router.yaml"
            write_router_config(
                cfg, port, {"bench": fake_url}, MODEL,
                breaker={"fail_max": 1000, "reset_timeout_s": 1}, log_level=args.router_log_level,
                max_connections=max(100, args.concurrency * 2),
            )  # fmt: skip
            router, router_url = start_router(procs, cfg, port)
            print(f"fake provider {fake_url} (pid {fake.pid}), router {router_url} (pid {router.pid})", file=sys.stderr)
            results = asyncio.run(interruptible(measure(args, fake_url, router_url, fake.pid, router.pid)))
            for name, proc in (("router", router), ("fake provider", fake)):
                if proc.poll() is not None:
                    print(f"WARNING: {name} exited during the run:\n{procs.log_tail(proc)}", file=sys.stderr)
            errors = [ln for ln in (Path(tmp) / "router.log").read_text(errors="replace").splitlines()
                      if '"level":"error"' in ln or "Traceback" in ln]  # fmt: skip
            if errors:
                print(f"WARNING: {len(errors)} error line(s) in the router log, first: {errors[0][:500]}", file=sys.stderr)
        except KeyboardInterrupt:
            print("\ninterrupted; stopping the child processes", file=sys.stderr)
            return 130
    results["meta"] = {
        "date": datetime.date.today().isoformat(),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "warmup_s": args.warmup,
        "fake_latency_ms": args.fake_latency_ms,
        "fake_chunks": args.fake_chunks,
        "router_log_level": args.router_log_level,
        "router_errors_in_log": len(errors),
    }
    print_report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
