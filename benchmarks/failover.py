"""Failover under load (one of the first performance targets): three fake providers behind one
router, steady load, and a timeline of faults; what the clients saw, and how fast the router stopped
and resumed sending.

Timeline (seconds, times --scale): 0 all healthy; 10 `alpha` answers 503 to everything; 20 `beta`
also hangs before its first byte (the router gives up after first_token_s); 30 both recover; 40
`alpha` and `beta` cut every stream after 2 of its content pieces (a reset mid-answer: the router
finishes each on another route); 50 end. `gamma` stays healthy throughout, so the target is zero
client errors for the whole run. Every fake gives the same answer text, as one model would.

The load generator (its own process) runs `--concurrency` closed-loop clients, alternating
non-stream and stream chat requests, and records every request: start, latency, status, the
provider that served (x-router-provider) and the attempts (x-router-attempts). Meanwhile this
script samples each fake's request counter (/_admin/stats) every 100 ms: that shows every
attempt the router made, including the ones that failed over. The router runs the full path
(key, plan, budget, prices, ledger); its breaker waits and EWMA half-life scale with --scale.

    .ci/run bench failover                 # ~45 s
    .ci/run bench failover --scale 0.25    # ~12 s
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    BENCH_AUTH,
    Processes,
    free_port,
    http_get,
    http_post_json,
    install_sigterm_as_interrupt,
    router_errors,
    start_fake,
    start_router,
    workdir,
    write_router_config,
)
from _loadgen import LoadGen
from _report import (
    MachineLoad,
    add_output_args,
    load_note,
    markdown_table,
    meta_line,
    percentile,
    pyplot,
    run_meta,
    save_chart,
    write_json,
)

PROVIDERS = ("alpha", "beta", "gamma")
COLORS = {"alpha": "tab:red", "beta": "tab:orange", "gamma": "tab:green", "": "black"}
MODEL = "m"
_MSG = [{"role": "user", "content": "Say hello."}]
REQUESTS = [  # alternating: half non-stream, half stream
    {
        "path": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": _MSG, "max_tokens": 16},
        "end_marker": '"stop"',
    },
    {
        "path": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": _MSG, "max_tokens": 16, "stream": True},
        "end_marker": "[DONE]",
    },
]
# (time at scale 1, label, {provider: faults}); the phases are the spans between them
EVENTS: list[tuple[float, str, dict[str, dict[str, Any]]]] = [
    (10.0, "alpha 503", {"alpha": {"status": 503}}),
    (20.0, "beta hangs", {"beta": {"hang": True}}),
    (30.0, "both recover", {"alpha": {"status": None}, "beta": {"hang": False}}),
    (40.0, "streams cut", {"alpha": {"reset_after_chunks": 2}, "beta": {"reset_after_chunks": 2}}),
]
END = 50.0
PHASE_NAMES = ["healthy", "alpha 503", "alpha 503 + beta hangs", "recovered", "streams cut mid-answer"]
TEXT = "Hello from the fake provider: every route gives this same answer."  # starts with "H"
SAMPLE_S = 0.1


def attempts_count(url: str) -> int:
    status, body = http_get(url + "/_admin/stats", timeout=1.0)
    reqs = json.loads(body)["requests"] if status == 200 else {}
    return sum(v for k, v in reqs.items() if k != "/v1/models")


def drive(
    args: argparse.Namespace, gen: LoadGen, fakes: dict[str, str], url: str
) -> tuple[dict[str, Any], list[Any], float]:
    """Run the load and the fault timeline; sample the fakes' counters every 100 ms."""
    warmup = 1.0
    start_at = time.monotonic() + warmup + 1.0  # the generator warms up (connections, EWMAs) first
    gen.start(
        url,
        REQUESTS,
        args.concurrency,
        END * args.scale,
        warmup_s=warmup,
        headers=BENCH_AUTH,
        first_marker='"H',
        record="full",
        start_at=start_at,
    )
    for name, u in fakes.items():
        status, answer = http_post_json(u + "/_admin/faults", {"text": TEXT})
        if status != 200:
            raise RuntimeError(f"{name}: /_admin/faults: HTTP {status} {answer!r}")
    pending = list(EVENTS)
    applied: list[tuple[float, str]] = []
    samples: list[tuple[float, dict[str, int]]] = []
    tick = start_at
    while tick < start_at + END * args.scale:
        time.sleep(max(0.0, tick - time.monotonic()))
        while pending and time.monotonic() >= start_at + pending[0][0] * args.scale:
            # counters right before the fault, so the fault's counts hold none of the healthy traffic
            samples.append((time.monotonic() - start_at, {n: attempts_count(u) for n, u in fakes.items()}))
            _, label, faults = pending.pop(0)
            for name, f in faults.items():
                status, answer = http_post_json(fakes[name] + "/_admin/faults", f)
                if status != 200:
                    raise RuntimeError(f"{name}: /_admin/faults {f}: HTTP {status} {answer!r}")
            applied.append((time.monotonic() - start_at, label))
            print(f"  t={applied[-1][0]:5.2f}s {label}", file=sys.stderr)
        samples.append((time.monotonic() - start_at, {n: attempts_count(u) for n, u in fakes.items()}))
        tick += SAMPLE_S
    result = gen.result()
    result["events"] = applied
    return result, samples, start_at


