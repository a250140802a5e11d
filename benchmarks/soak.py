"""Soak (from the hardening work): mixed normal traffic for a bounded time while, side by side, slow clients,
oversized and malformed requests, provider faults and a Redis restart run. Prints the errors seen
by well-behaved clients (must be 0), the 5xx answers caused by bad input (must be 0), peak and
final memory and descriptors, and the ledger's total against the budgets' view (Redis).

Set-up: three fakes, `alpha` (all three formats), `beta` (Anthropic Messages only) and `gamma`
(OpenAI chat only), so most routes translate; models `soak-a` (all three), `soak-b` (beta,
gamma) and `soak-c` (alpha, gamma); the router (1 worker) on Redis state with
`on_unavailable: fail_open` (well-behaved requests pass uncounted while Redis is down), a plan
with a budget, prices, the ledger, `max_body_bytes` 1 MiB. One key per traffic kind (`good`,
`acct`, `bad`, `slow`), so each is accounted apart.

For `--seconds` S (default 60):
- well-behaved: the load generator (its own process), `--concurrency` closed-loop clients
  cycling chat, messages and responses, stream and not, over the three models; any answer but
  a complete 200 is an error;
- `acct`: one client, paused from 2 s before the Redis restart until 1.5 s after Redis is back,
  so its ledger total must equal its Redis spend exactly;
- bad input: `--bad-workers` connections sending the cases of `_abuse.bad_cases` round robin;
  any 5xx is a failure;
- slow clients: `--slow-clients` connections (headers a byte a second, a body shorter than
  declared, silent, idle after an answer, a header that never ends at 64 KiB/s), each held
  until the router closes it (then the next one connects) or the end;
- provider faults, one provider at a time, spaced so that each model keeps a route that is both
  healthy and out of its breaker (breakers retry after 1-2 s here): alpha answers 503 from
  0.05 S, beta hangs from 0.15 S, alpha sends a garbage stream event from 0.25 S, gamma resets
  streams from 0.50 S to 0.62 S, beta stalls streams from 0.77 S to 0.90 S;
- Redis restart at 0.42 S: SIGTERM (it saves its data to disk), down for `--redis-down-s`, then
  started again on the same port from that data, so the budget window survives.
The router's RSS and descriptors are sampled every 0.5 s (the descriptors by kind: client
connections, upstream, Redis, other); "final" is after every client has gone.

    .ci/run bench soak                 # ~75 s
    .ci/run bench soak --seconds 20    # ~35 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _abuse import SLOW_KINDS, bad_cases, bad_input_loop, exchange, request, slow_client
from _common import (
    Processes,
    bench_key,
    free_port,
    http_post_json,
    install_sigterm_as_interrupt,
    start_fake,
    start_redis,
    start_router,
    workdir,
    write_router_config,
)
from _loadgen import LoadGen
from _report import MachineLoad, add_output_args, load_note, run_meta, write_json
from _soak_report import Sampler, analyse, chart, print_report

PROVIDERS = {"alpha": None, "beta": ["anthropic-messages"], "gamma": ["openai-chat"]}  # None: all formats
MODELS = {"soak-a": ["alpha", "beta", "gamma"], "soak-b": ["beta", "gamma"], "soak-c": ["alpha", "gamma"]}
KEYS = ("good", "acct", "bad", "slow")
MAX_BODY = 1 << 20
TEXT = "Hello from the fake provider: every route gives this same answer."
# (from, to) as shares of S, the provider, what it does, the fault, the switch back. One provider
# at a time, and gamma (which shares soak-b with beta and soak-c with alpha) only after the
# breakers of the others have had time to close again (BREAKER below), and they only after
# gamma's: so every model always has a route that is healthy and not shunned.
FAULTS: list[tuple[float, float, str, str, dict[str, Any], dict[str, Any]]] = [
    (0.05, 0.15, "alpha", "answers 503", {"status": 503}, {"status": None}),
    (0.15, 0.25, "beta", "hangs before the first byte", {"hang": True}, {"hang": False}),
    (0.25, 0.35, "alpha", "sends a garbage stream event", {"garbage_event": True}, {"garbage_event": False}),
    (0.50, 0.62, "gamma", "resets streams after 2 pieces", {"reset_after_chunks": 2}, {"reset_after_chunks": None}),
    (0.77, 0.90, "beta", "stalls streams after 2 pieces", {"stall_after_chunks": 2}, {"stall_after_chunks": None}),
]
REDIS_AT = 0.42
# A route's breaker tries again 1 s after it opened, 2 s at most after failed trials (less
# jitter), so a provider is back in use within ~2-3 s of its recovery: the gaps around gamma's
# fault (0.15 S, 3 s at the shortest run) leave room for that.
BREAKER = {"fail_max": 5, "reset_timeout_s": 1.0, "reset_timeout_max_s": 2.0}
_MSG = [{"role": "user", "content": "Say hello."}]


def well_behaved_requests() -> list[dict[str, Any]]:
    """Every format, stream and not, on every model; `end_marker` is in the last 256 bytes of a
    complete answer."""
    kinds: list[tuple[str, dict[str, Any], str, str]] = [
        ("/v1/chat/completions", {"messages": _MSG, "max_tokens": 16}, '"stop"', "[DONE]"),
        ("/v1/messages", {"messages": _MSG, "max_tokens": 16}, '"end_turn"', "message_stop"),
        ("/v1/responses", {"input": "Say hello.", "max_output_tokens": 16}, '"total_tokens"', '"total_tokens"'),
    ]
    out = []
    for model in MODELS:
        for path, body, end, stream_end in kinds:
            out.append({"path": path, "body": {"model": model, **body}, "end_marker": end})
            out.append({"path": path, "body": {"model": model, **body, "stream": True}, "end_marker": stream_end})
    return out


async def set_faults(fakes: dict[str, str], name: str, faults: dict[str, Any]) -> None:
    status, answer = await asyncio.to_thread(http_post_json, fakes[name] + "/_admin/faults", faults)
    if status != 200:
        raise RuntimeError(f"{name}: /_admin/faults {faults}: HTTP {status} {answer!r}")


async def fault_timeline(fakes: dict[str, str], start_at: float, seconds: float) -> list[tuple[float, str]]:
    events = sorted(
        [(a, p, f"{p} {what}", f) for a, _, p, what, f, _ in FAULTS]
        + [(b, p, f"{p} healthy again", undo) for _, b, p, _, _, undo in FAULTS]
    )
    applied = []
    for share, name, label, faults in events:
        await asyncio.sleep(max(0.0, start_at + share * seconds - time.monotonic()))
        await set_faults(fakes, name, faults)
        applied.append((time.monotonic() - start_at, label))
        print(f"  t={applied[-1][0]:5.2f}s {label}", file=sys.stderr)
    return applied


async def restart_redis(
    procs: Processes, pid: int, port: int, data_dir: Path, at: float, down_s: float, back: asyncio.Event
) -> dict[str, float]:
    """Stop redis-server (it saves), wait `down_s`, start it again on the same port from the saved
    data. Returns the wall times of both, for the ledger check."""
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    proc = next(p for _, p, _ in procs.procs if p.pid == pid)
    stop_wall, stop_mono = time.time(), time.monotonic()
    await asyncio.to_thread(procs.stop, proc)
    await asyncio.sleep(down_s)
    await asyncio.to_thread(start_redis, procs, port=port, data_dir=data_dir, name="redis-restarted")
    back.set()
    up_wall = time.time()
    print(f"  Redis restarted, down {up_wall - stop_wall:.2f} s", file=sys.stderr)
    return {"stop_wall": stop_wall, "stop_mono": stop_mono, "up_wall": up_wall, "down_s": up_wall - stop_wall}


async def acct_loop(port: int, pause_at: float, back: asyncio.Event, deadline: float) -> dict[str, int]:
    """One well-behaved client that is quiet around the Redis restart (its accounting must match
    exactly): returns its statuses."""
    statuses: dict[str, int] = {}
    n = 0
    while time.monotonic() < deadline:
        if time.monotonic() >= pause_at and not back.is_set():
            await back.wait()
            await asyncio.sleep(1.5)
            continue
        body = {"model": "soak-a", "messages": _MSG, "max_tokens": 16, "stream": n % 2 == 1}
        ex = await exchange(port, request("POST", "/v1/chat/completions", _json(body), key="acct"), timeout=30.0)
        label = str(ex.status) if ex.status is not None else f"no answer: {ex.outcome}"
        statuses[label] = statuses.get(label, 0) + 1
        n += 1
        await asyncio.sleep(0.02)
    return statuses


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


async def soak(args: argparse.Namespace, procs: Processes, tmp: Path) -> dict[str, Any]:
    fakes = {
        n: start_fake(procs, n, "--latency-ms", "5", "--chunks", "6", "--chunk-delay-ms", "5")[1] for n in PROVIDERS
    }
    data_dir = tmp / "redis-data"
    data_dir.mkdir()
    redis_url, redis_pid = start_redis(procs, data_dir=data_dir)
    redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    cfg, port = tmp / "router.yaml", free_port()
    ledger = tmp / "ledger.jsonl"
    write_router_config(
        cfg,
        port,
        fakes,
        MODELS,
        ledger_path=ledger,
        state={"backend": "redis", "url": redis_url, "on_unavailable": "fail_open"},
        timeouts={"first_token_s": 2, "idle_s": 2},
        breaker=BREAKER,
        keys=KEYS,
        server={"max_body_bytes": MAX_BODY, "drain_grace_s": 0},  # nothing to drain at the end
        formats={n: f for n, f in PROVIDERS.items() if f},
    )
    router, url = start_router(procs, cfg, port)
    for name in fakes:
        await set_faults(fakes, name, {"text": TEXT})
    fake_ports = {int(u.rsplit(":", 1)[1]) for u in fakes.values()}
    sampler = Sampler(router.pid, port, fake_ports, redis_port)
    baseline = sampler.sample(0.0)
    gen = LoadGen(procs)
    seconds = float(args.seconds)
    start_at = time.monotonic() + 1.0
    deadline = start_at + seconds
    gen.start(
        url,
        well_behaved_requests(),
        args.concurrency,
        seconds,
        warmup_s=0,
        headers={"authorization": f"Bearer {bench_key('good')}"},
        record="full",
        start_at=start_at,
    )
    sampling = asyncio.create_task(sampler.run(start_at))
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    back = asyncio.Event()
    redis_at = start_at + REDIS_AT * seconds
    cases = bad_cases("soak-a", MAX_BODY)
    side: list[asyncio.Future[Any]] = [
        asyncio.ensure_future(fault_timeline(fakes, start_at, seconds)),
        asyncio.ensure_future(restart_redis(procs, redis_pid, redis_port, data_dir, redis_at, args.redis_down_s, back)),
        asyncio.ensure_future(acct_loop(port, redis_at - 2.0, back, deadline)),
        asyncio.ensure_future(bad_input_loop(port, cases, args.bad_workers, deadline)),
        *(
            asyncio.ensure_future(slow_client(port, SLOW_KINDS[i % len(SLOW_KINDS)], "soak-a", deadline))
            for i in range(args.slow_clients)
        ),
    ]
    result = await asyncio.to_thread(gen.result)
    events, redis_times, acct, bad, *slow = await asyncio.gather(*side)
    redis_times["at_s"] = redis_times["stop_mono"] - start_at
    sampler.mark(redis_times["at_s"], "Redis restart")
    sampler.mark(time.monotonic() - start_at, "load over")
    assert gen.proc.stdin is not None
    gen.proc.stdin.write(b'{"op":"quit"}\n')
    gen.proc.stdin.flush()
    await asyncio.to_thread(gen.proc.wait, 10)
    # every client is gone: wait (bounded) for the router to close its side of their connections
    settle_deadline = time.monotonic() + 15.0
    while time.monotonic() < settle_deadline:
        last = sampler.sample(time.monotonic() - start_at)
        if last["fds"]["clients"] == 0:
            break
        await asyncio.sleep(0.5)
    final = sampler.sample(time.monotonic() - start_at)
    sampling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampling
    return {
        "start_at": start_at,
        "result": result,
        "events": events,
        "redis": redis_times,
        "acct": acct,
        "bad": bad,
        "slow": [c for conns in slow for c in conns],
        "baseline": baseline,
        "final": final,
        "samples": sampler.samples,
        "marks": sampler.marks,
        "ledger": ledger,
        "router_log": procs.log_path(router),
        "redis_url": redis_url,
        "requests": well_behaved_requests(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="how long the load runs, 20-3600 (default 60)")
    p.add_argument("--concurrency", type=int, default=16, help="well-behaved closed-loop clients (default 16)")
    p.add_argument("--bad-workers", type=int, default=4, help="connections sending bad requests at a time (default 4)")
    p.add_argument("--slow-clients", type=int, default=32, help="slow connections held at a time (default 32)")
    p.add_argument("--redis-down-s", type=float, default=1.0, help="how long Redis stays down (default 1)")
    add_output_args(p, "soak")
    args = p.parse_args(argv)
    if not 20 <= args.seconds <= 3600 or args.concurrency < 1 or args.bad_workers < 1 or args.slow_clients < 0:
        p.error("--seconds must be 20-3600, --concurrency and --bad-workers >= 1, --slow-clients >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_as_interrupt()
    meta, load = run_meta(), MachineLoad()
    with workdir("router-soak-", args.keep_logs) as tmp, Processes(tmp) as procs:
        try:
            raw = asyncio.run(soak(args, procs, tmp))
            res = analyse(raw, KEYS)
        except KeyboardInterrupt:
            print("\ninterrupted; stopping the child processes", file=sys.stderr)
            return 130
    note = load_note(load.finish())
    failed = print_report(res, meta, args, note)
    write_json(args.json, {"meta": meta, "args": vars(args), "machine_load": note, **res})
    chart(res, args.chart)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
