"""Router overhead (the first performance targets and those of the later performance work): the
same workload sent directly to the fake provider and through the router, interleaved in one run,
with every performance target printed as PASS or MISS.

The router runs the full request path: a real key, a plan with a budget, an rpm and a concurrency
limit (all out of reach), prices, the ledger, info logs to a file. Child processes: two fake
providers ("paced": 20 stream chunks 5 ms apart; "burst": 100 chunks, no delay; non-stream
answers at once), the load generators (wrk for non-stream requests where installed, see _wrk.py;
aiohttp on uvloop for streams, see _loadgen.py) and the router: 1 worker pinned to CPU 0 with
the fakes, the load generators and redis-server on CPU 1, on memory state and on Redis state;
then 1 and 2 workers on Redis, each worker on a core of its own.

Phases, each run against `direct` and the router in turn, which goes first rotating per round:
  c1, c8, c64   non-stream chat, small JSON body, 1 / 8 / 64 concurrent: latency, req/s
  s32           32 concurrent streams of 20 chunks 5 ms apart: time to first content, total time
  n100, t100    16 concurrent streams of 100 chunks with no delay, a route in the client's own
                format (native) and one that translates (the provider speaks only Anthropic
                Messages): streams at the rate the router can carry, and its CPU per chunk

    .ci/run bench overhead                  # ~95 s
    .ci/run bench overhead --quick          # ~27 s smoke run
    .ci/run bench overhead --granian        # also the same app on granian, interleaved
    .ci/run bench overhead --target http://127.0.0.1:4000 --fake-port 9300 --target-key sk-...
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    BENCH_AUTH,
    HOST,
    Processes,
    cpu_plan,
    free_port,
    http_post_json,
    install_sigterm_as_interrupt,
    pin,
    process_tree,
    redis_commands_sent,
    redis_stats,
    router_errors,
    start_fake,
    start_redis,
    start_router,
    wait_http_ok,
    workdir,
    write_router_config,
)
from _loadgen import LoadGen
from _overhead_report import chart, evaluate, memory, print_report
from _overhead_suite import BODIES, MODEL, PATH, PHASES, TEXT, Clients, Sut, run_suite
from _report import MachineLoad, add_output_args, load_note, run_meta, write_json
from _wrk import Wrk, wrk_path

BURST_CHUNKS = PHASES["n100"].chunks
# ~4 characters a chunk, like a token; starts with "H", the first-content marker
BURST_TEXT = ("Hello, " + "a streamed answer of many small pieces, " * 12)[: BURST_CHUNKS * 4]


def granian_path() -> str | None:
    """granian is not a dependency of the project: `pip install granian` to compare."""
    beside = Path(sys.executable).parent / "granian"
    return shutil.which("granian") or (str(beside) if beside.exists() else None)


def start_granian(procs: Processes, cfg: Path, port: int, cpus: set[int] | None) -> tuple[Any, str]:
    """The router's own app (router.app:app_from_env) on granian instead of uvicorn: one worker,
    uvloop, HTTP/1 only. Without the router's connection limits (protocol.py is uvicorn's)."""
    argv = [
        granian_path() or "granian",
        "--interface",
        "asgi",
        "--factory",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    argv += ["--loop", "uvloop", "--http", "1", "--no-ws", "--log-level", "warning", "router.app:app_from_env"]
    proc = procs.start("router-granian", argv, python=False, cpus=cpus, env={"ROUTER_CONFIG": str(cfg)})
    url = f"http://{HOST}:{port}"
    wait_http_ok(url + "/health/ready", procs, proc, "granian")
    return proc, url


def worker_pids(pid: int) -> list[int]:
    """uvicorn's worker processes under its supervisor `pid` (not multiprocessing's resource tracker)."""
    return [m["pid"] for m in memory(pid) if m["role"] == "worker"]


def redis_commands_per_request(redis_url: str, router_url: str, n: int = 20) -> dict[str, Any]:
    """What one request costs in Redis commands sent by the router (not those its scripts run):
    `n` non-stream requests one at a time while Redis's MONITOR lists what it receives."""

    def send() -> None:
        for _ in range(n):
            status, answer = http_post_json(router_url + PATH, BODIES[False], headers=BENCH_AUTH)
            if status != 200:
                raise RuntimeError(f"the Redis router answered {status}: {str(answer)[:200]}")

    seen = redis_commands_sent(redis_url, send)
    before = redis_stats(redis_url)
    send()
    time.sleep(0.3)  # the settle is written after the answer
    after = redis_stats(redis_url)
    reads = after["total_reads_processed"] - before["total_reads_processed"] - 1  # the second INFO's own read
    return {
        "per_request": sum(seen.values()) / n,
        "by_command": {k: v / n for k, v in sorted(seen.items())},
        "reads_c1": reads / n,
    }


