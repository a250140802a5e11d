"""Where the router's CPU goes under a fixed load, by function: non-stream requests by default,
streams with `--stream` (`--translated`: the provider speaks another format than the client, so
every event goes through the IR). Compare two checkouts in one run (`--repo` of each,
alternately): the absolute times shift with the machine, the difference between the two does
not much.

    .venv/bin/python benchmarks/profile_stream.py                       # cProfile, 20,000 requests
    .venv/bin/python benchmarks/profile_stream.py --stream --translated # 2,000 streams of 20 deltas
    .venv/bin/python benchmarks/profile_stream.py --per-chunk           # cProfile per extra stream chunk
    .venv/bin/python benchmarks/profile_stream.py --stream --py-spy s.txt   # py-spy instead (pip install py-spy)
    .venv/bin/python -m pstats router.prof                            # then: sort tottime, stats 30

`--measure` runs the router without a profiler and reports its CPU (from /proc) per relayed
stream chunk: non-stream requests, streams of one delta and streams of `--chunks` deltas, each
`--requests` of them per round. The slope (what the longer streams cost more, per extra chunk)
is the chunk's own cost; the whole-stream figure is (a stream of `--chunks` deltas - a non-stream
request) / its deltas, which also charges the chunks with what a stream costs more than a whole
answer. With several `--repo`, each is measured in turn, `--rounds` times, interleaved, and the
ratios are printed; `--floor` adds `_passthrough.py` (the same server and upstream client,
relaying bytes with nothing else), the floor of this stack:

    .venv/bin/python benchmarks/profile_stream.py --measure --repo /tmp/base --repo . --floor

The fake provider sends its deltas `--chunk-delay-ms` apart (default 0: as fast as it can, so
several arrive in one read; 5 gives one read per delta, as a real stream does). The router runs
`python -m router serve` with a real key, plan, prices and ledger (the benchmarks' config); 32
concurrent clients send chat requests through aiohttp; SIGINT drains the router, which writes
the profile.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    BENCH_AUTH,
    cpu_plan,
    cpu_seconds,
    free_port,
    http_post_json,
    process_tree,
    wait_ready_aio,
    write_router_config,
)
from _report import MachineLoad, load_note

_MSG = [{"role": "user", "content": "Say hello."}]
# The client's request in each format (the path on the router, the body).
REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "openai-chat": ("/v1/chat/completions", {"model": "bench", "messages": _MSG, "max_tokens": 16}),
    "anthropic-messages": ("/v1/messages", {"model": "bench", "messages": _MSG, "max_tokens": 16}),
    "openai-responses": ("/v1/responses", {"model": "bench", "input": "Say hello.", "max_output_tokens": 16}),
}
SHORT = {"openai-chat": "chat", "anthropic-messages": "messages", "openai-responses": "responses"}
# Each content delta carries a few characters, as a token does.
PIECE = "word "


class Setup:
    """One router on one fake provider, for one checkout (`floor`: _passthrough.py in its place)."""

    def __init__(
        self, repo: Path, tmp: Path, args: argparse.Namespace, profile_to: Path | None, floor: bool = False
    ) -> None:
        self.repo, self.args = repo, args
        self.label = "pass-through (the floor)" if floor else str(repo)
        env = {**os.environ, "PYTHONPATH": str(repo)}
        self.fport, rport = free_port(), free_port()
        fake = [sys.executable, "-m", "router", "fake-upstream", "--port", str(self.fport), "--latency-ms", "0"]
        router_cpus, load_cpus, _ = cpu_plan(args.pin)
        quiet = subprocess.DEVNULL
        self.fake = subprocess.Popen(fake, cwd=repo, env=env, preexec_fn=_pinned(load_cpus), stdout=quiet, stderr=quiet)
        cfg = tmp / f"router-{rport}.yaml"
        formats = {"fake": [args.upstream]}
        write_router_config(
            cfg,
            rport,
            {"fake": f"http://127.0.0.1:{self.fport}"},
            {"bench": ["fake"]},
            ledger_path=tmp / f"l-{rport}.jsonl",
            formats=formats,
        )
        argv = [sys.executable]
        if profile_to is not None:
            argv += ["-m", "cProfile", "-o", str(profile_to)]
        argv += ["-m", "router", "serve", "--config", str(cfg), "--port", str(rport)]
        if floor:
            here = Path(__file__).resolve().parent
            env["PYTHONPATH"] += os.pathsep + str(here)
            env["PASSTHROUGH_UPSTREAM"] = f"http://127.0.0.1:{self.fport}"
            argv = [sys.executable, "-m", "uvicorn", "_passthrough:app", "--port", str(rport), "--loop", "uvloop"]
            argv += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
        self.router = subprocess.Popen(
            argv, cwd=repo, env=env, preexec_fn=_pinned(router_cpus), stdout=quiet, stderr=quiet
        )
        self.url = f"http://127.0.0.1:{rport}"

    def chunks(self, n: int) -> None:
        """The fake's streams from now on: `n` content deltas of a few characters each."""
        faults = {"chunks": n, "text": PIECE * n, "chunk_delay_ms": self.args.chunk_delay_ms}
        status, _ = http_post_json(f"http://127.0.0.1:{self.fport}/_admin/faults", faults)
        if status != 200:
            raise RuntimeError(f"the fake refused its faults: HTTP {status}")

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in process_tree(self.router.pid))

    def stop(self) -> None:
        self.router.send_signal(signal.SIGINT)  # a graceful drain, then the profile is written
        try:
            self.router.wait(60)
        finally:
            self.fake.kill()
            self.fake.wait()


