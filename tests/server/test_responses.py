"""router.server.responses.unless_gone: an answer, or the request cancelled when the client leaves."""

from __future__ import annotations

import anyio
import pytest
from starlette.types import Message

from router.server.responses import ClientLeft, unless_gone


@pytest.mark.anyio
async def test_the_work_s_result_when_the_client_stays() -> None:
    """The client never leaves: the result, and the watch on `receive` is dropped."""
    waiting = anyio.Event()

    async def receive() -> Message:
        waiting.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def work() -> str:
        await waiting.wait()
        return "answer"

    assert await unless_gone(receive, work()) == "answer"


@pytest.mark.anyio
async def test_a_disconnect_cancels_the_work_and_raises_client_left() -> None:
    """The client leaves while the work waits: the work is cancelled at once, ClientLeft raised."""
    cancelled = False
    gone = anyio.Event()

    async def receive() -> Message:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def work() -> str:
        nonlocal cancelled
        try:
            gone.set()
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise
        return "never"

    with pytest.raises(ClientLeft):
        await unless_gone(receive, work())
    assert cancelled