def redis_reads_under_load(
    clients: Clients, redis_url: str, sut: Sut, args: argparse.Namespace, scripts_per_request: float
) -> float:
    """Redis's reads per request while 64 requests are in flight: what the router's pipelining
    batches. Requests are counted as Redis saw them (its script calls over the scripts per
    request, one at a time), so warm-up and the load generator's own counting do not matter."""
    before = redis_stats(redis_url)
    clients.run(PHASES["c64"], sut.url, BENCH_AUTH, sut.pids, 2.0 * args.scale, 0.0)
    time.sleep(0.3)
    after = redis_stats(redis_url)
    scripts = sum(after.get(k, 0) - before.get(k, 0) for k in ("cmdstat_evalsha", "cmdstat_eval"))
    reads = after["total_reads_processed"] - before["total_reads_processed"] - 1
    return reads / max(1.0, scripts / scripts_per_request)


def stop_routers(procs: Processes) -> list[str]:
    """Stop every router started so far; the error lines and tracebacks in their logs."""
    errors = []
    for name, proc, log in list(procs.procs):
        if name.startswith("router"):
            procs.stop(proc)
            errors += router_errors(log)
    return errors


def measure_all(args: argparse.Namespace, procs: Processes, tmp: Path, results: dict[str, Any]) -> None:
    router_cpus, client_cpus, pinning = cpu_plan(not args.no_pin)
    fake, fake_url = start_fake(
        procs, "bench", "--chunks", "20", "--chunk-delay-ms", "5", "--text", TEXT, port=args.fake_port, cpus=client_cpus
    )
    fakes = {"paced": (fake_url, fake.pid)}
    if not args.target:
        for name, delay in (("long", "5"), ("burst", "0")):
            extra = ("--chunks", str(BURST_CHUNKS), "--chunk-delay-ms", delay, "--text", BURST_TEXT)
            proc, url = start_fake(procs, name, *extra, cpus=client_cpus)
            fakes[name] = (url, proc.pid)
    use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and wrk_path() is not None)
    clients = Clients(LoadGen(procs, cpus=client_cpus), Wrk(tmp, client_cpus) if use_wrk else None, client_cpus)
    clients.pids += [pid for _, pid in fakes.values()]
    results["pinning"] = pinning
    results["loadgen"] = (
        "wrk (non-stream), aiohttp (streams)" if use_wrk else "aiohttp (wrk not installed or --loadgen aiohttp)"
    )
    print(f"fakes {fakes}; {pinning}; load generator: {results['loadgen']}", file=sys.stderr)
    # 1. what the load generator reaches against the fake alone: the ceiling of every routed number
    cal = clients.run(PHASES["c64"], fake_url, {}, [fake.pid], 2.0 * args.scale, args.warmup)
    results["calibration"] = {
        "rps": cal["rps"],
        "client_core_busy": (cal["cpu_s"][0] + cal["loadgen_cpu_s"]) / cal["elapsed_s"],
        "loadgen_cpu_us_per_req": cal["loadgen_cpu_s"] / max(1, cal["ok"]) * 1e6,
        "fake_cpu_us_per_req": cal["cpu_s"][0] / max(1, cal["ok"]) * 1e6,
    }
    print(f"load generator + fake alone: {cal['rps']:.0f} req/s at 64 concurrent", file=sys.stderr)
    if args.target:
        measure_target(args, clients, fakes, router_cpus, pinning, results)
        return
    ledger = tmp / "ledger.jsonl"
    # the long and burst fakes twice each: as they are, and as a provider the router believes speaks
    # only Anthropic Messages (the fake speaks every format), so it translates
    providers, models, formats = {"bench": fake_url}, {MODEL: ["bench"]}, {}
    for fake_name, suffix in (("long", ""), ("burst", "-burst")):
        providers |= {fake_name: fakes[fake_name][0], f"{fake_name}-messages": fakes[fake_name][0]}
        models |= {f"bench-native{suffix}": [fake_name], f"bench-translated{suffix}": [f"{fake_name}-messages"]}
        formats[f"{fake_name}-messages"] = ["anthropic-messages"]

    def config(name: str, **kw: Any) -> tuple[Path, int]:
        cfg, port = tmp / f"{name}.yaml", free_port()
        # nothing is in flight when a benchmark stops a router: no drain grace to wait out
        server = {"drain_grace_s": 0, "drain_timeout_s": 5}
        write_router_config(cfg, port, providers, models, ledger_path=ledger, formats=formats, server=server, **kw)
        return cfg, port

    # 2. one worker on a core of its own: memory state; Redis state (c64); granian (if asked)
    cfg, port = config("router-1w")
    r1, url1 = start_router(procs, cfg, port, name="router-1w", cpus=router_cpus)
    suts = {"router": Sut(url1, [r1.pid])}
    redis_url, redis_pid = "", 0
    if not args.no_redis:
        redis_url, redis_pid = start_redis(procs, cpus=client_cpus)
        clients.pids.append(redis_pid)
        cfg, port = config("router-redis-1w", state={"backend": "redis", "url": redis_url})
        rr, url = start_router(procs, cfg, port, name="router-redis-1w", cpus=router_cpus)
        suts["redis"] = Sut(url, [rr.pid], phases=frozenset({"c64"}))
    if args.granian:
        cfg, port = config("router-granian")
        g, url = start_granian(procs, cfg, port, router_cpus)
        suts["granian"] = Sut(url, process_tree(g.pid), phases=frozenset({"c1", "c64", "s32", "n100", "nb100"}))
    redis_pids = (redis_pid,) if redis_pid else ()
    results["suites"] = {"1 worker": run_suite(clients, suts, list(PHASES.values()), fakes, args, "1w", redis_pids)}
    if "redis" in suts:
        results["redis_commands"] = redis_commands_per_request(redis_url, suts["redis"].url)
        rc = results["redis_commands"]
        scripts = sum(v for k, v in rc["by_command"].items() if k in ("evalsha", "eval"))
        rc["reads_c64"] = redis_reads_under_load(clients, redis_url, suts["redis"], args, scripts or 2.0)
    results["memory"] = {name: memory(sut.pids[0]) for name, sut in suts.items()}
    results["router_errors"] = stop_routers(procs)
    if args.no_workers2 or args.no_redis:
        return
    measure_workers(args, procs, clients, config, redis_url, redis_pid, fakes, results)