def _pinned(cpus: set[int] | None) -> Callable[[], None] | None:
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


async def load(s: aiohttp.ClientSession, url: str, args: argparse.Namespace, requests: int) -> tuple[float, int]:
    """`requests` requests at `args.concurrency`; (seconds, body pieces the clients received)."""
    path, body = REQUESTS[args.client]
    body = {**body, "stream": True} if args.stream else body
    sent = pieces = 0

    async def client() -> None:
        nonlocal sent, pieces
        while sent < requests:
            sent += 1
            async with s.post(url + path, json=body, headers=BENCH_AUTH) as r:
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}: {(await r.read())[:300]!r}")
                async for _ in r.content.iter_any():
                    pieces += 1

    start = time.monotonic()
    await asyncio.gather(*(client() for _ in range(args.concurrency)))
    return time.monotonic() - start, pieces


def profile(args: argparse.Namespace) -> int:
    repo, out = Path(args.repo[0]).resolve(), Path(args.out).resolve()
    spy: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="router-profile-") as tmp:
        setup = Setup(repo, Path(tmp), args, None if args.py_spy else out)
        try:

            async def run() -> tuple[float, int]:
                nonlocal spy
                async with aiohttp.ClientSession() as s:
                    await wait_ready_aio(s, setup.url)  # the router is ready once its probe reached the fake
                    setup.chunks(args.chunks)
                    if args.py_spy:
                        await load(s, setup.url, args, min(args.requests, 500))  # warm-up, not sampled
                        spy = start_py_spy(setup.router.pid, Path(args.py_spy))
                        await asyncio.sleep(1)  # py-spy attaches
                    return await load(s, setup.url, args, args.requests)

            took, pieces = asyncio.run(run())
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled, then exits
                spy.wait(60)
            setup.stop()
    what = f"streams of {args.chunks} deltas ({describe(args)})" if args.stream else "requests"
    if args.py_spy:
        print(f"{args.requests} {what} in {took:.1f} s; py-spy, self time by function (share of the router's samples):")
        if args.stream:
            print(f"  the clients received {pieces / args.requests:.1f} body pieces per stream")
        total, own = spy_self_time(Path(args.py_spy))
        for key, n in sorted(own.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"  {n / total:6.1%}  {key}")
        print(f"collapsed stacks (flamegraph.pl's input): {args.py_spy}")
        return 0
    own_t: dict[str, float] = defaultdict(float)
    for (path, _, name), (_, _, tottime, _, _) in pstats.Stats(str(out)).stats.items():  # type: ignore[attr-defined]
        if "/router/" in path and name != "lifespan":  # the lifespan's time is the idle event loop
            own_t[path.split("/router/")[-1] + ":" + name] += tottime
    print(f"{args.requests} {what} in {took:.1f} s; the router's own code: {sum(own_t.values()):.3f} s (cProfile)")
    if args.stream:
        print(f"  the clients received {pieces / args.requests:.1f} body pieces per stream")
    for key, t in sorted(own_t.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {t:7.3f} s  {key}")
    print(f"profile: {out}")
    return 0


def per_chunk(args: argparse.Namespace) -> int:
    """cProfile of streams of one delta and of --chunks deltas, one router each; what the second
    costs more, per extra chunk, by function (call counts are exact; times are cProfile's, which
    inflates Python code about twice against C and system calls)."""
    out = Path(args.out).resolve()
    runs = {}
    for k in (1, args.chunks):
        prof = out.with_name(f"{out.stem}-{k}{out.suffix}")
        profile(argparse.Namespace(**{**vars(args), "chunks": k, "out": str(prof), "top": 0}))
        runs[k] = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
    extra = args.requests * (args.chunks - 1)
    rows = []
    for key in set(runs[1]) | set(runs[args.chunks]):
        a, b = runs[1].get(key, (0, 0, 0, 0, 0)), runs[args.chunks].get(key, (0, 0, 0, 0, 0))
        path, _, name = key
        if name == "lifespan":
            continue  # the idle event loop
        where = path.split("/router/")[-1] if "/router/" in path else path.split("site-packages/")[-1]
        rows.append(((b[1] - a[1]) / extra, (b[2] - a[2]) / extra * 1e6, f"{where}:{name}"))
    print(f"per extra chunk ({describe(args)}), cProfile: {sum(r[1] for r in rows):.1f} µs in all")
    for calls, us, name in sorted(rows, key=lambda r: -r[1])[: args.top]:
        print(f"  {us:6.2f} µs {calls:5.2f} calls  {name}")
    return 0


def start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "py-spy"
    argv = [str(exe), "record", "-p", str(pid), "-r", "500", "-f", "raw", "-o", str(out), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def spy_self_time(raw: Path) -> tuple[int, dict[str, int]]:
    """(samples, samples by the function on top of each stack) from py-spy's collapsed stacks."""
    own: dict[str, int] = defaultdict(int)
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        name, _, where = leaf.partition(" (")
        where = where.split(":")[0]
        short = where.split("/router/")[-1] if "/router/" in where else where.split("site-packages/")[-1]
        own[f"{short}:{name}"] += int(count)
        total += int(count)
    return max(total, 1), own


def describe(args: argparse.Namespace) -> str:
    route = "translated" if args.client != args.upstream else "native"
    return f"{route}: {SHORT[args.client]} client, {SHORT[args.upstream]} upstream, {args.chunk_delay_ms:g} ms apart"


class Round(NamedTuple):
    """One checkout's CPU in one round, in µs."""

    per_chunk: float  # the slope: (streams of many deltas - streams of one) / the extra chunks
    per_stream: float  # a stream's own cost besides its chunks (the intercept)
    per_request: float  # a whole non-stream request
    issue: float  # the whole-stream figure: (a stream of many deltas - a non-stream request) / its deltas
    pieces: float  # body pieces the client received per stream of many deltas


def measure(args: argparse.Namespace) -> int:
    """CPU per chunk of each checkout, interleaved rounds."""
    repos = [Path(r).resolve() for r in args.repo]
    few, many = 1, args.chunks
    n = args.requests
    _, load_cpus, pinning = cpu_plan(args.pin)
    if load_cpus:
        os.sched_setaffinity(0, load_cpus)  # this process is the load generator
    machine = MachineLoad()
    with tempfile.TemporaryDirectory(prefix="router-measure-") as tmp:
        setups = [Setup(r, Path(tmp), args, None) for r in repos]
        if args.floor:
            setups.append(Setup(repos[-1], Path(tmp), args, None, floor=True))
        results: dict[str, list[Round]] = {st.label: [] for st in setups}
        try:

            async def cpu_of(s: aiohttp.ClientSession, st: Setup, stream: bool, chunks: int) -> tuple[float, int]:
                st.chunks(chunks)
                c0 = st.cpu()
                _, pieces = await load(s, st.url, argparse.Namespace(**{**vars(args), "stream": stream}), n)
                return (st.cpu() - c0) / n * 1e6, pieces

            async def run() -> None:
                async with aiohttp.ClientSession() as s:
                    for st in setups:
                        await wait_ready_aio(s, st.url)
                        st.chunks(many)
                        await load(s, st.url, args, min(n, 500))  # warm-up
                    for rnd in range(args.rounds):
                        for st in setups:
                            whole, _ = await cpu_of(s, st, False, few)
                            one, _ = await cpu_of(s, st, True, few)
                            full, pieces = await cpu_of(s, st, True, many)
                            per_chunk = (full - one) / (many - few)
                            r = Round(per_chunk, one - per_chunk * few, whole, (full - whole) / many, pieces / n)
                            results[st.label].append(r)
                            print(
                                f"round {rnd + 1} {st.label}: {r.per_chunk:5.1f} µs per chunk (slope), "
                                f"{r.per_stream:4.0f} µs per stream besides its chunks, {r.per_request:4.0f} µs per "
                                f"non-stream request; whole-stream figure {r.issue:5.1f} µs; {r.pieces:.1f} pieces",
                                flush=True,
                            )

            asyncio.run(run())
        finally:
            for st in setups:
                st.stop()
    note = load_note(machine.finish())
    print(
        f"\n{n} non-stream requests, streams of {few} and of {many} deltas per round "
        f"({describe(args)}), {args.concurrency} concurrent; medians of {args.rounds} rounds"
    )
    first = next(iter(results.values()))
    base = statistics.median(r.per_chunk for r in first)
    base_issue = statistics.median(r.issue for r in first)
    for label, rows in results.items():
        med, issue = statistics.median(r.per_chunk for r in rows), statistics.median(r.issue for r in rows)
        print(
            f"  {label}: {med:.1f} µs per chunk (slope; rounds {', '.join(f'{r.per_chunk:.1f}' for r in rows)}), "
            f"{med / base:.2f}x the first; whole-stream figure {issue:.1f} µs ({issue / base_issue:.2f}x); "
            f"{statistics.median(r.per_stream for r in rows):.0f} µs per stream besides its chunks, "
            f"{statistics.median(r.per_request for r in rows):.0f} µs per non-stream request"
        )
    print(f"  {pinning}; {note}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", action="append", help="the checkout(s) to run (default this one); several with --measure")
    p.add_argument("--out", default="router.prof", help="where the profile goes (default router.prof)")
    p.add_argument("--requests", type=int, default=None, help="default 20,000 (2,000 streams)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--top", type=int, default=25, help="router functions to print, by own time")
    p.add_argument("--stream", action="store_true", help="stream requests")
    p.add_argument("--translated", action="store_true", help="an upstream of another format than the client's")
    p.add_argument("--client", choices=sorted(REQUESTS), default="openai-chat", help="the client's format")
    p.add_argument("--upstream", choices=sorted(REQUESTS), help="the provider's format (see --translated)")
    p.add_argument("--chunks", type=int, default=20, help="content deltas per stream (default 20)")
    p.add_argument("--chunk-delay-ms", type=float, default=0, help="the fake's delay before each delta")
    p.add_argument("--measure", action="store_true", help="CPU per chunk, no profiler (implies --stream)")
    p.add_argument("--rounds", type=int, default=3, help="with --measure: rounds per checkout")
    p.add_argument("--py-spy", metavar="PATH", help="sample with py-spy (pip install py-spy) instead of cProfile")
    p.add_argument("--per-chunk", action="store_true", help="cProfile per extra chunk (implies --stream)")
    p.add_argument("--floor", action="store_true", help="with --measure: also _passthrough.py, the floor")
    p.add_argument("--pin", action="store_true", help="router(s) on one CPU, the fake and the load on another")
    args = p.parse_args()
    args.repo = args.repo or [str(Path(__file__).resolve().parent.parent)]
    args.stream = args.stream or args.measure or args.per_chunk
    if args.upstream is None:
        other = "anthropic-messages" if args.client != "anthropic-messages" else "openai-chat"
        args.upstream = other if args.translated else args.client
    if args.requests is None:
        args.requests = 2_000 if args.stream else 20_000
    if args.measure:
        return measure(args)
    if len(args.repo) > 1:
        p.error("several --repo only with --measure")
    return per_chunk(args) if args.per_chunk else profile(args)


if __name__ == "__main__":
    raise SystemExit(main())