def analyse(result: dict[str, Any], samples: list[Any], start_at: float, scale: float) -> dict[str, Any]:
    recs = [
        [r[0] - start_at, *r[1:]] for r in result["records"]
    ]  # t, lat, ttfb, status, provider, attempts, stream, ok
    ev = [t for t, _ in result["events"]]
    bounds = [0.0, *ev, END * scale + 60]  # requests started at the very end still count in the last phase
    phases: list[dict[str, Any]] = []
    for i, name in enumerate(PHASE_NAMES[: len(bounds) - 1]):
        rs = [r for r in recs if bounds[i] <= r[0] < bounds[i + 1]]
        lat = sorted(r[1] * 1000 for r in rs if r[7])
        errors = [r for r in rs if not r[7]]
        served = {p: sum(1 for r in rs if r[4] == p and r[7]) for p in PROVIDERS}
        phases.append(
            {
                "phase": name,
                "requests": len(rs),
                "errors": len(errors),
                "error_rate": len(errors) / len(rs) if rs else float("nan"),
                "failed_over": sum(1 for r in rs if r[5] > 1),
                "p50_ms": percentile(lat, 50),
                "p99_ms": percentile(lat, 99),
                "max_ms": lat[-1] if lat else float("nan"),
                "served": served,
                "slow": sum(1 for x in lat if x >= 500),
                "statuses": sorted({r[3] for r in errors}),
            }
        )
    for ph in phases:
        ph["added_p50_ms"] = ph["p50_ms"] - phases[0]["p50_ms"]
        ph["added_p99_ms"] = ph["p99_ms"] - phases[0]["p99_ms"]
    quiet = 1.0 * scale  # a gap this long in a provider's attempts = the router stopped sending to it
    timing = {}
    for name, fault_i in (("alpha", 0), ("beta", 1)):
        if len(ev) <= fault_i:
            continue
        t_fault, t_rec = ev[fault_i], ev[2] if len(ev) > 2 else ev[-1]
        hits = [
            t
            for (t, c), (_, c0) in zip(samples[1:], samples, strict=False)
            if c[name] > c0[name] and t_fault <= t < t_rec
        ]
        during = samples_delta(samples, name, t_fault, t_rec)
        stop = t_fault
        for a, b in zip([t_fault, *hits], [*hits, t_rec], strict=False):
            stop = a
            if b - a >= quiet:
                break
        after = [r for r in recs if t_rec <= r[0] < (ev[3] if len(ev) > 3 else END * scale) and r[4] == name and r[7]]
        timing[name] = {
            "attempts_during_fault": during,
            "stopped_after_s": stop - t_fault,
            "attempts_after_stop": samples_delta(samples, name, stop + SAMPLE_S, t_rec),
            "first_served_after_recovery_s": after[0][0] - t_rec if after else None,
            "share_back_after_s": share_back(recs, name, t_rec, 1 / 6),
        }
    streams = [
        sorted(r[1] * 1000 for r in recs if r[6] and r[7] and bounds[i] <= r[0] < bounds[i + 1])
        for i in (0, len(bounds) - 2)
    ]
    continued = {
        "stream_p50_ms": [percentile(s, 50) for s in streams],  # healthy phase, streams-cut phase
        "stream_p99_ms": [percentile(s, 99) for s in streams],
    }
    return {
        "phases": phases,
        "timing": timing,
        "continued": continued,
        "records": recs,
        "samples": samples,
        "events": result["events"],
        "errors_total": sum(p["errors"] for p in phases),
        "requests_total": len(recs),
        "loadgen_errors": result["errors"],
        "first_failure": result["first_failure"],
    }


def samples_delta(samples: list[Any], name: str, t0: float, t1: float) -> int:
    inside = [c[name] for t, c in samples if t0 <= t <= t1]
    before = [c[name] for t, c in samples if t < t0]
    return (inside[-1] - (before[-1] if before else inside[0])) if inside else 0


