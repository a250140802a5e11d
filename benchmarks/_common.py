"""Shared helpers for the benchmark scripts: child processes that are always cleaned up (pinned to
CPUs when asked), free loopback ports, the fake provider, Redis and the router started on the full
request path (key, plan, budget, prices, ledger), and /proc readings (CPU time, memory, descriptors, TCP sockets).
Benchmarks only: nothing in `router/` imports this."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import aiohttp
import yaml

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
ALL_FORMATS = ["openai-chat", "anthropic-messages", "openai-responses"]
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# A client key for the benchmarks' own throwaway routers (public, like the demo key: bench only).
BENCH_KEY = "toc-bench-" + "0" * 38
BENCH_AUTH = {"authorization": f"Bearer {BENCH_KEY}"}
# Far out of reach on purpose: the benchmarks exercise the budget, rpm and concurrency checks on
# every request, but must never be refused by them.
BENCH_PLAN = {"budget": {"usd": 1_000_000_000, "window": "1d"}, "rpm": 100_000_000, "max_concurrent": 100_000}
BENCH_PRICE = {"input_per_mtok": 1.25, "output_per_mtok": 10.0, "cached_input_per_mtok": 0.125}


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


def cpu_plan(pin: bool) -> tuple[set[int] | None, set[int] | None, str]:
    """(router CPUs, fake + load generator CPUs, a sentence saying so). Pinning keeps the router
    on a core of its own, as in the reference measurements behind the first performance targets, so
    its numbers do not depend on how the scheduler happened to share the two cores with the load."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not pin or len(cpus) < 2:
        return None, None, "no CPU pinning (all processes share all CPUs)"
    return {cpus[0]}, {cpus[1]}, f"router on CPU {cpus[0]}; fake provider(s) and load generator on CPU {cpus[1]}"


@contextmanager
def workdir(prefix: str, keep: bool) -> Iterator[Path]:
    """A temporary directory for configs, logs and the ledger; kept (and named) with keep=True."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            print(f"logs, configs and ledger kept in {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


class Processes:
    """Child processes started by this script, each in its own session (so a Ctrl-C in the
    terminal reaches only us, and we stop them in order). `stop_all()` is bounded and idempotent;
    use as a context manager."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        python: bool = True,
        cpus: set[int] | None = None,
        pipes: bool = False,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `argv` (a `python` module/script unless python=False), stdout and stderr to
        `<log_dir>/<name>.log`, or stdin/stdout as pipes (stderr still to the log) with pipes=True.
        `cpus` pins it before exec, so every thread and child it makes inherits the pinning.
        `env`: variables added to this process's environment."""
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "wb")  # never an unread pipe: it would block the child
        affinity = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        try:
            proc = subprocess.Popen(
                [sys.executable, *argv] if python else list(argv),
                cwd=REPO,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log,
                stderr=log if pipes else subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=affinity,
                env={**os.environ, **env} if env else None,
            )
        finally:
            log.close()
        self.procs.append((name, proc, log_path))
        return proc

    def log_path(self, proc: subprocess.Popen[bytes]) -> Path | None:
        return next((path for _, p, path in self.procs if p is proc), None)

    def log_tail(self, proc: subprocess.Popen[bytes], lines: int = 30) -> str:
        path = self.log_path(proc)
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path else ""
        except OSError:
            return ""

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        """SIGTERM, wait (bounded), then SIGKILL. The router lets in-flight requests finish."""
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
        deadline = time.monotonic() + 10.0
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


