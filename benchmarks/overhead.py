"""Router overhead (issue 5): the same workload sent directly to the fake provider and through
the router, interleaved in one run, with every target of issue 5 printed as PASS or MISS.

The router runs the full request path: a real key, a plan with a budget, an rpm and a concurrency
limit (all out of reach), prices, the ledger, info logs to a file. Child processes: one fake
provider (20 stream chunks 5 ms apart; non-stream answers at once), the load generator (aiohttp
on uvloop, its own process, see _loadgen.py) and the router: first 1 worker (memory state),
pinned to CPU 0 with the fake and the load generator on CPU 1; then 1 and 2 workers on Redis
state (a redis-server child), nothing pinned, so 2 workers can use both cores.

Phases, each run against `direct` and the router in turn, which goes first alternating per round:
  c1, c8, c64   non-stream chat, small JSON body, 1 / 8 / 64 concurrent: latency, req/s
  s32           32 concurrent chat streams: time to first content byte, total stream time

    .ci/run bench overhead                  # ~60 s
    .ci/run bench overhead --quick          # ~20 s smoke run
    .ci/run bench overhead --target http://127.0.0.1:4000 --fake-port 9300 --target-key sk-...
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    BENCH_AUTH,
    Processes,
    cpu_plan,
    free_port,
    install_sigterm_as_interrupt,
    process_tree,
    router_errors,
    start_fake,
    start_redis,
    start_router,
    vm_hwm_mib,
    workdir,
    write_router_config,
)
from _loadgen import LoadGen
from _report import (
    MachineLoad,
    Target,
    add_output_args,
    load_note,
    markdown_table,
    median,
    meta_line,
    percentile,
    pyplot,
    run_meta,
    save_chart,
    target,
    targets_table,
    write_json,
)

MODEL = "bench"
# >= 20 characters, so none of the 20 stream pieces is empty; starts with "H", the first-byte marker
TEXT = "Hello from the benchmark fake provider, in twenty small pieces."
FIRST_MARKER = '"H'  # a JSON string starting with the answer text: the first content delta
_MSG = [{"role": "user", "content": "Say hello."}]
# include_usage in both directions, so direct and routed streams carry the same events
BODIES = {
    False: {"model": MODEL, "messages": _MSG, "max_tokens": 16},
    True: {
        "model": MODEL,
        "messages": _MSG,
        "max_tokens": 16,
        "stream": True,
        "stream_options": {"include_usage": True},
    },
}


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    concurrency: int
    stream: bool
    seconds: float  # per run, before --scale


PHASES = {
    p.name: p
    for p in (
        Phase("c1", 1, False, 1.0),
        Phase("c8", 8, False, 1.0),
        Phase("c64", 64, False, 1.5),
        Phase("s32", 32, True, 1.5),
    )
}


@dataclass
class Runs:
    """Every run of one (phase, target) pair: latencies pooled, req/s per run, CPU summed."""

    rps: list[float] = field(default_factory=list)
    lat: list[float] = field(default_factory=list)
    ttfb: list[float] = field(default_factory=list)
    ok: int = 0
    failed: int = 0
    target_cpu_s: float = 0.0
    client_core_cpu_s: float = 0.0  # fake + load generator: are they saturating their core?
    elapsed_s: float = 0.0
    first_failure: str | None = None
    cpu_by_pid: list[float] = field(default_factory=list)  # target pids, the fake, then any extra (redis)

    def add(self, r: dict[str, Any], n_target_pids: int, fake_index: int) -> None:
        self.cpu_by_pid = (
            [a + b for a, b in zip(self.cpu_by_pid, r["cpu_s"], strict=False)] if self.cpu_by_pid else list(r["cpu_s"])
        )
        self.rps.append(r["rps"])
        self.lat += r["lat_ms"]
        self.ttfb += r["ttfb_ms"]
        self.ok += r["ok"]
        self.failed += r["failed"]
        self.target_cpu_s += sum(r["cpu_s"][:n_target_pids])
        self.client_core_cpu_s += r["cpu_s"][fake_index] + r["loadgen_cpu_s"]
        self.elapsed_s += r["elapsed_s"]
        self.first_failure = self.first_failure or r["first_failure"]

    def summary(self) -> dict[str, Any]:
        lat, ttfb = sorted(self.lat), sorted(self.ttfb)
        return {
            "rps": median(self.rps),
            "rps_runs": [round(x) for x in self.rps],
            "ok": self.ok,
            "failed": self.failed,
            "p50_ms": percentile(lat, 50),
            "p90_ms": percentile(lat, 90),
            "p99_ms": percentile(lat, 99),
            "ttfb_p50_ms": percentile(ttfb, 50),
            "cpu_s_per_1000": self.target_cpu_s / max(1, self.ok) * 1000,
            "client_core_busy": self.client_core_cpu_s / self.elapsed_s if self.elapsed_s else float("nan"),
            "first_failure": self.first_failure,
            "cpu_us_per_req_by_pid": [round(c / max(1, self.ok) * 1e6) for c in self.cpu_by_pid],
        }


def run_suite(
    gen: LoadGen,
    targets: dict[str, tuple[str, list[int]]],
    phases: list[Phase],
    fake_pid: int,
    args: argparse.Namespace,
    label: str,
    extra_pids: tuple[int, ...] = (),
) -> dict[str, dict[str, Any]]:
    """Every phase against every target, `args.rounds` times, the order rotating each round."""
    runs = {(p.name, t): Runs() for p in phases for t in targets}
    names = list(targets)
    for rnd in range(args.rounds):
        for i, ph in enumerate(phases):
            shift = (rnd + i) % len(names)
            for t in names[shift:] + names[:shift]:
                url, pids = targets[t]
                headers = args.target_headers if t == "target" else BENCH_AUTH
                r = gen.run(
                    url,
                    [{"path": "/v1/chat/completions", "body": BODIES[ph.stream]}],
                    ph.concurrency,
                    ph.seconds * args.scale,
                    warmup_s=args.warmup,
                    headers=headers,
                    cpu_pids=[*pids, fake_pid, *extra_pids],
                    first_marker=FIRST_MARKER if ph.stream else "",
                    end_marker="[DONE]" if ph.stream else "",
                )
                runs[(ph.name, t)].add(r, len(pids), len(pids))
                print(
                    f"  {label} round {rnd + 1}/{args.rounds} {ph.name:<4} {t:<10} {r['rps']:7.0f} req/s"
                    f"  p50 {percentile(r['lat_ms'], 50):7.2f} ms  failed {r['failed']}",
                    file=sys.stderr,
                )
    out: dict[str, dict[str, Any]] = {}
    for ph in phases:
        d = runs[(ph.name, "direct")].summary()
        out[ph.name] = {"direct": d}
        for t in names[1:]:
            s = runs[(ph.name, t)].summary()
            s["added_p50_ms"], s["added_p90_ms"], s["added_p99_ms"] = (
                s[k] - d[k] for k in ("p50_ms", "p90_ms", "p99_ms")
            )
            s["added_ttfb_p50_ms"] = s["ttfb_p50_ms"] - d["ttfb_p50_ms"]
            s["total_ratio"] = s["p50_ms"] / d["p50_ms"] if d["p50_ms"] else float("nan")
            s["rps_ratio"] = s["rps"] / d["rps"] if d["rps"] else float("nan")
            s["cpu_labels"] = [*(f"pid {p}" for p in targets[t][1]), "fake", *("redis-server" for _ in extra_pids)]
            out[ph.name][t] = s
    return out


def memory(pid: int) -> list[dict[str, Any]]:
    """VmHWM of the router and of each of its worker processes (uvicorn's supervisor, if any, first)."""
    rows = []
    for p in process_tree(pid):
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        role = "main" if p == pid else "resource tracker" if "resource_tracker" in cmd else "worker"
        rows.append({"pid": p, "role": role, "vm_hwm_mib": vm_hwm_mib(p)})
    return rows


def pin(pid: int, cpus: set[int] | None = None) -> None:
    """Pin every thread of `pid` to `cpus` (None: all of ours); affinity is per thread."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), cpus or os.sched_getaffinity(0))


def measure_all(args: argparse.Namespace, procs: Processes, tmp: Path, results: dict[str, Any]) -> None:
    router_cpus, client_cpus, pinning = cpu_plan(not args.no_pin)
    fake, fake_url = start_fake(
        procs, "bench", "--chunks", "20", "--chunk-delay-ms", "5", "--text", TEXT, port=args.fake_port, cpus=client_cpus
    )
    gen = LoadGen(procs, cpus=client_cpus)
    results["pinning"] = pinning
    print(f"fake provider {fake_url} (pid {fake.pid}); {pinning}", file=sys.stderr)
    # 1. what the load generator reaches against the fake alone: the ceiling of every routed number
    cal = gen.run(
        fake_url,
        [{"path": "/v1/chat/completions", "body": BODIES[False]}],
        64,
        2.0 * args.scale,
        warmup_s=args.warmup,
        cpu_pids=[fake.pid],
    )
    results["calibration"] = {
        "rps": cal["rps"],
        "client_core_busy": (cal["cpu_s"][0] + cal["loadgen_cpu_s"]) / cal["elapsed_s"],
        "loadgen_cpu_us_per_req": cal["loadgen_cpu_s"] / max(1, cal["ok"]) * 1e6,
        "fake_cpu_us_per_req": cal["cpu_s"][0] / max(1, cal["ok"]) * 1e6,
    }
    print(f"load generator + fake alone: {cal['rps']:.0f} req/s at 64 concurrent", file=sys.stderr)
    direct: tuple[str, list[int]] = (fake_url, [])
    if args.target:
        wait_for_target(args, fake_url)
        pids = process_tree(args.target_pid) if args.target_pid else []
        for pid in pids if router_cpus else []:
            pin(pid, router_cpus)
        if router_cpus and not pids:
            pinning = (
                pinning.split("; ")[1] + "; the target is not pinned (pass --target-pid, or start it under taskset)"
            )
        results["pinning"] = pinning.replace("router on", f"target pid(s) {pids} on")
        results["suites"] = {
            "target": run_suite(
                gen, {"direct": direct, "target": (args.target, pids)}, list(PHASES.values()), fake.pid, args, "target"
            )
        }
        if args.target_pid:
            results["memory"] = {"target": memory(args.target_pid)}
        return
    ledger = tmp / "ledger.jsonl"
    models = {MODEL: ["bench"]}
    # 2. one worker, memory state, on a core of its own
    cfg = tmp / "router-1w.yaml"
    port = free_port()
    write_router_config(cfg, port, {"bench": fake_url}, models, ledger_path=ledger)
    r1, url1 = start_router(procs, cfg, port, name="router-1w", cpus=router_cpus)
    results["suites"] = {
        "1 worker": run_suite(
            gen, {"direct": direct, "router": (url1, [r1.pid])}, list(PHASES.values()), fake.pid, args, "1w"
        )
    }
    results["memory"] = {"1 worker": memory(r1.pid)}
    results["router_errors"] = router_errors(procs.log_path(r1) or Path())
    procs.stop(r1)
    if args.no_workers2:
        return
    # 3. Redis state, nothing pinned: 1 worker (the baseline for scaling) and 2 workers, interleaved
    for pid in (fake.pid, gen.pid):
        pin(pid)
    results["pinning_redis"] = (
        "Redis runs: nothing pinned (router workers, fake, load generator, redis-server share all CPUs)"
    )
    redis_url, redis_pid = start_redis(procs)
    state = {"backend": "redis", "url": redis_url}
    targets: dict[str, tuple[str, list[int]]] = {"direct": direct}
    started = {}
    for workers in (1, 2):
        cfg, port = tmp / f"router-redis-{workers}w.yaml", free_port()
        write_router_config(cfg, port, {"bench": fake_url}, models, ledger_path=ledger, state=state)
        proc, url = start_router(procs, cfg, port, name=f"router-redis-{workers}w", workers=workers)
        targets[f"redis {workers}w"] = (url, process_tree(proc.pid))
        started[workers] = proc
    results["suites"]["redis"] = run_suite(gen, targets, [PHASES["c64"]], fake.pid, args, "redis", (redis_pid,))
    results["processes"] = {t: pids for t, (_, pids) in targets.items()}
    results["memory"]["2 workers"] = memory(started[2].pid)
    for proc in started.values():
        results["router_errors"] += router_errors(procs.log_path(proc) or Path())


def wait_for_target(args: argparse.Namespace, fake_url: str) -> None:
    """The gateway under test must be pointed at the fake first: say where, then poll (bounded)."""
    from _common import http_post_json

    print(
        f"\nPoint the gateway at {fake_url} (OpenAI chat completions; model {MODEL!r}); waiting up to "
        f"{args.target_wait_s:.0f} s for {args.target}/v1/chat/completions to answer 200 ...",
        file=sys.stderr,
    )
    deadline = time.monotonic() + args.target_wait_s
    while time.monotonic() < deadline:
        try:
            status, _ = http_post_json(args.target + "/v1/chat/completions", BODIES[False], headers=args.target_headers)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{args.target} did not answer 200 within {args.target_wait_s:.0f} s")


def evaluate(results: dict[str, Any]) -> list[Target]:
    """Issue 5's targets against what was measured (MISS/PASS; n/a when not measured)."""
    nan = float("nan")
    s = results["suites"]
    one = s.get("1 worker") or s.get("target", {})
    who = "router" if "1 worker" in s else "target"

    def g(ph: str, k: str) -> float:
        return float(one.get(ph, {}).get(who, {}).get(k, nan))

    mem = [m["vm_hwm_mib"] for ms in results.get("memory", {}).values() for m in ms if m["role"] in ("main", "worker")]
    redis = s.get("redis", {}).get("c64", {})
    scale = redis.get("redis 2w", {}).get("rps", nan) / g("c64", "rps") if redis else nan
    scale_redis = redis["redis 2w"]["rps"] / redis["redis 1w"]["rps"] if redis else nan
    ceiling = results["calibration"]["rps"]
    cpu = g("c64", "cpu_s_per_1000")
    return [
        target(
            "throughput, 64 concurrent, 1 worker",
            ">= 3,500 req/s",
            g("c64", "rps"),
            g("c64", "rps") >= 3500,
            " req/s",
            f"ceiling (load generator + fake alone) {ceiling:,.0f} req/s"
            + (f"; {who} CPU {cpu:.3f} s/1k req = at most {1000 / cpu:,.0f} req/s per core" if cpu > 0 else ""),
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
            "added latency p50, 8 concurrent", "<= 2 ms", g("c8", "added_p50_ms"), g("c8", "added_p50_ms") <= 2, " ms"
        ),
        target(
            "stream added TTFB p50, 32 concurrent",
            "<= 2 ms",
            g("s32", "added_ttfb_p50_ms"),
            g("s32", "added_ttfb_p50_ms") <= 2,
            " ms",
        ),
        target(
            "stream total time vs direct (p50)",
            "<= 1.03x",
            g("s32", "total_ratio"),
            g("s32", "total_ratio") <= 1.03,
            "x",
        ),
        target("peak memory per process", "<= 80 MiB", max(mem, default=nan), max(mem, default=nan) <= 80, " MiB"),
        target(
            "2 workers vs 1 worker (req/s)",
            ">= 1.7x",
            scale,
            scale >= 1.7,
            "x",
            f"2 workers (Redis, unpinned) / 1 worker (memory, own CPU); / 1 worker on Redis: {scale_redis:.2f}x"
            if redis
            else "",
        ),
    ]


def print_report(results: dict[str, Any]) -> None:
    cal = results["calibration"]
    print(f"\nRouter overhead | {meta_line(results['meta'])}\n{results['pinning']}")
    if "pinning_redis" in results:
        print(results["pinning_redis"])
    print(
        f"Load generator + fake provider alone: {cal['rps']:,.0f} req/s at 64 concurrent, their core "
        f"{cal['client_core_busy']:.0%} busy (load generator {cal['loadgen_cpu_us_per_req']:.0f} us/req, fake "
        f"{cal['fake_cpu_us_per_req']:.0f} us/req): no routed figure below can exceed this."
    )
    heads = [
        "suite",
        "phase",
        "target",
        "req/s",
        "vs direct",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "added p50",
        "added p90",
        "added p99",
        "TTFB p50",
        "added TTFB",
        "CPU s/1k req",
        "client core",
        "failed",
    ]
    rows = []
    for suite, phases in results["suites"].items():
        for ph, by_target in phases.items():
            for t, m in by_target.items():

                def f(k: str, fmt: str = "{:.2f}") -> str:
                    return "" if t == "direct" or k not in m or math.isnan(m[k]) else fmt.format(m[k])

                rows.append(
                    [
                        suite,
                        ph,
                        t,
                        f"{m['rps']:,.0f}",
                        f("rps_ratio"),
                        f"{m['p50_ms']:.2f}",
                        f"{m['p90_ms']:.2f}",
                        f"{m['p99_ms']:.2f}",
                        f("added_p50_ms", "{:+.2f}"),
                        f("added_p90_ms", "{:+.2f}"),
                        f("added_p99_ms", "{:+.2f}"),
                        "" if math.isnan(m["ttfb_p50_ms"]) else f"{m['ttfb_p50_ms']:.2f}",
                        f("added_ttfb_p50_ms", "{:+.2f}"),
                        f("cpu_s_per_1000", "{:.3f}"),
                        f"{m['client_core_busy']:.0%}",
                        m["failed"],
                    ]
                )
    print("\n" + markdown_table(heads, rows))
    for suite, phases in results["suites"].items():
        for ph, by_target in phases.items():
            for t, m in by_target.items():
                if t != "direct" and len(m.get("cpu_labels", [])) > 2:  # several router processes, or redis
                    by = ", ".join(
                        f"{lbl} {v}" for lbl, v in zip(m["cpu_labels"], m["cpu_us_per_req_by_pid"], strict=False)
                    )
                    print(f"CPU us per request, {suite} {ph} {t}: {by}")
    if results.get("memory"):
        mem_rows = [
            [k, m["role"], m["pid"], f"{m['vm_hwm_mib']:.1f}"] for k, ms in results["memory"].items() for m in ms
        ]
        print("\nPeak memory (VmHWM)\n" + markdown_table(["router", "process", "pid", "MiB"], mem_rows))
    print("\nTargets of issue 5\n" + targets_table(results["targets"]))
    for suite, phases in results["suites"].items():
        for ph, by_target in phases.items():
            for t, m in by_target.items():
                if m["first_failure"]:
                    print(f"first failure, {suite} {ph} {t}: {m['first_failure'][:300]}")
    if results.get("router_errors"):
        print(
            f"WARNING: {len(results['router_errors'])} error line(s) in the router logs: {results['router_errors'][0][:300]}"
        )


def chart(results: dict[str, Any], path: str) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [1, 1.3]})
    first = next(iter(results["suites"]))
    who = "target" if first == "target" else "router"
    phases = [p for p in ("c1", "c8", "c64") if p in results["suites"][first]]
    for i, q in enumerate(("p50", "p90", "p99")):
        vals = [results["suites"][first][p][who][f"added_{q}_ms"] for p in phases]
        ax1.bar([x + (i - 1) * 0.27 for x in range(len(phases))], vals, 0.27, label=q)
    for x, qi, goal in ((0, 0, 0.5), (0, 2, 3.0), (1, 0, 2.0)):  # issue 5's latency targets, where it set them
        if x < len(phases):
            xq = x + (qi - 1) * 0.27
            ax1.plot(
                [xq - 0.14, xq + 0.14], [goal, goal], color="tab:red", lw=2, label="target" if x == qi == 0 else None
            )
    ax1.set_xticks(range(len(phases)), [f"{PHASES[p].concurrency} concurrent" for p in phases])
    ax1.set_yscale("symlog", linthresh=1)
    ax1.set_ylabel("added latency, ms (vs direct)")
    ax1.set_title(f"Added latency, non-stream ({first})")
    ax1.legend()
    bars: list[tuple[str, float, str]] = []
    for suite, phases_ in results["suites"].items():
        for t, m in phases_.get("c64", {}).items():
            where = "pinned" if suite in ("1 worker", "target") else "unpinned"
            names = {
                "direct": f"direct\n({where})",
                "router": "router, 1 worker\nmemory, own CPU",
                "redis 1w": "router, 1 worker\nredis, unpinned",
                "redis 2w": "router, 2 workers\nredis, unpinned",
            }
            bars.append((names.get(t, t), m["rps"], "tab:gray" if t == "direct" else "tab:blue"))
    ax2.bar_label(
        ax2.bar(range(len(bars)), [b[1] for b in bars], color=[b[2] for b in bars]), fmt="{:,.0f}", fontsize=8
    )
    ax2.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=7)
    ax2.axhline(3500, color="tab:red", ls="--", lw=1, label="target 3,500 req/s")
    ax2.set_ylabel("req/s at 64 concurrent")
    ax2.set_title("Saturated throughput, direct vs router")
    ax2.legend()
    fig.suptitle(f"router overhead, commit {results['meta']['commit']}, {results['pinning']}", fontsize=9)
    save_chart(fig, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one round, shorter runs (~20 s smoke run)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every run's length (default 1)")
    p.add_argument("--warmup", type=float, default=0.25, help="unrecorded seconds before each run (default 0.25)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--no-workers2", action="store_true", help="skip the Redis 1- and 2-worker runs")
    p.add_argument(
        "--target", metavar="URL", help="measure this OpenAI-compatible gateway instead of starting the router"
    )
    p.add_argument("--target-key", default="", help="bearer token for --target")
    p.add_argument(
        "--target-pid", type=int, help="--target's process id: pin it to CPU 0, report its CPU and peak memory"
    )
    p.add_argument(
        "--target-wait-s", type=float, default=120, help="how long to wait for --target to answer (default 120)"
    )
    p.add_argument("--fake-port", type=int, default=0, help="fake provider port (default: a free one)")
    add_output_args(p, "overhead")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.scale = 1, args.scale * 0.6
    if args.rounds < 1 or args.scale <= 0:
        p.error("--rounds must be >= 1 and --scale > 0")
    args.target = args.target.rstrip("/") if args.target else None
    args.target_headers = {"authorization": f"Bearer {args.target_key}"} if args.target_key else {}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_as_interrupt()
    results: dict[str, Any] = {
        "meta": run_meta(),
        "args": {k: v for k, v in vars(args).items() if k != "target_headers"},
    }
    t0, load = time.monotonic(), MachineLoad()
    with workdir("router-bench-", args.keep_logs) as tmp, Processes(tmp) as procs:
        try:
            measure_all(args, procs, Path(tmp), results)
        except KeyboardInterrupt:
            print("\ninterrupted; stopping the child processes", file=sys.stderr)
            return 130
    results["run_time_s"] = round(time.monotonic() - t0, 1)
    results["machine_load"] = load.finish()
    results["targets"] = evaluate(results)
    print_report(results)
    print(f"(run time {results['run_time_s']} s; {load_note(results['machine_load'])})")
    results["targets"] = [
        dict(zip(("name", "goal", "measured", "verdict", "note"), t.row(), strict=False)) for t in results["targets"]
    ]
    write_json(args.json, results)
    chart(results, args.chart)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
