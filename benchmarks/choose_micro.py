"""Micro-benchmark of the pure route selection `router.routing.choose.choose` (P2C over
Peak-EWMA cost) with 2, 5 and 20 candidates, in nanoseconds per call (timeit, bounded).

Cases per candidate count:
  measured   - every candidate has an EWMA: the power-of-two-choices path (the steady state)
  unmeasured - every candidate is new and idle: rule 3, a random pick among them
  + build    - `measured` plus building the Candidate list, as Forwarder._choose does per attempt

    .venv/bin/python benchmarks/choose_micro.py
    .venv/bin/python benchmarks/choose_micro.py --sizes 2,5,20,100 --number 50000
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO
from _report import markdown_table

sys.path.insert(0, str(REPO))  # the router of this checkout, whatever the venv's editable install points at

from router.routing.choose import Candidate, choose


def candidates(n: int, measured: bool, seed: int = 1) -> list[Candidate[int]]:
    r = random.Random(seed)
    return [
        Candidate(
            item=i,
            ewma_s=r.uniform(0.2, 2.0) if measured else None,
            inflight=r.randrange(0, 8) if measured else 0,
            weight=r.choice((0.5, 1.0, 2.0)),
            native=r.random() < 0.8,
        )
        for i in range(n)
    ]


def ns_per_call(stmt, number: int, repeat: int) -> float:  # type: ignore[no-untyped-def]
    """Best of `repeat` runs of `number` calls: the least disturbed by the rest of the machine."""
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number * 1e9


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="2,5,20", help="candidate counts (default 2,5,20)")
    p.add_argument("--number", type=int, default=100_000, help="calls per timing run (default 100000)")
    p.add_argument("--repeat", type=int, default=5, help="timing runs, the best is kept (default 5)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    rng = random.Random(7)
    rows, out = [], []
    for n in sizes:
        measured = candidates(n, measured=True)
        fresh = candidates(n, measured=False)
        raw = [(c.item, c.ewma_s, c.inflight, c.weight) for c in measured]  # what RouteState holds

        def build_and_choose() -> Candidate[int]:
            cands = [Candidate(item=i, ewma_s=e, inflight=f, weight=w) for i, e, f, w in raw]
            return choose(cands, rng)

        # each timed case runs `number` calls, `repeat` times: bounded by construction
        t_measured = ns_per_call(lambda: choose(measured, rng), args.number, args.repeat)
        t_fresh = ns_per_call(lambda: choose(fresh, rng), args.number, args.repeat)
        t_build = ns_per_call(build_and_choose, max(1, args.number // max(1, n // 5)), args.repeat)
        rows.append([n, f"{t_measured:.0f}", f"{t_fresh:.0f}", f"{t_build:.0f}"])
        out.append(
            {"candidates": n, "measured_ns": t_measured, "unmeasured_ns": t_fresh, "build_and_choose_ns": t_build}
        )
        print(f"  {n} candidates done", file=sys.stderr)
    print(f"\nchoose(): ns per call, best of {args.repeat} x {args.number} calls, Python {platform.python_version()}\n")
    print(markdown_table(["candidates", "measured (P2C)", "unmeasured (random)", "measured + build list"], rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"python": platform.python_version(), "results": out}, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
