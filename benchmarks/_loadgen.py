"""The load generator: aiohttp on uvloop in a process of its own, so its CPU is neither the
router's nor the script's, and it can be pinned to a core. The parent (`LoadGen`) sends one JSON
line per run on stdin and reads one JSON line back on stdout.

A run is a closed loop: `concurrency` workers each send one request after the other, for a
warm-up (not recorded) and then `seconds` (no request starts after that). Requests cycle through
`requests` (a list of {path, body, end_marker}: a good answer ends with it). Per request it records latency and, for streams, the
time to the first content byte: the first chunk holding `first_marker` (the fake's answer text
starts with it), so a role-only opening event, which the router holds back, does not count.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Processes, cpu_seconds, read_json_line

_SESSION_TIMEOUT = aiohttp.ClientTimeout(total=60)  # a request never blocks a run for longer


class _Generator:
    """Lives in the child process: one keep-alive session per base URL, reused by every run."""

    def __init__(self) -> None:
        self.sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, base: str) -> aiohttp.ClientSession:
        if base not in self.sessions:
            # no pool limit: the closed loop bounds the connections; keep them open between runs
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=120)
            self.sessions[base] = aiohttp.ClientSession(base, connector=connector, timeout=_SESSION_TIMEOUT)
        return self.sessions[base]

    async def run(self, cmd: dict[str, Any]) -> dict[str, Any]:
        session = self.session(cmd["url"])
        headers = {"content-type": "application/json", **cmd.get("headers", {})}
        reqs = [
            (
                r["path"],
                json.dumps(r["body"]).encode(),
                bool(r["body"].get("stream")),
                r.get("end_marker", cmd.get("end_marker", "")).encode(),
            )
            for r in cmd["requests"]
        ]
        marker = cmd.get("first_marker", "").encode()
        full = cmd.get("record") == "full"
        counter = [0]
        rows: list[tuple[float, float, float, int, str, int, bool, bool, int]] = []
        errors: Counter[str] = Counter()
        first_failure: list[str] = []  # up to 10, the first of them reported alone as before

        async def one(index: int, path: str, payload: bytes, stream: bool, end_marker: bytes) -> None:
            t0 = time.monotonic()
            ttfb = -1.0
            status, provider, attempts, ok = 0, "", 0, False
            try:
                async with session.post(path, data=payload, headers=headers) as resp:
                    status = resp.status
                    if full:
                        provider = resp.headers.get("x-router-provider", "")
                        attempts = int(resp.headers.get("x-router-attempts", "0") or 0)
                    if stream:
                        tail = b""
                        async for chunk in resp.content.iter_any():
                            if ttfb < 0 and (not marker or marker in chunk):
                                ttfb = time.monotonic() - t0
                            tail = (tail + chunk)[-256:]
                    else:
                        tail = (await resp.read())[-256:]
                ok = status == 200 and (not end_marker or end_marker in tail)
                if not ok and len(first_failure) < 10:
                    first_failure.append(f"HTTP {status}: {tail[-200:].decode(errors='replace')}")
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                errors[type(exc).__name__] += 1
                if len(first_failure) < 10:
                    first_failure.append(repr(exc))
            lat = time.monotonic() - t0
            rows.append((t0, lat, ttfb if ttfb >= 0 else lat, status, provider, attempts, ok, stream, index))

        async def loop(until: float) -> None:
            while time.monotonic() < until:
                i = counter[0]
                counter[0] += 1
                await one(i % len(reqs), *reqs[i % len(reqs)])

        conc = int(cmd["concurrency"])
        if cmd.get("warmup_s", 0) > 0:  # opens the connections; not recorded
            await asyncio.gather(*(loop(time.monotonic() + cmd["warmup_s"]) for _ in range(conc)))
            rows.clear()
            errors.clear()
            first_failure.clear()
        if cmd.get("start_at"):  # a shared timeline: CLOCK_MONOTONIC is the same in every process
            await asyncio.sleep(max(0.0, cmd["start_at"] - time.monotonic()))
        pids = cmd.get("cpu_pids", [])
        cpu0 = [cpu_seconds(p) for p in pids]
        own0, t_start = time.process_time(), time.monotonic()
        await asyncio.gather(*(loop(t_start + float(cmd["seconds"])) for _ in range(conc)))
        elapsed = time.monotonic() - t_start
        cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=False)]
        good = [r for r in rows if r[6]]
        out: dict[str, Any] = {
            "elapsed_s": elapsed,
            "sent": len(rows),
            "ok": len(good),
            "failed": len(rows) - len(good),
            "rps": len(good) / elapsed if elapsed else 0.0,
            "lat_ms": sorted(round(r[1] * 1000, 4) for r in good),
            "ttfb_ms": sorted(round(r[2] * 1000, 4) for r in good if r[7]),
            "cpu_s": cpu,
            "loadgen_cpu_s": time.process_time() - own0,
            "errors": dict(errors),
            "first_failure": first_failure[0] if first_failure else None,
            "failures": first_failure,
        }
        if full:  # every request: start, latency, ttfb, status, provider, attempts, stream, ok, index in `requests`
            out["records"] = [
                [round(r[0], 4), round(r[1], 4), round(r[2], 4), r[3], r[4], r[5], int(r[7]), int(r[6]), r[8]]
                for r in rows
            ]
        return out

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        try:
            while line := await reader.readline():
                cmd = json.loads(line)
                if cmd.get("op") == "quit":
                    break
                result = await self.run(cmd)
                sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
                sys.stdout.flush()
        finally:
            for s in self.sessions.values():
                await s.close()


class LoadGen:
    """The parent's handle on the generator process: `run()` blocks until the run's result;
    `start()` + `result()` let the parent do other work (inject faults, sample counters) meanwhile."""

    def __init__(self, procs: Processes, cpus: set[int] | None = None) -> None:
        self.proc = procs.start("loadgen", [str(Path(__file__).resolve())], cpus=cpus, pipes=True)
        self.pid = self.proc.pid

    def start(self, url: str, requests: list[dict[str, Any]], concurrency: int, seconds: float, **opts: Any) -> None:
        """Begin a run. opts: headers, warmup_s, first_marker, end_marker, record ("full"), cpu_pids, start_at."""
        cmd = {"op": "run", "url": url, "requests": requests, "concurrency": concurrency, "seconds": seconds, **opts}
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd).encode() + b"\n")
        self.proc.stdin.flush()

    def result(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        out: dict[str, Any] = read_json_line(self.proc.stdout)
        return out

    def run(
        self, url: str, requests: list[dict[str, Any]], concurrency: int, seconds: float, **opts: Any
    ) -> dict[str, Any]:
        self.start(url, requests, concurrency, seconds, **opts)
        return self.result()


def main() -> None:
    try:
        import uvloop  # less client CPU per request than asyncio's default loop

        runner: Any = uvloop.run
    except ImportError:
        print("uvloop not installed: the load generator uses asyncio's loop", file=sys.stderr)
        runner = asyncio.run
    try:
        runner(_Generator().serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
