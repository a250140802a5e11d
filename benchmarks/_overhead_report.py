"""overhead.py's verdicts (every performance target), tables and chart."""

from __future__ import annotations

import math
import os
from typing import Any

from _common import cmdline, process_tree, vm_hwm_mib
from _overhead_suite import PHASES
from _report import Target, markdown_table, meta_line, pyplot, save_chart, target, targets_table

NAN = float("nan")
ROUTER_NAMES = {"router": "router", "redis": "router, Redis", "granian": "router on granian"}


def memory(pid: int) -> list[dict[str, Any]]:
    """VmHWM of the router and of each of its worker processes (uvicorn's supervisor, if any, first)."""
    rows = []
    for p in process_tree(pid):
        cmd = cmdline(p)
        if not cmd:
            continue
        role = "main" if p == pid else "resource tracker" if "resource_tracker" in cmd else "worker"
        rows.append({"pid": p, "role": role, "vm_hwm_mib": vm_hwm_mib(p)})
    return rows


def evaluate(results: dict[str, Any]) -> list[Target]:
    """The performance targets, with the first targets' added p50 at 8 concurrent, against what was
    measured (n/a: not measured)."""
    s = results["suites"]
    one = s.get("1 worker") or s.get("target", {})
    who = "router" if "1 worker" in s else "target"

    def g(ph: str, k: str, t: str = who) -> float:
        return float(one.get(ph, {}).get(t, {}).get(k, NAN))

    mem = [
        m["vm_hwm_mib"]
        for name, ms in results.get("memory", {}).items()
        if name != "granian"  # a comparison, not the router as deployed
        for m in ms
        if m["role"] in ("main", "worker")
    ]
    workers = s.get("workers", {}).get("c64", {})
    w1, w2 = (workers.get(f"redis {n}w", {}).get("rps", NAN) for n in (1, 2))
    ceiling = results["calibration"]["rps"]
    cpu = g("c64", "cpu_s_per_1000")
    gen = results.get("loadgen", "")
    through = f"load generator {gen.split(' ')[0]}; it + the fake alone reach {ceiling:,.0f} req/s" + (
        f"; {who} CPU {cpu * 1000:.0f} us/req: capacity {1000 / cpu:,.0f} req/s on its core" if cpu > 0 else ""
    )
    redis_ratio = g("c64", "rps", "redis") / g("c64", "rps")
    redis_cap = g("c64", "cpu_s_per_1000") / g("c64", "cpu_s_per_1000", "redis")
    rc = results.get("redis_commands", {})
    trips, by_cmd = rc.get("reads_c64", NAN), rc.get("by_command", {})
    bound = workers_bound(workers)
    return [
        target(
            "throughput, 64 concurrent, 1 worker",
            ">= 3,500 req/s",
            g("c64", "rps"),
            g("c64", "rps") >= 3500,
            " req/s",
            through,
        ),
        target(
            "added latency p50, 1 at a time",
            "<= 0.5 ms",
            g("c1", "added_p50_ms"),
            g("c1", "added_p50_ms") <= 0.5,
            " ms",
        ),
        target(
            "added latency p99, 1 at a time", "<= 3 ms", g("c1", "added_p99_ms"), g("c1", "added_p99_ms") <= 3, " ms"
        ),
        target(
            "added latency p50, 8 concurrent",
            "<= 2 ms",
            g("c8", "added_p50_ms"),
            g("c8", "added_p50_ms") <= 2,
            " ms",
            "first targets",
        ),
        target(
            "CPU per relayed chunk, native route",
            "<= 20 us",
            g("n100", "cpu_us_per_chunk"),
            g("n100", "cpu_us_per_chunk") <= 20,
            " us",
            chunk_note(g, "n100"),
        ),
        target(
            "CPU per relayed chunk, translated route",
            "<= 60 us",
            g("t100", "cpu_us_per_chunk"),
            g("t100", "cpu_us_per_chunk") <= 60,
            " us",
            chunk_note(g, "t100"),
        ),
        target(
            "stream added TTFB p50, 32 concurrent",
            "<= 2 ms",
            g("s32", "added_ttfb_p50_ms"),
            g("s32", "added_ttfb_p50_ms") <= 2,
            " ms",
            "time to the first content chunk",
        ),
        target(
            "stream total time vs direct (p50), 32 concurrent",
            "<= 1.03x",
            g("s32", "total_ratio"),
            g("s32", "total_ratio") <= 1.03,
            "x",
        ),
        target(
            "Redis state vs memory state, 1 worker (capacity)",
            ">= 0.8x",
            redis_cap,
            redis_cap >= 0.8,
            "x",
            # CPU per request: steadier than req/s on a shared machine, and the same when the router is the limit
            f"ratio of router CPU per request, both on one core, 64 concurrent; req/s: {redis_ratio:.2f}x"
            if redis_cap == redis_cap
            else "",
        ),
        target(
            "Redis round trips per request, 1 worker, 64 concurrent",
            "<= 1",
            trips,
            trips <= 1,
            "",
            "Redis's reads per request (INFO total_reads_processed: commands that arrive together are one read); "
            f"one at a time: {rc.get('reads_c1', NAN):.2f} reads, and the answer waits for one of them (the admit; "
            "the settle is written after the answer); commands sent (MONITOR): "
            + ", ".join(f"{k} {v:.2f}" for k, v in by_cmd.items())
            if by_cmd
            else "",
        ),
        target(
            "2 workers vs 1 worker (Redis, req/s)",
            ">= 1.7x",
            w2 / w1,
            w2 / w1 >= 1.7,
            "x",
            f"memory state 1 worker: {w2 / g('c64', 'rps'):.2f}x; {bound}" if workers else "",
        ),
        target(
            "peak memory per process",
            "<= 80 MiB",
            max(mem, default=NAN),
            max(mem, default=NAN) <= 80,
            " MiB",
            "within this run (memory state keeps its admission records 1 s, so a longer run does not grow)",
        ),
    ]


