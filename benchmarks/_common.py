"""Shared helpers for the benchmark scripts: subprocesses that are always cleaned up, free
loopback ports, router config files, a bounded closed-loop load generator, percentiles and
SSE tail inspection. Benchmarks only: nothing in `router/` imports this."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
ALL_FORMATS = ["openai-chat", "anthropic-messages", "openai-responses"]
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    """A loopback port that was free a moment ago (the kernel picks it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_sigterm_as_interrupt() -> None:
    """SIGINT and SIGTERM unwind the script as KeyboardInterrupt, so every `finally` stops the
    children. SIGINT explicitly too: a shell starts background jobs with SIGINT ignored."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)


async def interruptible(coro: Awaitable[Any]) -> Any:
    """Await `coro`; SIGINT/SIGTERM cancel it cleanly (inside the event loop a signal handler
    that raises would leave half-written requests behind) and surface as KeyboardInterrupt."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    hit: list[int] = []

    def on_signal(sig: int) -> None:
        hit.append(sig)
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await coro
    except asyncio.CancelledError:
        if hit:
            raise KeyboardInterrupt(f"signal {hit[0]}") from None
        raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        install_sigterm_as_interrupt()  # remove_signal_handler left SIG_DFL behind


class Processes:
    """Child processes started by this script, each in its own session (so a Ctrl-C in the
    terminal reaches only us, and we stop them in order). `stop_all()` is bounded and idempotent;
    use as a context manager."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "wb")  # never a pipe: an unread pipe would block the child
        try:
            proc = subprocess.Popen(
                [sys.executable, *argv],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.procs.append((name, proc, log_path))
        return proc

    def log_tail(self, proc: subprocess.Popen[bytes], lines: int = 30) -> str:
        for _, p, path in self.procs:
            if p is proc:
                try:
                    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                except OSError:
                    return ""
        return ""

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
            except ProcessLookupError:
                pass
        self.procs = [t for t in self.procs if t[1] is not proc]

    def stop_all(self) -> None:
        # signal everyone first, then wait: the shutdowns overlap
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5.0
        for _, proc, _ in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5.0)
        self.procs = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_post_json(url: str, data: Any, timeout: float = 5.0) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, data=json.dumps(data).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http_ok(
    url: str, procs: Processes, proc: subprocess.Popen[bytes], what: str, timeout: float = 20.0
) -> None:
    """Poll `url` until it answers 200; fail fast if `proc` died; bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{procs.log_tail(proc)}")
        try:
            status, body = http_get(url, timeout=1.0)
            if status == 200:
                return
            last = f"HTTP {status}: {body[:200]!r}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready at {url} after {timeout:.0f}s ({last}):\n{procs.log_tail(proc)}")


