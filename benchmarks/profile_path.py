"""cProfile of the router's own code under a fixed non-stream load: where the CPU of the request
path goes, by function. Compare two checkouts in one run (`--repo` of each, alternately): the
absolute times shift with the machine, the difference between the two does not much.

    .venv/bin/python benchmarks/profile_path.py                       # this checkout, 20,000 requests
    .venv/bin/python benchmarks/profile_path.py --repo /tmp/other --out other.prof
    .venv/bin/python -m pstats this.prof                              # then: sort tottime, stats 30

The router runs `python -m cProfile -m router serve` with a real key, plan, prices and ledger
(the benchmarks' config), on a fake provider that answers at once; 32 concurrent clients send
chat requests through aiohttp; SIGINT drains the router, which writes the profile.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH_AUTH, free_port, write_router_config

BODY = {"model": "bench", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}


async def load(url: str, requests: int, concurrency: int) -> float:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):  # until ready, 30 s at most
            try:
                async with s.get(f"{url}/health/ready") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        sent = 0

        async def client() -> None:
            nonlocal sent
            while sent < requests:
                sent += 1
                async with s.post(f"{url}/v1/chat/completions", json=BODY, headers=BENCH_AUTH) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"HTTP {r.status}")

        start = time.monotonic()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return time.monotonic() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent), help="the checkout to profile")
    p.add_argument("--out", default="router.prof", help="where the profile goes (default router.prof)")
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--top", type=int, default=25, help="router functions to print, by own time")
    args = p.parse_args()
    repo, out = Path(args.repo).resolve(), Path(args.out).resolve()
    env = {**os.environ, "PYTHONPATH": str(repo)}
    with tempfile.TemporaryDirectory(prefix="router-profile-") as tmp:
        fport, rport = free_port(), free_port()
        fake = subprocess.Popen(
            [sys.executable, "-m", "router", "fake-upstream", "--port", str(fport), "--latency-ms", "0"],
            cwd=repo,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cfg = Path(tmp) / "router.yaml"
        write_router_config(
            cfg, rport, {"fake": f"http://127.0.0.1:{fport}"}, {"bench": ["fake"]}, ledger_path=Path(tmp) / "l.jsonl"
        )
        argv = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "router", "serve", "--config", str(cfg)]
        router = subprocess.Popen(
            [*argv, "--port", str(rport)], cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            took = asyncio.run(load(f"http://127.0.0.1:{rport}", args.requests, args.concurrency))
        finally:
            router.send_signal(signal.SIGINT)  # a graceful drain, then the profile is written
            router.wait(60)
            fake.kill()
            fake.wait()
    own: dict[str, float] = defaultdict(float)
    for (path, _, name), (_, _, tottime, _, _) in pstats.Stats(str(out)).stats.items():  # type: ignore[attr-defined]
        if "/router/" in path and name != "lifespan":  # the lifespan's time is the idle event loop
            own[path.split("/router/")[-1] + ":" + name] += tottime
    print(f"{args.requests} requests in {took:.1f} s; the router's own code: {sum(own.values()):.3f} s (cProfile)")
    for key, t in sorted(own.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {t:7.3f} s  {key}")
    print(f"profile: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
