"""Run an ASGI app on uvicorn in a background thread: for the demo and the tests, which need
real loopback sockets but one process."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Literal

import uvicorn

from router.config import ServerConfig
from router.ops.protocol import ServingConfig

_START_TIMEOUT_S = 10.0


class ThreadedServer:
    """A uvicorn server on its own thread and event loop, with the client limits of `limits` (the
    config's `server:`; default: the defaults). `stop()` is bounded."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        lifespan: Literal["auto", "on", "off"] = "on",
        limits: ServerConfig | None = None,
    ) -> None:
        config = ServingConfig(
            app,
            limits or ServerConfig(),
            host=host,
            port=port,
            loop="asyncio",
            lifespan=lifespan,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"uvicorn:{port}", daemon=True)
        self._error: BaseException | None = None
        self.host = host
        self.port = port

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc

    def start(self) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.host}:{self.port} did not start: {self._error!r}")
            time.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