def share_back(recs: list[Any], name: str, t0: float, share: float, window: float = 1.0) -> float | None:
    """Seconds after t0 until `name` served >= `share` of the requests started in a 1 s window."""
    t = t0
    while t + window <= recs[-1][0]:
        win = [r for r in recs if t <= r[0] < t + window and r[7]]
        if win and sum(1 for r in win if r[4] == name) / len(win) >= share:
            return t + window - t0
        t += 0.1
    return None


def print_report(res: dict[str, Any], meta: dict[str, Any], args: argparse.Namespace) -> None:
    first_s, cap_s = breaker_waits(args)
    print(
        f"\nFailover | {meta_line(meta)}\n{args.concurrency} concurrent clients, half streams; fakes answer after "
        f"{args.fake_latency_ms:g} ms; router first_token_s {args.first_token_s:g}, breaker fail_max 5 / trials "
        f"after {first_s:g}-{cap_s:g} s, EWMA half-life {args.half_life_s * args.scale:g} s; events at "
        + ", ".join(f"{t:.2f} s ({lbl})" for t, lbl in res["events"])
    )
    rows = [
        [
            p["phase"],
            p["requests"],
            p["errors"],
            f"{p['error_rate']:.2%}",
            p["failed_over"],
            f"{p['p50_ms']:.1f}",
            f"{p['p99_ms']:.1f}",
            f"{p['added_p50_ms']:+.1f}",
            f"{p['added_p99_ms']:+.1f}",
            f"{p['max_ms']:.0f}",
            p["slow"],
            "/".join(str(p["served"][n]) for n in PROVIDERS),
        ]
        for p in res["phases"]
    ]
    print(
        "\n"
        + markdown_table(
            [
                "phase",
                "requests",
                "errors",
                "error rate",
                "failed over",
                "p50 ms",
                "p99 ms",
                "added p50 ms",
                "added p99 ms",
                "max ms",
                ">= 0.5 s",
                "served a/b/g",
            ],
            rows,
        )
    )
    print(
        "(phases by request start: a request that started just before an event and reached the provider after it "
        "counts in the earlier phase)"
    )

    def fmt(v: float | None) -> str:
        return "never (in this run)" if v is None else f"{v:.2f} s"

    rows = [
        [
            n,
            t["attempts_during_fault"],
            f"{t['stopped_after_s']:.2f} s",
            t["attempts_after_stop"],
            fmt(t["first_served_after_recovery_s"]),
            fmt(t["share_back_after_s"]),
        ]
        for n, t in res["timing"].items()
    ]
    print(
        "\n"
        + markdown_table(
            [
                "bad provider",
                "attempts during fault",
                "router stopped sending after",
                "attempts after that (breaker trials)",
                "first served after recovery",
                "share >= 1/6 again after",
            ],
            rows,
        )
    )
    c = res["continued"]
    print(
        f"\nStreams cut mid-answer, finished on another route: stream p50 {c['stream_p50_ms'][1]:.1f} ms "
        f"(healthy {c['stream_p50_ms'][0]:.1f} ms), p99 {c['stream_p99_ms'][1]:.1f} ms "
        f"(healthy {c['stream_p99_ms'][0]:.1f} ms); router continuations: {res.get('continuations', 'n/a')}"
    )
    verdict = "PASS" if res["errors_total"] == 0 else "MISS"
    print(
        f"\nTarget: zero client errors while any provider is healthy (all run): {res['errors_total']} of "
        f"{res['requests_total']} -> {verdict}"
    )
    if res["first_failure"]:
        print(f"first failure: {res['first_failure'][:300]}")


def chart(res: dict[str, Any], path: str, scale: float) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    recs = res["records"]
    for name in (*PROVIDERS, ""):
        pts = [(r[0], r[1] * 1000) for r in recs if r[4] == name and r[7]]
        if pts:
            ax1.scatter(
                *zip(*pts, strict=False),
                s=2,
                alpha=0.25,
                color=COLORS[name],
                label=f"served by {name}",
                rasterized=True,
            )
    bad = [(r[0], r[1] * 1000) for r in recs if not r[7]]
    if bad:
        ax1.scatter(*zip(*bad, strict=False), s=20, marker="x", color="black", label="client error")
    bin_s = 0.25
    n_bins = int(END * scale / bin_s)  # whole bins only: a last partial one would look like a drop
    bins: list[list[Any]] = [[] for _ in range(n_bins)]
    for r in recs:
        if 0 <= r[0] < n_bins * bin_s:
            bins[int(r[0] / bin_s)].append(r)
    xs = [(i + 0.5) * bin_s for i in range(n_bins)]
    for q, style in ((50, "-"), (99, "--")):
        ys = [percentile(sorted(r[1] * 1000 for r in b if r[7]), q) if b else float("nan") for b in bins]
        ax1.plot(xs, ys, style, color="tab:blue", lw=1.2, label=f"p{q} per {bin_s:g} s")
    ax1.set_yscale("log")
    ax1.set_ylabel("latency ms (log)")
    ax1.legend(loc="upper left", fontsize=8, markerscale=4)
    shares = {p: [sum(1 for r in b if r[4] == p) / max(1, len(b)) for b in bins] for p in PROVIDERS}
    ax2.stackplot(xs, *shares.values(), labels=list(shares), colors=[COLORS[p] for p in shares], alpha=0.8)
    ax2.set_ylabel(f"share of requests served, per {bin_s:g} s")
    ax2.set_xlabel("seconds since the start of the load")
    ax2.legend(loc="lower left", fontsize=8)
    for ax in (ax1, ax2):
        for t, lbl in res["events"]:
            ax.axvline(t, color="black", ls=":", lw=1)
            ax.text(t, 1.0, f" {lbl}", transform=ax.get_xaxis_transform(), fontsize=8, va="top")
    fig.suptitle("failover: latency and traffic share over time", fontsize=10)
    save_chart(fig, path)