def chunk_note(g: Any, ph: str) -> str:
    """How the per-chunk figure was made, and the same with no delay between chunks."""
    if math.isnan(g(ph, "cpu_us_per_chunk")):
        return ""
    burst = g(ph.replace("100", "b100"), "cpu_us_per_chunk")
    return (
        f"chunks 5 ms apart: ({g(ph, 'cpu_s_per_1000'):.2f} ms per stream - {g('c64', 'cpu_s_per_1000'):.3f} ms "
        f"per request) / {PHASES[ph].chunks}"
        + (
            ""
            if math.isnan(burst)
            else f"; no delay: {burst:.1f} us at {g(ph.replace('100', 'b100'), 'chunks_per_s'):,.0f} chunks/s"
        )
    )


def workers_bound(workers: dict[str, Any]) -> str:
    """What the whole machine can give 2 workers: its cores over every process's CPU per request."""
    two = workers.get("redis 2w")
    if not two:
        return ""
    per_req_s = two["cores_busy"] / two["rps"] if two["rps"] else NAN
    one = workers["redis 1w"]
    return (
        f"at {two['rps']:,.0f} req/s all processes used {two['cores_busy']:.2f} cores ({per_req_s * 1e6:.0f} us "
        f"per request): {os.cpu_count()} cores, if all were this run's, allow {(os.cpu_count() or 1) / per_req_s / one['rps']:.2f}x"
    )


def _fmt(m: dict[str, Any], k: str, fmt: str = "{:.2f}") -> str:
    return "" if k not in m or m[k] is None or (isinstance(m[k], float) and math.isnan(m[k])) else fmt.format(m[k])


