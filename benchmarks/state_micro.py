"""CPU per admit + settle of the state backends, without HTTP: `--concurrency` tasks on uvloop,
each admitting and settling (awaited) one request after another against a redis-server child (and
the memory backend), one plan with every limit on and out of reach. Compare checkouts with
`--repo` (the script runs itself again with that checkout on PYTHONPATH).

    .venv/bin/python benchmarks/state_micro.py
    .venv/bin/python benchmarks/state_micro.py --repo /tmp/before --repo .
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Processes, start_redis
from _report import MachineLoad, load_note


async def pairs(url: str | None, n: int, concurrency: int) -> tuple[float, float]:
    """(admit + settle pairs per second, CPU µs per pair) on the backend `url` names (None: memory)."""
    from router.billing.state import LimitSpec, MemoryBackend, Settlement, StateBackend
    from router.billing.state.redis import RedisBackend

    spec = LimitSpec(budget_usd=1e9, window_s=86400.0, rpm=100_000_000, max_concurrent=100_000, lease_s=90.0)
    backend: StateBackend = MemoryBackend() if url is None else RedisBackend(url, f"micro-{os.urandom(4).hex()}", 5.0)
    count = 0

    async def worker(total: int) -> None:
        nonlocal count
        while count < total:
            count += 1
            aid = f"r{count}/{os.urandom(8).hex()}"
            now = time.time()
            a = await backend.admit("bench", spec, 0.001, aid, now)
            await backend.settle(Settlement("bench", spec, a.window_start, 0.001, 0.0005, aid, now))

    try:
        await asyncio.gather(*(worker(min(n, 2000)) for _ in range(concurrency)))  # warm-up
        count = 0
        t0, c0 = time.monotonic(), time.process_time()
        await asyncio.gather(*(worker(n) for _ in range(concurrency)))
        return n / (time.monotonic() - t0), (time.process_time() - c0) / n * 1e6
    finally:
        await backend.aclose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", action="append", help="a checkout to measure (repeat to compare; default this one)")
    p.add_argument("--pairs", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--url", help=argparse.SUPPRESS)  # the child run's redis-server
    args = p.parse_args()
    if args.url is not None:  # a child: one measurement per backend, on the checkout of PYTHONPATH
        import uvloop

        for name, url in (("memory", None), ("redis", args.url)):
            rate, cpu = uvloop.run(pairs(url, args.pairs, args.concurrency))
            print(f"  {name}: {rate:8.0f} pairs/s, {cpu:6.1f} µs CPU per admit + settle", flush=True)
        return 0
    repos = [Path(r).resolve() for r in (args.repo or [Path(__file__).resolve().parent.parent])]
    machine = MachineLoad()
    with tempfile.TemporaryDirectory(prefix="state-micro-") as tmp, Processes(Path(tmp)) as procs:
        url, _ = start_redis(procs)
        for rnd in range(args.rounds):
            for repo in repos:
                print(f"round {rnd + 1} {repo}:", flush=True)
                argv = [sys.executable, __file__, "--url", url, "--pairs", str(args.pairs)]
                argv += ["--concurrency", str(args.concurrency)]
                subprocess.run(argv, env={**os.environ, "PYTHONPATH": str(repo)}, check=True)
    print(load_note(machine.finish()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
