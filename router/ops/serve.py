"""`router serve`: uvicorn, with the router's own handling of SIGTERM, SIGINT and SIGHUP.

uvicorn alone, on SIGTERM, closes its listening socket at once and cancels what is left after
`timeout_graceful_shutdown`, cutting streams mid-event. Each worker's app instead installs
`install_signal_handlers` when it starts (uvicorn has installed its own by then; ours wrap them):
- first SIGTERM/SIGINT: readiness 503 at once (drain.py); requests are still served for
  `drain_grace_s`; then uvicorn's own handler runs (stop accepting, wait for what is in flight);
- `drain_timeout_s` later, or on a second signal, streams still open end with a well-formed
  error event (drain.py), so uvicorn's wait ends with nothing cut;
- SIGHUP: reload the config in place (reload.py). With several workers the parent passes SIGHUP
  on to each worker instead of restarting them (uvicorn's default), so live routing state stays.
A drained `router serve` exits 0 (cli.py). What it logs when it starts: startup.py.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog
import uvicorn
from uvicorn.supervisors import Multiprocess

from router.config import Config
from router.ops.protocol import ServingConfig
from router.ops.reload import request_reload
from router.ops.startup import announce_start
from router.server.drain import Drain

_ABORT_FLUSH_S = 2.0  # after streams are aborted, time for their error tails to leave
# A stop signal sent to the whole process group (Ctrl-C, systemd's default KillMode) reaches each
# worker twice: from the sender and forwarded by the parent. Repeats this close to the first are
# that same stop; only a later one means "stop waiting".
REPEAT_WINDOW_S = 1.0


def escalates(first_at: float | None, now: float) -> bool:
    """Whether a stop signal at `now` (monotonic) ends the drain at once: a second one, at least
    REPEAT_WINDOW_S after the first."""
    return first_at is not None and now - first_at >= REPEAT_WINDOW_S


# Descriptors besides client connections: the listener, logs, the ledger, Redis, probes.
_FD_HEADROOM = 256

log = structlog.get_logger("router.ops.serve")

Handler = Callable[[int, FrameType | None], Any] | int | None


def install_signal_handlers(drain: Drain, grace_s: float, timeout_s: float) -> Callable[[], None]:
    """Wrap the server's SIGTERM/SIGINT handlers with the drain, and take SIGHUP for reloads.
    Returns a function that puts the previous handlers back. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, Handler] = {}
    first: list[float] = []  # when the first stop signal came

    def server_exit(sig: int, frame: FrameType | None) -> None:
        handler = previous.get(sig)
        if callable(handler):
            handler(sig, frame)
        else:
            signal.raise_signal(sig)  # no server handler: the default action

    def on_term(sig: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if first:
            if escalates(first[0], now):  # a second stop: no more waiting
                drain.abort_all()
                server_exit(sig, frame)
            return
        first.append(now)
        drain.begin()

        def stop_accepting() -> None:
            server_exit(sig, None)
            loop.call_later(timeout_s, drain.abort_all)

        loop.call_later(grace_s, stop_accepting)

    def on_hup(sig: int, frame: FrameType | None) -> None:
        request_reload()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, on_term)
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hup)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    return restore


def raise_fd_limit(max_connections: int) -> int:
    """Each client connection may hold an upstream one too: raise this process's soft limit on
    open files (the workers inherit it) to fit, as far as the hard limit allows (systemd's
    default soft limit is 1024). Returns the soft limit now in force."""
    need = 2 * max_connections + _FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need and (hard == resource.RLIM_INFINITY or soft < hard):
        soft = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft < need:
        log.warning(
            "open_file_limit_low",
            limit=soft,
            needed=need,
            note="server.max_connections per worker may hit the limit first; raise it (ulimit -n, LimitNOFILE)",
        )
    return soft


class RouterSupervisor(Multiprocess):
    """Several workers: SIGTERM reaches each worker (which drains); SIGHUP too (which reloads)."""

    def handle_hup(self) -> None:
        for process in self.processes:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)


def run(config: Config, host: str, port: int, workers: int, config_path: str) -> None:
    raise_fd_limit(config.server.max_connections)
    uv = ServingConfig(
        "router.app:app_from_env",
        config.server,  # the client limits (protocol.py), pickled to each worker with the rest
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        log_level="warning",
        access_log=False,  # the router writes its own access line
        proxy_headers=False,  # nothing reads the client address; skip the per-request rewrite
        server_header=False,
        # A backstop only: the drain aborts open streams itself at drain_timeout_s.
        timeout_graceful_shutdown=int(config.server.drain_timeout_s + _ABORT_FLUSH_S + 1),
    )
    # Bound and listening here, before any app starts: a worker's `serving` line is true when it
    # is logged, a taken port fails before any work, and port 0 is known for the `starting` line.
    # Connections made while the app starts wait in the backlog. The parent closes its socket
    # when the workers are done.
    with uv.bind_socket() as sock:
        sock.listen(uv.backlog)
        announce_start(config, config_path, host, sock.getsockname()[1], workers)
        if workers > 1:
            RouterSupervisor(uv, sockets=[sock]).run()
        else:
            uvicorn.Server(uv).run(sockets=[sock])