def start_fake(procs: Processes, name: str, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m router fake-upstream` on a free port; returns (process, base url) once it answers."""
    port = free_port()
    proc = procs.start(f"fake-{name}", ["-m", "router", "fake-upstream", "--port", str(port), "--name", name, *extra])
    url = f"http://{HOST}:{port}"
    wait_http_ok(url + "/v1/models", procs, proc, f"fake provider {name}")
    return proc, url


def write_router_config(
    path: Path,
    port: int,
    providers: dict[str, str],
    model: str,
    *,
    timeouts: dict[str, float] | None = None,
    breaker: dict[str, Any] | None = None,
    routing: dict[str, Any] | None = None,
    log_level: str = "info",
    max_connections: int = 256,
) -> None:
    """One model routed to every provider in `providers` (name -> base url), all priority 0.
    Health probes run once at start (readiness) and then only every hour."""
    doc = {
        "server": {"host": HOST, "port": port},
        "routing": routing or {},
        "log": {"level": log_level, "format": "json"},
        "providers": [
            {
                "name": name,
                "base_url": url,
                "formats": ALL_FORMATS,
                "api_key": f"bench-key-{name}",
                "timeouts": {"connect_s": 2, "first_token_s": 30, "idle_s": 30, "total_s": 120, **(timeouts or {})},
                "health": {"interval_s": 3600, "timeout_s": 2},
                "breaker": {"fail_max": 5, "reset_timeout_s": 30, **(breaker or {})},
                "pool": {"max_connections": max_connections, "keepalive_s": 60},
            }
            for name, url in providers.items()
        ],
        "models": [{"name": model, "routes": [{"provider": n, "model": f"{n}-model"} for n in providers]}],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def start_router(procs: Processes, config_path: Path, port: int, name: str = "router") -> tuple[subprocess.Popen[bytes], str]:
    """`python -m router serve` (uvloop + httptools); returns once /health/ready is 200."""
    proc = procs.start(name, ["-m", "router", "serve", "--config", str(config_path), "--port", str(port)])
    url = f"http://{HOST}:{port}"
    wait_http_ok(url + "/health/ready", procs, proc, "router")
    return proc, url


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc); 0.0 where unavailable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14 and 15)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in 0..100); nan when empty."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


# --- load generation ----------------------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    ok: bool
    latency_s: float
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class LoadResult:
    samples: list[Sample]
    elapsed_s: float
    exceptions: dict[str, int]

    @property
    def ok(self) -> int:
        return sum(1 for s in self.samples if s.ok)

    def latencies_ms(self, only_ok: bool = True) -> list[float]:
        return sorted(s.latency_s * 1000 for s in self.samples if s.ok or not only_ok)


async def run_load(
    one: Callable[[], Awaitable[Sample]],
    concurrency: int,
    *,
    seconds: float | None = None,
    requests: int | None = None,
) -> LoadResult:
    """A closed loop: `concurrency` workers each send one request after the other, until
    `seconds` have passed (no new request starts after that) or `requests` have been started.
    Exceptions are counted by type and recorded as failed samples."""
    if seconds is None and requests is None:
        raise ValueError("give seconds or requests")
    samples: list[Sample] = []
    exceptions: dict[str, int] = {}
    remaining = [requests if requests is not None else -1]
    start = time.perf_counter()
    end = start + seconds if seconds is not None else float("inf")

    async def worker() -> None:
        while time.perf_counter() < end:
            if remaining[0] == 0:
                return
            remaining[0] -= 1
            t0 = time.perf_counter()
            try:
                samples.append(await one())
            except Exception as exc:  # noqa: BLE001 - counted, the run goes on
                key = type(exc).__name__
                exceptions[key] = exceptions.get(key, 0) + 1
                samples.append(Sample(False, time.perf_counter() - t0, {"exception": key}))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult(samples, time.perf_counter() - start, exceptions)


def new_event_loop_policy() -> None:
    """uvloop for the load generator too (less client CPU on the shared cores), if installed."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# --- SSE inspection -----------------------------------------------------------------------------


def last_sse_event(body: bytes) -> tuple[str | None, bytes] | None:
    """(event name, joined data) of the last event in an SSE body, or None if it has none."""
    events = [e for e in body.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]
    for raw in reversed(events):
        name: str | None = None
        data: list[bytes] = []
        for line in raw.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode(errors="replace")
            elif line.startswith(b"data:"):
                data.append(line[5:].lstrip(b" "))
        if name is not None or data:
            return name, b"\n".join(data)
    return None


def stream_outcome(body: bytes) -> str:
    """How an SSE answer ended: "complete" (chat [DONE], message_stop, response.completed),
    "error" (its last event is an error event: chat `{"error":...}`, anthropic `error`,
    responses `error`/`response.failed`), or "truncated" (anything else)."""
    last = last_sse_event(body)
    if last is None:
        return "truncated"
    name, data = last
    if data == b"[DONE]":
        return "complete"
    try:
        obj = json.loads(data)
    except ValueError:
        return "truncated"
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind in ("message_stop", "response.completed") or name in ("message_stop", "response.completed"):
        return "complete"
    if kind in ("error", "response.failed") or (isinstance(obj, dict) and obj.get("error") and kind is None):
        return "error"
    return "truncated"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |" for row in cells[1:]]
    return "\n".join(lines)