def http_post_json(url: str, data: Any, timeout: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        url,
        data=json.dumps(data).encode(),
        headers={"content-type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read()


async def wait_ready_aio(s: aiohttp.ClientSession, url: str, timeout_s: float = 30.0) -> None:
    """Until `url`'s /health/ready answers 200 (its first probe round done), on the caller's session."""
    for _ in range(int(timeout_s * 10)):
        try:
            async with s.get(f"{url}/health/ready") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not get ready within {timeout_s:.0f} s")


def wait_http_ok(url: str, procs: Processes, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
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


def start_fake(
    procs: Processes, name: str, *extra: str, port: int = 0, cpus: set[int] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m router fake-upstream` on `port` (0: a free one); (process, base url) once it answers."""
    port = port or free_port()
    argv = ["-m", "router", "fake-upstream", "--port", str(port), "--name", name, *extra]
    proc = procs.start(f"fake-{name}", argv, cpus=cpus)
    url = f"http://{HOST}:{port}"
    wait_http_ok(url + "/v1/models", procs, proc, f"fake provider {name}")
    return proc, url


def start_redis(
    procs: Processes, *, port: int = 0, data_dir: Path | None = None, name: str = "redis", cpus: set[int] | None = None
) -> tuple[str, int]:
    """A throwaway redis-server child on `port` (0: a free one): (URL, pid) once it answers.
    No persistence, unless `data_dir`: then it writes `data_dir/redis.rdb` when stopped (SIGTERM
    saves when a save point is set; this one never fires within a benchmark) and loads it when
    started again there, so a restart keeps the data."""
    port = port or free_port()
    argv = ["redis-server", "--port", str(port), "--bind", HOST, "--appendonly", "no"]
    if data_dir is None:
        argv += ["--save", ""]
    else:
        argv += ["--save", "3600 1", "--dir", str(data_dir), "--dbfilename", "redis.rdb"]
    proc = procs.start(name, argv, python=False, cpus=cpus)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{procs.log_tail(proc)}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return f"redis://{HOST}:{port}/0", proc.pid
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not answer PING within 10 s")


def redis_stats(url: str) -> dict[str, int]:
    """Redis's own counters (INFO stats and commandstats, the latter as `cmdstat_<name>`: its
    calls): `total_reads_processed` counts the reads its event loop did on client sockets, so a
    batch of commands that arrived together is one read: one round trip from the client's side."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2.0) as s:
        s.sendall(b"INFO everything\r\n")
        data = b""
        while chunk := s.recv(65536):  # one bulk string: $<length>\r\n<text>\r\n
            data += chunk
            head, _, rest = data.partition(b"\r\n")
            if head.startswith(b"$") and len(rest) >= int(head[1:]):
                break
    stats: dict[str, int] = {}
    for line in data.decode(errors="replace").splitlines():
        name, sep, value = line.partition(":")
        if sep and value.startswith("calls="):
            stats[name] = int(value[6:].split(",", 1)[0])
        elif sep and value.strip().isdigit():
            stats[name] = int(value)
    return stats


def redis_commands_sent(url: str, send: Callable[[], None], settle_s: float = 0.3) -> Counter[str]:
    """The commands Redis received from its clients while `send()` ran and for `settle_s` after
    (work done after the answer counts too), by name, from MONITOR: the commands a Lua script
    runs inside the server are listed as coming from "lua" and are left out."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    seen: Counter[str] = Counter()
    with socket.create_connection((host, int(port)), timeout=2.0) as s:
        s.sendall(b"MONITOR\r\n")
        data = b""
        while b"+OK\r\n" not in data:
            data += s.recv(4096)
        data = data.split(b"+OK\r\n", 1)[1]
        send()
        deadline = time.monotonic() + settle_s
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
    for line in data.decode(errors="replace").splitlines():
        # +1701610000.123456 [0 127.0.0.1:43210] "evalsha" "..."   (or [0 lua] from a script)
        if not line.startswith("+") or "] " not in line:
            continue
        source, rest = line.split("] ", 1)
        if not source.endswith(" lua") and rest.startswith('"'):
            seen[rest[1:].split('"', 1)[0].lower()] += 1
    return seen


def bench_key(key_id: str) -> str:
    """The client key of key id `key_id` in write_router_config's configs (BENCH_KEY for "bench")."""
    return BENCH_KEY if key_id == "bench" else f"toc-bench-{key_id}-" + "0" * 32


def write_router_config(
    path: Path,
    port: int,
    providers: dict[str, str],
    models: dict[str, list[str]],
    *,
    ledger_path: Path,
    state: dict[str, Any] | None = None,
    timeouts: dict[str, float] | None = None,
    breaker: dict[str, Any] | None = None,
    routing: dict[str, Any] | None = None,
    log_level: str = "info",
    max_connections: int = 256,
    keys: Sequence[str] = ("bench",),
    server: dict[str, Any] | None = None,
    formats: dict[str, list[str]] | None = None,
) -> None:
    """The full request path: keys (`keys`: their ids; `bench_key(id)` is each one's token) on a
    plan with a budget, an rpm and a concurrency limit (all out of reach), prices on every model,
    the ledger on, JSON logs at `log_level`. `server` adds server settings; `formats` gives a
    provider fewer formats than all three (the router then translates for it).
    `models` maps a public name to its providers (all priority 0); the upstream model id is the
    public name, so a body sent through the router and one sent directly are the same bytes.
    Health probes run once at start (readiness), then hourly: the faults used here never touch
    /v1/models, so probes would only add noise."""
    doc = {
        "server": {"host": HOST, "port": port, **(server or {})},
        "routing": routing or {},
        "log": {"level": log_level, "format": "json"},
        "providers": [
            {
                "name": name,
                "base_url": url,
                "formats": (formats or {}).get(name, ALL_FORMATS),
                "api_key": f"bench-upstream-key-{name}",
                "timeouts": {"connect_s": 2, "first_token_s": 30, "idle_s": 30, "total_s": 120, **(timeouts or {})},
                "health": {"interval_s": 3600, "timeout_s": 2},
                "breaker": {"fail_max": 5, "reset_timeout_s": 30, **(breaker or {})},
                "pool": {"max_connections": max_connections, "keepalive_s": 60},
            }
            for name, url in providers.items()
        ],
        "models": [
            {"name": m, "price": BENCH_PRICE, "routes": [{"provider": p, "model": m, "priority": 0} for p in ps]}
            for m, ps in models.items()
        ],
        "plans": [{"name": "bench", "models": ["*"], **BENCH_PLAN}],
        "keys": [
            {"id": k, "hash": "sha256:" + hashlib.sha256(bench_key(k).encode()).hexdigest(), "plan": "bench"}
            for k in keys
        ],
        "state": state or {"backend": "memory"},
        "ledger": {"path": str(ledger_path), "enabled": True},
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def start_router(
    procs: Processes,
    config_path: Path,
    port: int,
    *,
    name: str = "router",
    workers: int = 1,
    cpus: set[int] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m router serve` (uvloop + httptools); returns once /health/ready is 200. With
    several workers, also waits until every worker process is up (readiness is per worker)."""
    argv = ["-m", "router", "serve", "--config", str(config_path), "--port", str(port), "--workers", str(workers)]
    proc = procs.start(name, argv, cpus=cpus)
    url = f"http://{HOST}:{port}"
    wait_http_ok(url + "/health/ready", procs, proc, "router")
    if workers > 1:
        deadline = time.monotonic() + 30
        while len(process_tree(proc.pid)) < workers + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(workers * 8):  # readiness of every worker: the kernel spreads connections
            wait_http_ok(url + "/health/ready", procs, proc, "router")
    return proc, url


def router_errors(log: Path) -> list[str]:
    """Error lines and tracebacks a router wrote to its log."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if '"level":"error"' in ln or "Traceback" in ln]


# --- /proc readings -------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()  # the name may hold spaces: split after it


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc); 0.0 where unavailable."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK if fields else 0.0  # utime, stime


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (uvicorn's worker processes), by scanning /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) is not None:
            parents[int(entry)] = int(fields[1])  # ppid
    tree, frontier = [pid], [pid]
    while frontier:
        kids = [c for c, p in parents.items() if p in frontier]
        tree += kids
        frontier = kids
    return tree


def pin(pid: int, cpus: set[int] | None = None) -> None:
    """Pin every thread of `pid` to `cpus` (None: all of ours); affinity is per thread."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus or os.sched_getaffinity(0))
        except ProcessLookupError:  # a thread that ended meanwhile
            pass


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _status_mib(pid: int, field: str) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def vm_hwm_mib(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process in MiB; nan where unavailable."""
    return _status_mib(pid, "VmHWM:")


def vm_rss_mib(pid: int) -> float:
    """Resident memory now (VmRSS) of a process in MiB; nan where unavailable."""
    return _status_mib(pid, "VmRSS:")


def open_fds(pid: int) -> list[str]:
    """What each open descriptor of a process points at (`socket:[inode]`, a path, `pipe:[...]`,
    `anon_inode:[eventpoll]`...); empty where unavailable."""
    out = []
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    for fd in names:
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:  # closed meanwhile
            pass
    return out


_TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}


def tcp_sockets() -> dict[int, tuple[int, int, str]]:
    """Every TCP socket of this network namespace by inode: (local port, remote port, state)."""
    table: dict[int, tuple[int, int, str]] = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, state, inode = parts[1], parts[2], parts[3], int(parts[9])
            port = int(local.rsplit(":", 1)[1], 16)
            table[inode] = (port, int(remote.rsplit(":", 1)[1], 16), _TCP_STATES.get(state, state))
    return table


def read_json_line(stream: IO[bytes]) -> Any:
    line = stream.readline()
    if not line:
        raise RuntimeError("the load generator exited (see its log)")
    return json.loads(line)