def measure_workers(
    args: argparse.Namespace,
    procs: Processes,
    clients: Clients,
    config: Any,
    redis_url: str,
    redis_pid: int,
    fakes: dict[str, tuple[str, int]],
    results: dict[str, Any],
) -> None:
    """1 and 2 workers on Redis, interleaved at 64 concurrent. Each worker gets a core of its own;
    the clients (fakes, load generators, redis-server) get the other cores, or, where the machine
    has too few, the core the single worker leaves free (1 worker) and every core (2 workers)."""
    cpus = sorted(clients.all_cpus)
    state = {"backend": "redis", "url": redis_url}
    suts: dict[str, Sut] = {}
    plan: dict[int, tuple[list[set[int] | None], set[int] | None]]
    if args.no_pin or len(cpus) < 2:
        plan = {1: ([None], None), 2: ([None, None], None)}
    elif len(cpus) >= 4:
        plan = {1: ([{cpus[0]}], set(cpus[2:])), 2: ([{cpus[0]}, {cpus[1]}], set(cpus[2:]))}
    else:  # too few cores for the clients to have their own while 2 workers run
        plan = {1: ([{cpus[0]}], set(cpus[1:])), 2: ([{cpus[0]}, {cpus[1]}], set(cpus))}
    lines = []
    for workers in (1, 2):
        cfg, port = config(f"router-redis-{workers}w-workers", state=state)
        proc, url = start_router(procs, cfg, port, name=f"router-redis-{workers}w-workers", workers=workers)
        wpids = worker_pids(proc.pid) if workers > 1 else [proc.pid]
        for wpid, wcpus in zip(wpids, plan[workers][0], strict=False):
            if wcpus is not None:
                pin(wpid, wcpus)
        suts[f"redis {workers}w"] = Sut(url, process_tree(proc.pid), client_cpus=plan[workers][1])
        where = [sorted(c) if c else "any" for c in plan[workers][0]]
        lines.append(f"{workers} worker(s) on CPU {', '.join(map(str, where))}, clients on {plan[workers][1] or 'any'}")
    results["pinning_workers"] = (
        "Workers runs (Redis): "
        + "; ".join(lines)
        + f"; direct: clients on {sorted(clients.all_cpus)}"
        + ("" if len(cpus) >= 4 else f" ({len(cpus)} CPUs: the clients cannot have cores of their own)")
    )
    results["suites"]["workers"] = run_suite(
        clients,
        suts,
        [PHASES["c64"]],
        {"paced": fakes["paced"]},
        args,
        "workers",
        (redis_pid,),
        direct_client_cpus=clients.all_cpus,
    )
    results["processes"] = {t: s.pids for t, s in suts.items()}
    results["memory"]["2 workers"] = memory(suts["redis 2w"].pids[0])
    results["router_errors"] += stop_routers(procs)