def breaker_waits(args: argparse.Namespace) -> tuple[float, float]:
    """The breaker's first wait and its cap, scaled (the cap never below the first wait)."""
    return args.breaker_reset_s * args.scale, max(args.breaker_reset_s, args.breaker_reset_max_s) * args.scale


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="shrink (or stretch) the 40 s timeline (default 1)")
    p.add_argument("--concurrency", type=int, default=32, help="closed-loop clients (default 32)")
    p.add_argument("--fake-latency-ms", type=float, default=20, help="the fakes' time to first byte (default 20)")
    p.add_argument("--first-token-s", type=float, default=1.0, help="router timeouts.first_token_s (default 1)")
    p.add_argument(
        "--breaker-reset-s", type=float, default=5.0, help="router breaker reset_timeout_s at scale 1 (default 5)"
    )
    p.add_argument(
        "--breaker-reset-max-s",
        type=float,
        default=10.0,
        help="router breaker reset_timeout_max_s at scale 1 (default 10), scaled with the first wait",
    )
    p.add_argument("--half-life-s", type=float, default=2.0, help="router ewma_half_life_s at scale 1 (default 2)")
    add_output_args(p, "failover")
    args = p.parse_args(argv)
    if args.scale <= 0 or args.concurrency < 1:
        p.error("--scale must be > 0 and --concurrency >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_as_interrupt()
    meta, load = run_meta(), MachineLoad()
    with workdir("router-failover-", args.keep_logs) as tmp, Processes(tmp) as procs:
        try:
            fakes = {n: start_fake(procs, n, "--latency-ms", str(args.fake_latency_ms))[1] for n in PROVIDERS}
            cfg, port = Path(tmp) / "router.yaml", free_port()
            first_s, cap_s = breaker_waits(args)
            write_router_config(
                cfg,
                port,
                fakes,
                {MODEL: list(PROVIDERS)},
                ledger_path=Path(tmp) / "ledger.jsonl",
                timeouts={"first_token_s": args.first_token_s},
                breaker={"fail_max": 5, "reset_timeout_s": first_s, "reset_timeout_max_s": cap_s},
                routing={"ewma_half_life_s": args.half_life_s * args.scale},
            )
            router, url = start_router(procs, cfg, port)
            gen = LoadGen(procs)
            result, samples, start_at = drive(args, gen, fakes, url)
            _, body = http_get(url + "/metrics", timeout=2.0)
            continuations = [ln for ln in body.decode().splitlines() if ln.startswith("router_continuations_total{")]
            errors = router_errors(procs.log_path(router) or Path())
        except KeyboardInterrupt:
            print("\ninterrupted; stopping the child processes", file=sys.stderr)
            return 130
    res = analyse(result, samples, start_at, args.scale)
    res["continuations"] = ", ".join(
        f"{ln.split('{')[1].split('}')[0]}: {float(ln.rsplit(' ', 1)[1]):.0f}"
        for ln in continuations
        if float(ln.rsplit(" ", 1)[1]) > 0
    )
    print_report(res, meta, args)
    note = load_note(load.finish())
    print(
        f"({note})" + (f"\nWARNING: {len(errors)} error line(s) in the router log: {errors[0][:300]}" if errors else "")
    )
    out = {k: v for k, v in res.items() if k not in ("records", "samples")}
    write_json(
        args.json,
        {
            "meta": meta,
            "args": vars(args),
            "machine_load": note,
            **out,
            "records": res["records"],
            "samples": res["samples"],
        },
    )
    chart(res, args.chart, args.scale)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
