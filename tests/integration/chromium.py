"""A real headless Chromium (Debian's `chromium`), driven over the Chrome DevTools Protocol with
aiohttp's websocket client: open a page, evaluate JavaScript in it, wait for a condition.

No browser-automation dependency: CDP is JSON over a websocket. Every wait is bounded. Chromium
missing is a test failure with the fix in the message, never a skip: CI (`.ci/run`) installs it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

# The flags the machine notes give for root in a container with no network beyond loopback:
# without the background-networking ones Chromium keeps dialling Google and being refused.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
START_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 10.0


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "chromium is not on PATH: the status page is tested in a real headless Chromium. "
        "Install it with `apt-get install -y chromium` (.ci/run does this when it is missing)."
    )


class Page:
    """One browser tab over CDP."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        await self._ws.send_json({"id": msg_id, "method": method, "params": params})
        with anyio.fail_after(CALL_TIMEOUT_S):
            while True:
                msg = await self._ws.receive_json()
                if msg.get("id") == msg_id:  # events (no id) and other replies are skipped
                    if "error" in msg:
                        raise AssertionError(f"CDP {method} failed: {msg['error']}")
                    result: dict[str, Any] = msg.get("result", {})
                    return result

    async def navigate(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"JavaScript error in {expression!r}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 10.0) -> Any:
        """Poll `expression` until it is truthy; on timeout fail with what the page shows."""
        last: Any = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                last = await self.evaluate(expression)
            except AssertionError as exc:  # mid-navigation the new document may not be built yet
                last = exc
            else:
                if last:
                    return last
            await anyio.sleep(0.05)
        text = await self.evaluate("document.body ? document.body.innerText : document.documentElement.outerHTML")
        raise AssertionError(f"not true after {timeout}s: {expression}\nlast value: {last!r}\npage:\n{text}")


@asynccontextmanager
async def browser_page() -> AsyncIterator[Page]:
    """A fresh headless Chromium with an empty profile, and its first tab."""
    binary = chromium_binary()
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        log = open(Path(profile).parent / f"{Path(profile).name}.log", "wb")
        proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, to end it whole
        )
        try:
            port = await _devtools_port(Path(profile), proc, log.name)
            async with aiohttp.ClientSession() as session:
                ws_url = await _page_target(session, port)
                async with session.ws_connect(ws_url, max_msg_size=0) as ws:
                    yield Page(ws)
        finally:
            _stop(proc)
            log.close()
            os.unlink(log.name)


async def _devtools_port(profile: Path, proc: subprocess.Popen[bytes], log: str) -> int:
    """Chromium writes the port it chose (with --remote-debugging-port=0) to DevToolsActivePort."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = Path(log).read_text(errors="replace")[-3000:]
            raise AssertionError(f"chromium exited with {proc.returncode}:\n{output}")
        if marker.exists():
            first = marker.read_text().split("\n", 1)[0].strip()
            if first.isdigit():
                return int(first)
        await anyio.sleep(0.05)
    raise AssertionError(f"chromium did not open its DevTools port in {START_TIMEOUT_S}s")


async def _page_target(session: aiohttp.ClientSession, port: int) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        async with session.get(f"http://127.0.0.1:{port}/json/list", timeout=aiohttp.ClientTimeout(total=5)) as r:
            targets = await r.json()
        for t in targets:
            if t.get("type") == "page" and t.get("webSocketDebuggerUrl"):
                return str(t["webSocketDebuggerUrl"])
        await anyio.sleep(0.05)
    raise AssertionError("chromium showed no page target")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # renderer and helper processes of this browser only
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(timeout=10)
