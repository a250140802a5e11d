"""Latency-aware routing (one of the first performance targets): two providers for one model at
priority 0, one answering in 50 ms and one in 200 ms, under steady load; the share the fast one
gets, then how quickly the share moves when their latencies are swapped at run time
(POST /_admin/faults {"latency_ms": ...}).

The load generator (its own process) runs `--concurrency` closed-loop clients sending non-stream
chat requests and records which provider served each (x-router-provider). The share is counted
by request start time. Before the swap, the steady share is taken after a settling second; after
it, the time until the new fast provider serves >= 85% of the requests in a sliding 1 s window.
The router runs the full path (key, plan, budget, prices, ledger) with its default EWMA
half-life (10 s) unless --half-life-s says otherwise.

    .ci/run bench routing                   # ~35 s
    .ci/run bench routing --before 5 --after 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    BENCH_AUTH,
    Processes,
    free_port,
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
    pyplot,
    run_meta,
    save_chart,
    write_json,
)

MODEL = "m"
TARGET_SHARE = 0.85
WINDOW_S = 1.0
SETTLE_S = 1.0  # the first second measures both routes (never-measured routes go first): not steady
REQUEST = {
    "path": "/v1/chat/completions",
    "body": {"model": MODEL, "messages": [{"role": "user", "content": "Hi."}], "max_tokens": 16},
    "end_marker": '"stop"',
}


def drive(args: argparse.Namespace, gen: LoadGen, fakes: dict[str, str], url: str) -> tuple[list[Any], float, float]:
    """Steady load; at `before` seconds the two fakes' latencies swap. Returns (records, start, swap time)."""
    start_at = time.monotonic() + 1.0
    gen.start(
        url, [REQUEST], args.concurrency, args.before + args.after, headers=BENCH_AUTH, record="full", start_at=start_at
    )
    time.sleep(max(0.0, start_at + args.before - time.monotonic()))
    for name, ms in (("p1", args.slow_ms), ("p2", args.fast_ms)):  # p1 was fast, p2 was slow
        status, answer = http_post_json(fakes[name] + "/_admin/faults", {"latency_ms": ms})
        if status != 200:
            raise RuntimeError(f"{name}: /_admin/faults: HTTP {status} {answer!r}")
    swap = time.monotonic() - start_at
    print(f"  t={swap:.2f}s swapped: p1 now {args.slow_ms:g} ms, p2 now {args.fast_ms:g} ms", file=sys.stderr)
    result = gen.result()
    recs = [[r[0] - start_at, *r[1:]] for r in result["records"]]
    return recs, start_at, swap


def share(recs: list[Any], name: str, t0: float, t1: float) -> tuple[float, int]:
    win = [r for r in recs if t0 <= r[0] < t1 and r[7]]
    return (sum(1 for r in win if r[4] == name) / len(win) if win else float("nan")), len(win)


def time_to_share(recs: list[Any], name: str, t0: float, end: float, goal: float = TARGET_SHARE) -> float | None:
    """Seconds after t0 until `name` has >= `goal` of a sliding 1 s window (0.1 s steps)."""
    t = t0
    while t + WINDOW_S <= end:
        s, n = share(recs, name, t, t + WINDOW_S)
        if n and s >= goal:
            return t + WINDOW_S - t0
        t += 0.1
    return None


def analyse(recs: list[Any], swap: float, args: argparse.Namespace) -> dict[str, Any]:
    end = args.before + args.after
    before, n_before = share(recs, "p1", SETTLE_S, swap)
    moved = time_to_share(recs, "p2", swap, end)
    majority = time_to_share(recs, "p2", swap, end, 0.5)
    settled_from = swap + (moved if moved is not None else 0.0)
    after, n_after = share(recs, "p2", settled_from, end)
    errors = sum(1 for r in recs if not r[7])
    return {
        "share_fast_before": before,
        "requests_before": n_before,
        "swap_s": swap,
        "time_to_85pct_after_swap_s": moved,
        "time_to_majority_after_swap_s": majority,
        "share_new_fast_after": after,
        "requests_after": n_after,
        "first_window_share_old_fast_before": share(recs, "p1", 0, WINDOW_S)[0],
        "requests": len(recs),
        "errors": errors,
    }


