"""overhead.py's phases and how it runs them: each phase against `direct` (the fake provider) and
every system under test, round after round, the order rotating, with the load generator that
suits the phase (wrk for non-stream requests where installed, aiohttp for streams)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from _common import BENCH_AUTH, pin
from _loadgen import LoadGen
from _report import median, percentile
from _wrk import Wrk

MODEL = "bench"
PATH = "/v1/chat/completions"
# >= 20 characters, so none of the 20 stream pieces is empty; starts with "H", the first-byte marker
TEXT = "Hello from the benchmark fake provider, in twenty small pieces."
FIRST_MARKER = '"H'  # a JSON string starting with the answer text: the first content delta
_MSG = [{"role": "user", "content": "Say hello."}]


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    concurrency: int
    stream: bool
    seconds: float  # per run, before --scale
    title: str
    model: str = MODEL
    fake: str = "paced"  # "paced": 20 chunks 5 ms apart; "long": 100 chunks 5 ms apart; "burst": 100, no delay
    chunks: int = 0  # content chunks per stream, where the phase measures CPU per chunk
    direct_as: str = ""  # its direct runs are this phase's (same fake, same request)


PHASES = {
    p.name: p
    for p in (
        Phase("c1", 1, False, 1.0, "1 at a time"),
        Phase("c8", 8, False, 1.0, "8 concurrent"),
        Phase("c64", 64, False, 1.5, "64 concurrent"),
        Phase("s32", 32, True, 1.5, "32 streams, 20 chunks 5 ms apart"),
        # chunks arriving one at a time, as from a model: CPU per relayed chunk
        Phase("n100", 32, True, 1.5, "32 streams, 100 chunks 5 ms apart, native route", "bench-native", "long", 100),
        Phase("t100", 32, True, 1.5, "the same, translated route", "bench-translated", "long", 100, "n100"),
        # no delay: as many streams as the router carries (its reads then hold several chunks each)
        Phase("nb100", 16, True, 1.0, "16 streams, 100 chunks, no delay, native", "bench-native-burst", "burst", 100),
        Phase("tb100", 16, True, 1.0, "the same, translated", "bench-translated-burst", "burst", 100, "nb100"),
    )
}


def body(ph: Phase) -> dict[str, Any]:
    b: dict[str, Any] = {"model": ph.model, "messages": _MSG, "max_tokens": 256 if ph.chunks else 16}
    if ph.stream:  # include_usage in both directions, so direct and routed streams carry the same events
        b |= {"stream": True, "stream_options": {"include_usage": True}}
    return b


BODIES = {False: body(PHASES["c1"]), True: body(PHASES["s32"])}


@dataclass(frozen=True)
class Sut:
    """A system under test: where it listens, its processes (CPU is summed over them), the phases
    it runs (None: all), where the clients go while it runs (None: where they are)."""

    url: str
    pids: list[int]
    phases: frozenset[str] | None = None
    client_cpus: set[int] | None = None
    headers: dict[str, str] | None = None  # None: the bench key


class Clients:
    """The load generators and the processes sharing their core (fakes, redis-server)."""

    def __init__(self, aio: LoadGen, wrk: Wrk | None, cpus: set[int] | None) -> None:
        self.aio, self.wrk = aio, wrk
        self.pids = [aio.pid]  # every process that moves with the clients
        self.cpus = cpus
        self.all_cpus = os.sched_getaffinity(0)

    def pin(self, cpus: set[int] | None) -> None:
        if cpus is None or cpus == self.cpus:
            return
        for pid in self.pids:
            pin(pid, cpus)
        if self.wrk is not None:
            self.wrk.cpus = cpus
        self.cpus = cpus

    def run(
        self, ph: Phase, url: str, headers: dict[str, str], cpu_pids: list[int], seconds: float, warmup: float
    ) -> dict[str, Any]:
        if self.wrk is not None and not ph.stream:
            return self.wrk.run(url, PATH, body(ph), ph.concurrency, seconds, headers=headers, cpu_pids=cpu_pids)
        return self.aio.run(
            url,
            [{"path": PATH, "body": body(ph)}],
            ph.concurrency,
            seconds,
            warmup_s=warmup,
            headers=headers,
            cpu_pids=cpu_pids,
            first_marker=FIRST_MARKER if ph.stream else "",
            end_marker="[DONE]" if ph.stream else "",
        )


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
    all_cpu_s: float = 0.0  # every watched process and the load generator: how many cores were busy
    elapsed_s: float = 0.0
    first_failure: str | None = None
    cpu_by_pid: list[float] = field(default_factory=list)  # target pids, the fake, then any extra (redis)

    def add(self, r: dict[str, Any], n_target_pids: int) -> None:
        self.cpu_by_pid = (
            [a + b for a, b in zip(self.cpu_by_pid, r["cpu_s"], strict=False)] if self.cpu_by_pid else list(r["cpu_s"])
        )
        self.rps.append(r["rps"])
        self.lat += r["lat_ms"]
        self.ttfb += r["ttfb_ms"]
        self.ok += r["ok"]
        self.failed += r["failed"]
        self.target_cpu_s += sum(r["cpu_s"][:n_target_pids])
        self.client_core_cpu_s += r["cpu_s"][n_target_pids] + r["loadgen_cpu_s"]
        self.all_cpu_s += sum(r["cpu_s"]) + r["loadgen_cpu_s"]
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
            "cores_busy": self.all_cpu_s / self.elapsed_s if self.elapsed_s else float("nan"),
            "first_failure": self.first_failure,
            "cpu_us_per_req_by_pid": [round(c / max(1, self.ok) * 1e6) for c in self.cpu_by_pid],
        }


def run_suite(
    clients: Clients,
    suts: dict[str, Sut],
    phases: list[Phase],
    fakes: dict[str, tuple[str, int]],
    args: argparse.Namespace,
    label: str,
    extra_pids: tuple[int, ...] = (),
    direct_client_cpus: set[int] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every phase against `direct` and every system under test, `args.rounds` times, the order
    rotating each round."""
    runs: dict[tuple[str, str], Runs] = {}
    for rnd in range(args.rounds):
        for i, ph in enumerate(phases):
            names = [] if ph.direct_as else ["direct"]
            names += [t for t, s in suts.items() if s.phases is None or ph.name in s.phases]
            shift = (rnd + i) % len(names)
            for t in names[shift:] + names[:shift]:
                fake_url, fake_pid = fakes[ph.fake]
                sut = suts.get(t)
                url, pids = (fake_url, []) if sut is None else (sut.url, sut.pids)
                clients.pin(direct_client_cpus if sut is None else sut.client_cpus)
                headers = BENCH_AUTH if sut is None or sut.headers is None else sut.headers
                r = clients.run(ph, url, headers, [*pids, fake_pid, *extra_pids], ph.seconds * args.scale, args.warmup)
                runs.setdefault((ph.name, t), Runs()).add(r, len(pids))
                print(
                    f"  {label} round {rnd + 1}/{args.rounds} {ph.name:<4} {t:<10} {r['rps']:7.0f} req/s"
                    f"  p50 {percentile(r['lat_ms'], 50):7.2f} ms  failed {r['failed']}",
                    file=sys.stderr,
                )
    out: dict[str, dict[str, Any]] = {}
    for ph in phases:
        d = out[ph.direct_as]["direct"] if ph.direct_as else runs[(ph.name, "direct")].summary()
        out[ph.name] = {"direct": d}
        for t, sut in suts.items():
            if (ph.name, t) not in runs:
                continue
            s = runs[(ph.name, t)].summary()
            s["added_p50_ms"], s["added_p90_ms"], s["added_p99_ms"] = (
                s[k] - d[k] for k in ("p50_ms", "p90_ms", "p99_ms")
            )
            s["added_ttfb_p50_ms"] = s["ttfb_p50_ms"] - d["ttfb_p50_ms"]
            s["total_ratio"] = s["p50_ms"] / d["p50_ms"] if d["p50_ms"] else float("nan")
            s["rps_ratio"] = s["rps"] / d["rps"] if d["rps"] else float("nan")
            s["cpu_labels"] = [*(f"pid {p}" for p in sut.pids), "fake", *("redis-server" for _ in extra_pids)]
            if not ph.stream and s["cpu_s_per_1000"] > 0:
                s["capacity_rps"] = 1000 / s["cpu_s_per_1000"]  # what its CPU per request allows on one core
            out[ph.name][t] = s
    for ph in phases:  # CPU per relayed chunk: the stream's CPU beyond a non-stream request's, per chunk
        base = out.get("c64", {})
        for t, s in out[ph.name].items():
            if ph.chunks and t != "direct" and t in base:
                s["cpu_us_per_chunk"] = (s["cpu_s_per_1000"] - base[t]["cpu_s_per_1000"]) / ph.chunks * 1000
                s["chunks_per_s"] = s["rps"] * ph.chunks
    return out
