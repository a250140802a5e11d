"""Config reload triggers, per process: SIGHUP (serve.py routes it here), `router reload --pid`
(which sends SIGHUP), and an optional file watch (`server.watch_config: true`).

The app registers its reload coroutine at start (app.py); a trigger only schedules it on the
running event loop, since a signal handler must not do the work itself. What a reload does (full
validation first, then an atomic swap that keeps live routing state) is in `runtime.py`.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Awaitable, Callable

import anyio
import structlog

log = structlog.get_logger("router.ops.reload")

Reloader = Callable[[], Awaitable[object]]
_reloaders: list[Reloader] = []
_tasks: set[asyncio.Task[None]] = set()  # strong references until each reload has run


def register(reloader: Reloader) -> Callable[[], None]:
    """Run `reloader` on every trigger, until the returned function is called."""
    _reloaders.append(reloader)
    return lambda: _reloaders.remove(reloader) if reloader in _reloaders else None


def request_reload() -> None:
    """Schedule every registered reload on the running loop (safe from a signal handler)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    for reloader in list(_reloaders):
        # An empty context: a signal handler runs inside whatever request was executing, and a
        # copy of its context would stamp that request's id on every line the reload logs.
        task = loop.create_task(_run(reloader), context=contextvars.Context())
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)


async def _run(reloader: Reloader) -> None:
    try:
        await reloader()
    except Exception:  # a reload must never take the serving process down
        log.exception("config_reload_crashed")


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


async def watch(path: str, on_change: Reloader, interval_s: float = 1.0) -> None:
    """Poll the file's inode, size and mtime (no extra dependency; a rename into place, as
    editors and config managers do it, changes the inode). Runs until cancelled."""
    last = _stamp(path)
    while True:
        await anyio.sleep(interval_s)
        now = _stamp(path)
        if now is not None and now != last:
            last = now
            await _run(on_change)
