"""Failover under injected faults: three fake providers behind the router, one of them broken
in a different way per phase, and what the client sees.

Phases (the fault is always on provider `alpha`; `beta` and `gamma` stay healthy):
  a. healthy   - no fault
  b. 503       - alpha answers 503 to every completion request
  c. hang      - alpha never answers; the router gives up after first_token_s (default 0.5 s)
  d. reset     - alpha resets the connection after the first content delta of a stream

Each phase starts a fresh router (`python -m router serve`, so breakers and latency estimates
start from zero) and sends `--requests` streaming requests with `--concurrency` workers, reading
every stream to its end. The fake providers are child processes too, steered through their
/_admin endpoints. Failover happens before the first content byte only: in phase d the stream
is already committed to alpha when it breaks, so the client gets a stream that ends with an error
event - the designed behaviour, counted separately. Breakers open after `--breaker-fail-max`
consecutive failures, which is what caps the failovers and the broken streams.

    .venv/bin/python benchmarks/failover.py
    .venv/bin/python benchmarks/failover.py --requests 500 --format anthropic --json /tmp/failover.json
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
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    Processes,
    Sample,
    free_port,
    http_get,
    http_post_json,
    install_sigterm_as_interrupt,
    interruptible,
    markdown_table,
    new_event_loop_policy,
    percentile,
    run_load,
    start_fake,
    start_router,
    stream_outcome,
    write_router_config,
)

PROVIDERS = ("alpha", "beta", "gamma")
FAULTY = "alpha"
MODEL = "m"
PHASES: list[tuple[str, str, dict[str, Any]]] = [
    ("a", "all healthy", {}),
    ("b", "alpha 503 on everything", {"status": 503}),
    ("c", "alpha hangs", {"hang": True}),
    ("d", "alpha resets mid-stream", {"reset_after_chunks": 1}),
]
_MSG = [{"role": "user", "content": "Say hello."}]
FORMATS = {
    "chat": ("/v1/chat/completions", {"messages": _MSG, "stream": True}, {}),
    "anthropic": ("/v1/messages", {"max_tokens": 64, "messages": _MSG, "stream": True}, {"anthropic-version": "2023-06-01"}),
    "responses": ("/v1/responses", {"input": "Say hello.", "stream": True}, {}),
}


def make_request(session: aiohttp.ClientSession, router_url: str, fmt: str):  # type: ignore[no-untyped-def]
    path, body, extra = FORMATS[fmt]
    url = router_url + path
    payload = json.dumps({"model": MODEL, **body}).encode()
    headers = {"content-type": "application/json", **extra}

    async def one() -> Sample:
        t0 = time.perf_counter()
        async with session.post(url, data=payload, headers=headers) as resp:
            data = b"".join([chunk async for chunk in resp.content.iter_any()])
            status = resp.status
            provider = resp.headers.get("x-router-provider")
            attempts = int(resp.headers.get("x-router-attempts", "0") or 0)
        latency = time.perf_counter() - t0
        outcome = stream_outcome(data) if status == 200 else f"http_{status}"
        info = {"status": status, "provider": provider, "attempts": attempts, "outcome": outcome}
        if outcome != "complete":
            info["tail"] = data[-300:].decode(errors="replace")
        return Sample(outcome == "complete", latency, info)

    return one


def upstream_counts(fakes: dict[str, str]) -> dict[str, int]:
    """Completion requests each fake provider received (every attempt the router made)."""
    out = {}
    for name, url in fakes.items():
        status, body = http_get(url + "/_admin/stats")
        reqs = json.loads(body)["requests"] if status == 200 else {}
        out[name] = sum(v for k, v in reqs.items() if k.startswith("/v1/") and k != "/v1/models")
    return out


def set_faults(fakes: dict[str, str], base: dict[str, Any], fault: dict[str, Any]) -> None:
    for name, url in fakes.items():
        for path, data in (("/_admin/reset", {}), ("/_admin/faults", {**base, **(fault if name == FAULTY else {})})):
            status, answer = http_post_json(url + path, data)
            if status != 200:
                raise RuntimeError(f"{name}{path}: HTTP {status} {answer!r}")


async def run_phase(args: argparse.Namespace, router_url: str) -> tuple[list[Sample], float, dict[str, int]]:
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        result = await run_load(make_request(session, router_url, args.format), args.concurrency, requests=args.requests)
    return result.samples, result.elapsed_s, result.exceptions


def summarize(phase: str, title: str, samples: list[Sample], elapsed: float, exceptions: dict[str, int],
              upstream: dict[str, int], breaker: str) -> dict[str, Any]:  # fmt: skip
    n = len(samples)
    outcomes = Counter(s.info.get("outcome", s.info.get("exception", "?")) for s in samples)
    served = Counter(s.info.get("provider") for s in samples if s.info.get("status") == 200)
    attempts = Counter(s.info.get("attempts", 0) for s in samples if "attempts" in s.info)
    lat = sorted(s.latency_s * 1000 for s in samples)
    first_bad = next((s.info for s in samples if not s.ok), None)
    return {
        "phase": phase,
        "title": title,
        "requests": n,
        "complete": outcomes.get("complete", 0),
        "success_rate": outcomes.get("complete", 0) / n if n else float("nan"),
        "http_200": sum(1 for s in samples if s.info.get("status") == 200),
        "stream_error_end": outcomes.get("error", 0),
        "truncated": outcomes.get("truncated", 0),
        "outcomes": dict(outcomes),
        "exceptions": exceptions,
        "failed_over": sum(c for a, c in attempts.items() if a > 1),
        "attempts": {str(k): v for k, v in sorted(attempts.items())},
        "served_by": {p: served.get(p, 0) for p in PROVIDERS},
        "upstream_requests": upstream,
        "faulty_breaker_at_end": breaker,
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "max_ms": lat[-1] if lat else float("nan"),
        "elapsed_s": round(elapsed, 3),
        "first_failure": first_bad,
    }


def print_report(results: dict[str, Any]) -> None:
    meta = results["meta"]
    print(
        f"\nFailover: {meta['requests']} streaming {meta['format']} requests per phase, concurrency "
        f"{meta['concurrency']}, first_token_s {meta['first_token_s']}, breaker fail_max {meta['breaker_fail_max']}, "
        f"fake latency {meta['fake_latency_ms']} ms, {meta['nproc']} CPUs, Python {meta['python']}\n"
    )
    headers = [
        "phase", "success", "HTTP 200", "error-ended streams", "failed over", "served a/b/g",
        "upstream tries a/b/g", f"{FAULTY} breaker", "p50 ms", "p99 ms",
    ]  # fmt: skip
    rows = []
    for r in results["phases"]:
        rows.append([
            f"{r['phase']}. {r['title']}",
            f"{r['success_rate'] * 100:.1f}% ({r['complete']}/{r['requests']})",
            r["http_200"],
            r["stream_error_end"],
            r["failed_over"],
            "/".join(str(r["served_by"][p]) for p in PROVIDERS),
            "/".join(str(r["upstream_requests"][p]) for p in PROVIDERS),
            r["faulty_breaker_at_end"],
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
        ])  # fmt: skip
    print(markdown_table(headers, rows))
    print("\nattempts per request (x-router-attempts -> count):")
    for r in results["phases"]:
        other = {k: v for k, v in r["outcomes"].items() if k not in ("complete", "error")}
        extra = f"; other outcomes {other}" if other else ""
        print(f"  {r['phase']}: {r['attempts']}{extra}")
    for r in results["phases"]:
        if r["first_failure"]:
            print(f"\nfirst failure in phase {r['phase']}: {r['first_failure']}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=200, help="requests per phase (default 200)")
    p.add_argument("--concurrency", type=int, default=8, help="closed-loop workers (default 8)")
    p.add_argument("--format", default="chat", choices=list(FORMATS), help="client wire format (default chat)")
    p.add_argument("--phases", default="a,b,c,d", help="comma-separated subset of a,b,c,d")
    p.add_argument("--first-token-s", type=float, default=0.5, help="router timeouts.first_token_s (default 0.5)")
    p.add_argument("--breaker-fail-max", type=int, default=5, help="router breaker.fail_max (default 5)")
    p.add_argument("--fake-latency-ms", type=float, default=20, help="healthy time to first byte (default 20)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        p.error("--requests and --concurrency must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = {x.strip() for x in args.phases.split(",")}
    phases = [ph for ph in PHASES if ph[0] in wanted]
    install_sigterm_as_interrupt()
    new_event_loop_policy()
    results: dict[str, Any] = {"phases": []}
    router_errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="router-failover-") as tmp, Processes(Path(tmp)) as procs:
        try:
            fakes = {name: start_fake(procs, name)[1] for name in PROVIDERS}
            base = {"latency_ms": args.fake_latency_ms}
            for phase, title, fault in phases:
                set_faults(fakes, base, fault)
                port = free_port()
                cfg = Path(tmp) / f"router-{phase}.yaml"
                write_router_config(
                    cfg, port, fakes, MODEL,
                    timeouts={"first_token_s": args.first_token_s, "idle_s": 2, "total_s": 10},
                    breaker={"fail_max": args.breaker_fail_max, "reset_timeout_s": 30},
                    log_level="warning",
                )  # fmt: skip
                router, router_url = start_router(procs, cfg, port, name=f"router-{phase}")
                print(f"phase {phase}: {title} (router {router_url})", file=sys.stderr)
                samples, elapsed, exceptions = asyncio.run(interruptible(run_phase(args, router_url)))
                status, body = http_get(router_url + "/health/ready")
                breaker = json.loads(body)["providers"][FAULTY]["breaker"] if body else "?"
                upstream = upstream_counts(fakes)
                procs.stop(router)
                log = (Path(tmp) / f"router-{phase}.log").read_text(errors="replace")
                router_errors += [f"{phase}: {ln}" for ln in log.splitlines() if '"level":"error"' in ln or "Traceback" in ln]
                results["phases"].append(summarize(phase, title, samples, elapsed, exceptions, upstream, breaker))
        except KeyboardInterrupt:
            print("\ninterrupted; stopping the child processes", file=sys.stderr)
            return 130
    results["meta"] = {
        "date": datetime.date.today().isoformat(),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "requests": args.requests,
        "concurrency": args.concurrency,
        "format": args.format,
        "first_token_s": args.first_token_s,
        "breaker_fail_max": args.breaker_fail_max,
        "fake_latency_ms": args.fake_latency_ms,
        "router_errors_in_log": router_errors[:20],
    }
    print_report(results)
    if router_errors:
        print(f"\nWARNING: {len(router_errors)} error line(s) in the router logs, first: {router_errors[0][:500]}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