def measure_target(
    args: argparse.Namespace,
    clients: Clients,
    fakes: dict[str, tuple[str, int]],
    router_cpus: set[int] | None,
    pinning: str,
    results: dict[str, Any],
) -> None:
    """Another gateway, pointed at the paced fake: the phases that need only that fake."""
    fake_url = fakes["paced"][0]
    wait_for_target(args, fake_url)
    pids = process_tree(args.target_pid) if args.target_pid else []
    for pid in pids if router_cpus else []:
        pin(pid, router_cpus)
    if router_cpus and not pids:
        pinning = pinning.split("; ")[1] + "; the target is not pinned (pass --target-pid, or start it under taskset)"
    results["pinning"] = pinning.replace("router on", f"target pid(s) {pids} on")
    phases = [p for p in PHASES.values() if p.fake == "paced"]
    sut = Sut(args.target, pids, headers=args.target_headers)
    results["suites"] = {"target": run_suite(clients, {"target": sut}, phases, fakes, args, "target")}
    if args.target_pid:
        results["memory"] = {"target": memory(args.target_pid)}


def wait_for_target(args: argparse.Namespace, fake_url: str) -> None:
    """The gateway under test must be pointed at the fake first: say where, then poll (bounded)."""
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one round, shorter runs (~27 s smoke run)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every run's length (default 1)")
    p.add_argument("--warmup", type=float, default=0.25, help="unrecorded seconds before each aiohttp run")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--no-workers2", action="store_true", help="skip the 1- and 2-worker runs on Redis")
    p.add_argument("--no-redis", action="store_true", help="skip every Redis run")
    p.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "aiohttp"),
        default="auto",
        help="non-stream load generator (default auto: wrk where installed); streams always use aiohttp",
    )
    p.add_argument("--granian", action="store_true", help="also run the router's app on granian (c1, c64, s32, n100)")
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
    if args.granian and granian_path() is None:
        p.error("--granian: granian is not installed (pip install granian)")
    if not args.no_redis and shutil.which("redis-server") is None:
        print("redis-server not installed: no Redis runs (`.ci/run bench overhead` installs it)", file=sys.stderr)
        args.no_redis = True
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