def print_report(results: dict[str, Any]) -> None:
    cal = results["calibration"]
    print(f"\nRouter overhead | {meta_line(results['meta'])}\n{results['pinning']}")
    if "pinning_workers" in results:
        print(results["pinning_workers"])
    print(
        f"Load generator: {results.get('loadgen', 'aiohttp')}. Load generator + fake alone: {cal['rps']:,.0f} req/s "
        f"at 64 concurrent, their core {cal['client_core_busy']:.0%} busy (load generator "
        f"{cal['loadgen_cpu_us_per_req']:.0f} us/req, fake {cal['fake_cpu_us_per_req']:.0f} us/req): no routed "
        "non-stream figure below can exceed this."
    )
    heads = ["suite", "phase", "target", "req/s", "vs direct", "p50 ms", "p90 ms", "p99 ms", "added p50", "added p90",
             "added p99", "TTFB p50", "added TTFB", "CPU ms/req", "client core", "failed"]  # fmt: skip
    rows = []
    for suite, phases in results["suites"].items():
        for ph, by_target in phases.items():
            for t, m in by_target.items():
                rows.append(
                    [
                        suite,
                        ph,
                        t,
                        f"{m['rps']:,.0f}",
                        _fmt(m, "rps_ratio"),
                        f"{m['p50_ms']:.2f}",
                        f"{m['p90_ms']:.2f}",
                        f"{m['p99_ms']:.2f}",
                        _fmt(m, "added_p50_ms", "{:+.2f}"),
                        _fmt(m, "added_p90_ms", "{:+.2f}"),
                        _fmt(m, "added_p99_ms", "{:+.2f}"),
                        _fmt(m, "ttfb_p50_ms"),
                        _fmt(m, "added_ttfb_p50_ms", "{:+.2f}"),
                        "" if t == "direct" else _fmt(m, "cpu_s_per_1000", "{:.3f}"),
                        f"{m['client_core_busy']:.0%}",
                        m["failed"],
                    ]
                )
    print("\n" + markdown_table(heads, rows))
    print("(phases: " + "; ".join(f"{p.name} {p.title}" for p in PHASES.values()) + ")")
    one = results["suites"].get("1 worker", {})
    burst = [
        [
            ph,
            t,
            f"{m['rps']:,.0f}",
            _fmt(m, "chunks_per_s", "{:,.0f}"),
            _fmt(m, "cpu_s_per_1000", "{:.3f}"),
            _fmt(m, "cpu_us_per_chunk", "{:.1f}"),
            _fmt(m, "total_ratio"),
        ]
        for ph in ("n100", "t100", "nb100", "tb100")
        for t, m in one.get(ph, {}).items()
        if t != "direct"
    ]
    if burst:
        print(
            "\nLong streams; CPU per relayed chunk = (CPU per stream - CPU per c64 request) / 100 (n100, t100: chunks "
            "arrive one at a time; nb100, tb100: no delay, the router's reads hold several)\n"
            + markdown_table(
                ["phase", "target", "streams/s", "chunks/s", "CPU ms/stream", "CPU us/chunk", "time vs direct"], burst
            )
        )
    for suite, phases in results["suites"].items():
        for ph, by_target in phases.items():
            for t, m in by_target.items():
                if t != "direct" and len(m.get("cpu_labels", [])) > 2:  # several router processes, or redis
                    by = ", ".join(
                        f"{lbl} {v}" for lbl, v in zip(m["cpu_labels"], m["cpu_us_per_req_by_pid"], strict=False)
                    )
                    print(f"CPU us per request, {suite} {ph} {t}: {by}; all processes {m['cores_busy']:.2f} cores busy")
    if results.get("memory"):
        mem_rows = [
            [k, m["role"], m["pid"], f"{m['vm_hwm_mib']:.1f}"] for k, ms in results["memory"].items() for m in ms
        ]
        print("\nPeak memory (VmHWM)\n" + markdown_table(["router", "process", "pid", "MiB"], mem_rows))
    print("\nPerformance targets\n" + targets_table(results["targets"]))
    for suite, phases in results["suites"].items():
        for ph, by_target in phases.items():
            for t, m in by_target.items():
                if m["first_failure"]:
                    print(f"first failure, {suite} {ph} {t}: {m['first_failure'][:300]}")
    if results.get("router_errors"):
        print(
            f"WARNING: {len(results['router_errors'])} error line(s) in the router logs: {results['router_errors'][0][:300]}"
        )


_COLORS = {"direct": "tab:gray", "router": "tab:blue", "redis": "tab:green", "granian": "tab:orange"}
_COLORS |= {"target": "tab:blue", "redis 1w": "tab:green", "redis 2w": "tab:olive"}


