"""Run the fake provider: in a daemon thread for tests and benchmarks (`start_in_thread`),
or in the foreground as a command (`main`, wired to `router fake-upstream`)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import signal
import threading
import time
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from router.fake_upstream.app import build_app
from router.fake_upstream.conn import install_log_filter
from router.fake_upstream.faults import PARSERS, FaultError, Faults

_START_TIMEOUT = 10.0
_GRACEFUL_SECONDS = 1  # hanging requests are dropped on stop, so this only bounds stragglers


class RunningServer:
    """A fake provider serving on a loopback port from its own thread and event loop."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        faults: Faults,
        app: Starlette,
        server: uvicorn.Server,
        thread: threading.Thread,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://{host}:{port}"
        self.faults = faults  # the live object: mutating it changes the next requests
        self.app = app
        self._server = server
        self._thread = thread
        self._loop = loop

    def stop(self, timeout: float = 5.0) -> None:
        """Drop hanging requests, shut uvicorn down and join the thread (bounded). Idempotent."""
        if not self._thread.is_alive():
            return
        try:
            self._loop.call_soon_threadsafe(self.app.state.fake.shutdown)
        except RuntimeError:  # the loop already closed
            pass
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningServer({self.name!r}, {self.url})"


def start_in_thread(
    name: str,
    faults: Faults | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    seed: int | None = None,
) -> RunningServer:
    """Start the fake provider `name` on host:port (0 = a free port) and wait until it listens."""
    faults = Faults() if faults is None else faults
    app = build_app(name, faults, seed)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="asyncio",
        http="httptools",
        lifespan="off",
        log_level="warning",
        log_config=None,  # leave the host process's logging setup alone
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=_GRACEFUL_SECONDS,
    )
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.serve())
        except BaseException as exc:  # uvicorn calls sys.exit() when it cannot bind
            failure.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name=f"fake-upstream-{name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(_START_TIMEOUT)
            reason = repr(failure[0]) if failure else "timed out"
            raise RuntimeError(f"fake upstream {name!r} failed to start on {host}:{port}: {reason}")
        time.sleep(0.005)
    install_log_filter()
    bound = server.servers[0].sockets[0].getsockname()[1]
    return RunningServer(name, host, bound, faults, app, server, thread, loop)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="router fake-upstream",
        description="A fake LLM provider (chat completions, anthropic messages, responses) with fault injection.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="fake", help="shown in answers and the x-fake-provider header")
    parser.add_argument("--seed", type=int, default=None, help="reproducible fail_rate draws and ids")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    # one flag per fault switch (--latency-ms, --reset-after-chunks, ...), typed from the dataclass
    for field in dataclasses.fields(Faults):
        kind = str(field.type)
        if kind == "bool":
            parser.add_argument(_flag(field.name), dest=field.name, action="store_true", default=None)
        else:
            convert = float if "float" in kind else int if "int" in kind else str
            parser.add_argument(_flag(field.name), dest=field.name, type=convert, default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve in the foreground until SIGINT/SIGTERM. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given: dict[str, Any] = {k: getattr(args, k) for k in PARSERS if getattr(args, k) is not None}
    try:
        faults = Faults.from_dict(given)
    except FaultError as exc:
        parser.error(str(exc))
    app = build_app(args.name, faults, args.seed)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools",
        lifespan="off",
        log_level=args.log_level,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=_GRACEFUL_SECONDS,
    )
    install_log_filter()  # after Config() applied uvicorn's logging config
    server = uvicorn.Server(config)
    # uvicorn shuts down cleanly on SIGINT/SIGTERM, then re-raises the signal at the handler it found;
    # a no-op handler there turns a requested stop into a normal exit status 0
    previous = {sig: signal.signal(sig, _ignore_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if server.started else 1


def _ignore_signal(signum: int, frame: FrameType | None) -> None:
    return None


if __name__ == "__main__":
    raise SystemExit(main())
