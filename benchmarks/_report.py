"""Reporting helpers shared by the benchmark scripts: percentiles, markdown tables, targets
(PASS/MISS), the run's metadata (machine, versions, commit, date), JSON output and the chart
setup (matplotlib, an optional extra: `pip install -e '.[bench]'`)."""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import REPO

RESULTS_DIR = REPO / "benchmarks" / "results"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in 0..100); nan when empty."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def median(values: Sequence[float]) -> float:
    vals = sorted(v for v in values if not math.isnan(v))
    if not vals:
        return float("nan")
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=False)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=False)) + " |" for row in cells[1:]]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Target:
    """One performance target and what this run measured for it."""

    name: str
    goal: str  # as the target states it, e.g. ">= 3,500 req/s"
    measured: float
    ok: bool | None  # None: not measured in this run
    unit: str = ""
    note: str = ""

    def row(self) -> list[str]:
        value = "n/a" if math.isnan(self.measured) else f"{self.measured:,.2f}{self.unit}"
        verdict = "n/a" if self.ok is None else ("PASS" if self.ok else "MISS")
        return [self.name, self.goal, value, verdict, self.note]


def target(name: str, goal: str, measured: float, passes: bool, unit: str = "", note: str = "") -> Target:
    return Target(name, goal, measured, None if math.isnan(measured) else passes, unit, note)


def targets_table(targets: Sequence[Target]) -> str:
    return markdown_table(["target", "goal", "measured", "verdict", "note"], [t.row() for t in targets])


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def run_meta() -> dict[str, Any]:
    """Where and on what the numbers were measured: they mean little without it."""
    cpu = "?"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    dirty = _run(["git", "status", "--porcelain", "--", "router"])
    return {
        "date": _run(["date"]),
        "date_iso": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": _run(["git", "rev-parse", "--short", "HEAD"]) + (" (router/ modified)" if dirty else ""),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {
            d: _version(d) for d in ("uvicorn", "uvloop", "httptools", "starlette", "aiohttp", "orjson", "redis")
        },
        "redis_server": _run(["redis-server", "--version"]).split(" sha=")[0],
    }


class MachineLoad:
    """How much CPU other processes took during the run (another session's tests, say): the
    machine's busy time from /proc/stat minus this script's and its waited-for descendants'."""

    def __init__(self) -> None:
        self.t0, self.busy0, self.own0 = time.monotonic(), _machine_busy_s(), _own_cpu_s()

    def finish(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        other = max(0.0, (_machine_busy_s() - self.busy0) - (_own_cpu_s() - self.own0))
        return {
            "wall_s": round(wall, 1),
            "other_cpu_s": round(other, 1),
            "other_share": other / (wall * (os.cpu_count() or 1)),
        }


def _machine_busy_s() -> float:
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    except (OSError, ValueError):
        return 0.0
    return (user + nice + system + irq + softirq + steal) / (os.sysconf("SC_CLK_TCK") or 100)


def _own_cpu_s() -> float:
    t = os.times()  # children_*: every descendant that was waited for, the router's workers included
    return t.user + t.system + t.children_user + t.children_system


def load_note(load: dict[str, float]) -> str:
    share = load["other_share"]
    warn = "  WARNING: the numbers are disturbed" if share > 0.05 else ""
    return f"other processes used {load['other_cpu_s']:.1f} CPU-s ({share:.0%} of the machine) during this run{warn}"


def meta_line(meta: dict[str, Any]) -> str:
    v = meta["versions"]
    return (
        f"{meta['date']} | commit {meta['commit']} | {meta['nproc']} CPUs ({meta['cpu']}) | Linux {meta['kernel']} | "
        f"Python {meta['python']} | uvicorn {v['uvicorn']}, uvloop {v['uvloop']}, httptools {v['httptools']}, "
        f"starlette {v['starlette']}, aiohttp {v['aiohttp']}"
    )


def add_output_args(p: argparse.ArgumentParser, script: str) -> None:
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument(
        "--chart",
        metavar="PATH",
        default=str(RESULTS_DIR / f"{script}.png"),
        help=f"where to write the PNG chart (default benchmarks/results/{script}.png)",
    )
    p.add_argument("--keep-logs", action="store_true", help="keep the router's and the fakes' logs, configs and ledger")


def write_json(path: str | None, results: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {path}")


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend, or None (with a hint) when not installed:
    the tables still print, only the chart is skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed, no chart: `.ci/run bench ...` or `pip install -e '.[bench]'`")
        return None
    return plt


def save_chart(fig: Any, path: str) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(f"wrote chart {out}")