def chart(results: dict[str, Any], path: str) -> None:
    """Router against direct for each phase: req/s, p50 (time to first content for streams), the
    router's CPU per request and per chunk against the targets, and the Redis / workers runs."""
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(2, 2, figsize=(15, 9))
    first = next(iter(results["suites"]))
    suite = results["suites"][first]
    phases = list(suite)
    targets = list(dict.fromkeys(t for ph in phases for t in suite[ph]))
    w = 0.8 / len(targets)
    for ax, key, title in (
        (axes[0][0], "rps", "req/s (streams/s) per phase"),
        (axes[0][1], "p50", "p50 ms: whole request; streams: time to first content"),
    ):
        for j, t in enumerate(targets):
            xs, vals = [], []
            for x, ph in enumerate(phases):
                m = suite[ph].get(t)
                if m is None:
                    continue
                v = m["rps"] if key == "rps" else m["ttfb_p50_ms"] if PHASES[ph].stream else m["p50_ms"]
                xs.append(x + (j - (len(targets) - 1) / 2) * w)
                vals.append(v)
            bars = ax.bar(xs, vals, w, label=ROUTER_NAMES.get(t, t), color=_COLORS.get(t))
            ax.bar_label(bars, fmt="{:,.0f}" if key == "rps" else "{:.2f}", fontsize=6)
        ax.set_xticks(range(len(phases)), phases)
        ax.set_yscale("log")
        ax.set_title(f"{title} ({first})", fontsize=9)
        ax.legend(fontsize=7)
    ax = axes[1][0]
    # (phase, what, target): Redis's is the CPU that 0.8x memory state's throughput allows at 285 us
    groups = [("c64", "cpu_s_per_1000", 285.0), ("n100", "cpu_us_per_chunk", 20.0), ("t100", "cpu_us_per_chunk", 60.0)]
    groups += [("nb100", "cpu_us_per_chunk", 20.0), ("tb100", "cpu_us_per_chunk", 60.0)]
    routers = [t for t in targets if t != "direct"]
    xt = []
    for x, (ph, key, goal) in enumerate(groups):
        for j, t in enumerate(routers):
            m = suite.get(ph, {}).get(t, {})
            if key in m:
                v = m[key] * 1000 if key == "cpu_s_per_1000" else m[key]
                xb = x + (j - (len(routers) - 1) / 2) * 0.8 / len(routers)
                bar = ax.bar(
                    [xb],
                    [v],
                    0.8 / len(routers),
                    color=_COLORS.get(t),
                    label=ROUTER_NAMES.get(t, t) if x == 0 else None,
                )
                ax.bar_label(bar, fmt="{:.0f}", fontsize=7)
                g = goal / 0.8 if t == "redis" else goal
                ax.plot([xb - 0.4 / len(routers), xb + 0.4 / len(routers)], [g, g], color="tab:red", lw=2)
        xt.append(f"{ph}\n{'per request' if key == 'cpu_s_per_1000' else 'per chunk'}")
    ax.plot([], [], color="tab:red", lw=2, label="target")
    ax.set_xticks(range(len(groups)), xt, fontsize=8)
    ax.set_ylabel("router CPU, us")
    ax.set_yscale("log")
    ax.set_title("router CPU per request (c64) and per relayed chunk (5 ms apart; b: no delay)", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1][1]
    bars_: list[tuple[str, float, str | None]] = []
    for name, phases_ in results["suites"].items():
        for t, m in phases_.get("c64", {}).items():
            where = "1 worker suite" if name != "workers" else "workers suite"
            bars_.append((f"{ROUTER_NAMES.get(t, t)}\n({where})", m["rps"], _COLORS.get(t)))
    b = ax.bar(range(len(bars_)), [x[1] for x in bars_], color=[x[2] for x in bars_])
    ax.bar_label(b, fmt="{:,.0f}", fontsize=7)
    ax.set_xticks(range(len(bars_)), [x[0] for x in bars_], fontsize=6)
    ax.axhline(3500, color="tab:red", ls="--", lw=1, label="target 3,500 req/s")
    ax.set_title("64 concurrent, non-stream: memory, Redis, 1 and 2 workers", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(
        f"router overhead, commit {results['meta']['commit']}, {results['pinning']}; {results.get('loadgen', '')}",
        fontsize=9,
    )
    fig.tight_layout()
    save_chart(fig, path)