def print_report(res: dict[str, Any], meta: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\nRouting | {meta_line(meta)}\n{args.concurrency} concurrent clients, non-stream; p1 {args.fast_ms:g} ms "
        f"and p2 {args.slow_ms:g} ms, swapped at {res['swap_s']:.2f} s; router EWMA half-life {args.half_life_s:g} s"
    )
    moved, majority = res["time_to_85pct_after_swap_s"], res["time_to_majority_after_swap_s"]
    rows = [
        [
            f"share of the fast provider (p1), {SETTLE_S:g} s to the swap",
            f"{res['share_fast_before']:.1%}",
            f">= {TARGET_SHARE:.0%}",
            "PASS" if res["share_fast_before"] >= TARGET_SHARE else "MISS",
        ],
        [
            f"after the swap: time until p2 has >= 50% over {WINDOW_S:g} s",
            "not within the run" if majority is None else f"{majority:.1f} s",
            "(reported)",
            "",
        ],
        [
            f"after the swap: time until p2 has >= {TARGET_SHARE:.0%} over {WINDOW_S:g} s",
            "not within the run" if moved is None else f"{moved:.1f} s",
            "(reported)",
            "",
        ],
        [
            f"share of p2 from {'then' if moved is not None else 'the swap'} to the end",
            f"{res['share_new_fast_after']:.1%}",
            "",
            "",
        ],
        ["client errors", f"{res['errors']} of {res['requests']}", "0", "PASS" if res["errors"] == 0 else "MISS"],
    ]
    print("\n" + markdown_table(["measure", "value", "target", "verdict"], rows))


def chart(recs: list[Any], res: dict[str, Any], args: argparse.Namespace, path: str) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(11, 4.5))
    end, step = args.before + args.after, 0.25
    xs = [i * step for i in range(int((end - WINDOW_S) / step) + 1)]
    for name, color in (("p1", "tab:blue"), ("p2", "tab:orange")):
        ax.plot(
            [x + WINDOW_S for x in xs],
            [share(recs, name, x, x + WINDOW_S)[0] for x in xs],
            color=color,
            label=f"{name} ({args.fast_ms:g} ms, then {args.slow_ms:g} ms)"
            if name == "p1"
            else f"{name} ({args.slow_ms:g} ms, then {args.fast_ms:g} ms)",
        )
    ax.axhline(TARGET_SHARE, color="tab:red", ls="--", lw=1, label=f"target {TARGET_SHARE:.0%}")
    ax.axvline(res["swap_s"], color="black", ls=":", lw=1)
    ax.text(res["swap_s"], 0.5, " latencies swapped", fontsize=9)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("seconds since the start of the load (window end)")
    ax.set_ylabel(f"share of requests served, sliding {WINDOW_S:g} s")
    ax.set_title(f"routing: share by provider, EWMA half-life {args.half_life_s:g} s, {args.concurrency} concurrent")
    ax.legend(loc="center right", fontsize=8)
    save_chart(fig, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", type=float, default=10.0, help="seconds of load before the swap (default 10)")
    p.add_argument("--after", type=float, default=20.0, help="seconds of load after the swap (default 20)")
    p.add_argument("--concurrency", type=int, default=16, help="closed-loop clients (default 16)")
    p.add_argument("--fast-ms", type=float, default=50.0, help="the fast provider's latency (default 50)")
    p.add_argument("--slow-ms", type=float, default=200.0, help="the slow provider's latency (default 200)")
    p.add_argument("--half-life-s", type=float, default=10.0, help="router ewma_half_life_s (default 10, the router's)")
    add_output_args(p, "routing")
    args = p.parse_args(argv)
    if args.before <= SETTLE_S + WINDOW_S or args.after <= WINDOW_S or args.concurrency < 1:
        p.error(f"--before must be > {SETTLE_S + WINDOW_S:g}, --after > {WINDOW_S:g}, --concurrency >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_as_interrupt()
    meta, load = run_meta(), MachineLoad()
    with workdir("router-routing-", args.keep_logs) as tmp, Processes(tmp) as procs:
        try:
            fakes = {
                n: start_fake(procs, n, "--latency-ms", str(ms))[1]
                for n, ms in (("p1", args.fast_ms), ("p2", args.slow_ms))
            }
            cfg, port = tmp / "router.yaml", free_port()
            write_router_config(
                cfg,
                port,
                fakes,
                {MODEL: list(fakes)},
                ledger_path=tmp / "ledger.jsonl",
                routing={"ewma_half_life_s": args.half_life_s},
            )
            router, url = start_router(procs, cfg, port)
            recs, _, swap = drive(args, LoadGen(procs), fakes, url)
            errors = router_errors(procs.log_path(router) or Path())
        except KeyboardInterrupt:
            print("\ninterrupted; stopping the child processes", file=sys.stderr)
            return 130
    res = analyse(recs, swap, args)
    print_report(res, meta, args)
    note = load_note(load.finish())
    print(
        f"({note})" + (f"\nWARNING: {len(errors)} error line(s) in the router log: {errors[0][:300]}" if errors else "")
    )
    write_json(args.json, {"meta": meta, "args": vars(args), "machine_load": note, **res, "records": recs})
    chart(recs, res, args, args.chart)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
