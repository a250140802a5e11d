"""A lighter load generator for non-stream requests: `wrk` (C, epoll), where installed.

The aiohttp generator (_loadgen.py) costs ~85-130 us of CPU per request, so with the fake on the
same core it saturates that core at a few thousand req/s, below what the router can do on its
own core: the throughput rows then measure the client, not the router. wrk costs ~10 us per
request. It cannot read SSE (a stream is one long response to it), so streams stay on aiohttp.

`Wrk.run` returns the same keys as `LoadGen.run`, so the scripts treat both alike. Two
differences: wrk gives percentiles, not every latency, so `lat_ms` holds 1,000 evenly spaced
quantiles of the run (pooling runs of similar length then approximates the pooled percentiles);
and wrk opens its connections inside the measured window (it has no warm-up and takes whole
seconds only), which costs the server one accept per connection, ~1% of a 1 s run at 64.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from _common import cpu_seconds

_QUANTILES = 1000


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _lua_string(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid Lua string literal for ASCII text


def lua_script(body: bytes, headers: dict[str, str]) -> str:
    """POST `body` with `headers`; at the end print one JSON line: counts and latency quantiles."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body.decode())}"]
    for k, v in {"content-type": "application/json", **headers}.items():
        lines.append(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}")
    lines.append(
        f"""
done = function(summary, latency, requests)
  local q = {{}}
  for i = 0, {_QUANTILES - 1} do q[#q + 1] = latency:percentile((i + 0.5) * 100 / {_QUANTILES}) end
  local e = summary.errors
  io.write(string.format(
    '{{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"lat_us":[%s]}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, table.concat(q, ",")))
end
"""
    )
    return "\n".join(lines)


class Wrk:
    """Runs wrk once per measurement (one thread, `concurrency` connections), pinned to `cpus`."""

    def __init__(self, tmp: Path, cpus: set[int] | None = None) -> None:
        exe = wrk_path()
        if exe is None:
            raise RuntimeError("wrk is not installed")
        self.exe, self.tmp, self.cpus = exe, tmp, cpus
        self._scripts: dict[str, Path] = {}

    def _script(self, body: bytes, headers: dict[str, str]) -> Path:
        text = lua_script(body, headers)
        if text not in self._scripts:
            path = self.tmp / f"wrk-{len(self._scripts)}.lua"
            path.write_text(text)
            self._scripts[text] = path
        return self._scripts[text]

    def run(
        self,
        url: str,
        path: str,
        body: dict[str, Any],
        concurrency: int,
        seconds: float,
        *,
        headers: dict[str, str] | None = None,
        cpu_pids: list[int] | None = None,
    ) -> dict[str, Any]:
        script = self._script(json.dumps(body).encode(), headers or {})
        secs = max(1, round(seconds))  # wrk takes whole seconds
        argv = [self.exe, "-t1", f"-c{concurrency}", f"-d{secs}s", "--timeout", "10s", "-s", str(script), url + path]
        cpus = self.cpus
        pids = cpu_pids or []
        cpu0 = [cpu_seconds(p) for p in pids]
        t0 = time.monotonic()
        # wrk's own CPU: this process's reaped children's, across the run (no other child is reaped meanwhile)
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=secs + 30,
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"wrk did not finish within {secs + 30} s") from exc
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = (done.stdout + done.stderr).decode(errors="replace")
        cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=False)]
        line = next((ln for ln in reversed(out.splitlines()) if ln.startswith("{")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result: {out[-500:]}")
        r = json.loads(line)
        elapsed = r["duration_us"] / 1e6 or time.monotonic() - t0
        socket_errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
        ok = max(0, r["requests"] - r["status"])
        failure = None
        if r["status"] or socket_errors:
            failure = f"wrk: {r['status']} non-2xx answers, socket errors {socket_errors}"
        return {
            "elapsed_s": elapsed,
            "sent": r["requests"] + socket_errors,
            "ok": ok,
            "failed": r["status"] + socket_errors,
            "rps": ok / elapsed if elapsed else 0.0,
            "lat_ms": [q / 1000 for q in r["lat_us"]] if ok else [],
            "ttfb_ms": [],
            "cpu_s": cpu,
            "loadgen_cpu_s": kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime,
            "errors": {},
            "first_failure": failure,
            "failures": [failure] if failure else [],
        }
