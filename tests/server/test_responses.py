"""router.server.responses.unless_gone: an answer, or the request cancelled when the client
leaves; heard from the router's protocol (a future in the scope) or, without it, from `receive`."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from starlette.types import Message

from router.server.responses import CLOSED_KEY, ClientLeft, unless_gone


async def _never() -> Message:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


def _scope(via: str) -> tuple[dict[str, Any], asyncio.Future[None] | None]:
    if via == "receive":
        return {}, None
    closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    return {"extensions": {CLOSED_KEY: closed}}, closed


VIA = pytest.mark.parametrize("via", ["protocol", "receive"])


@VIA
@pytest.mark.anyio
async def test_the_work_s_result_when_the_client_stays(via: str) -> None:
    """The client never leaves: the result, and nothing is left listening."""
    scope, closed = _scope(via)
    assert await unless_gone(scope, _never, asyncio.sleep(0.01, result="answer")) == "answer"
    if closed is not None:
        closed.set_result(None)  # after the answer: must not cancel anything any more
        await asyncio.sleep(0.01)


@VIA
@pytest.mark.anyio
async def test_a_disconnect_cancels_the_work_and_raises_client_left(via: str) -> None:
    """The client leaves while the work waits: the work is cancelled at once, ClientLeft raised."""
    scope, closed = _scope(via)
    cancelled = False
    gone = anyio.Event()

    async def receive() -> Message:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def work() -> str:
        nonlocal cancelled
        try:
            gone.set()
            if closed is not None:
                closed.set_result(None)
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise
        return "never"

    with pytest.raises(ClientLeft):
        await unless_gone(scope, receive, work())
    assert cancelled
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0, "the cancel was taken back"


@pytest.mark.anyio
async def test_an_outer_cancel_is_not_taken_for_a_disconnect() -> None:
    """Cancelled from outside (a drain, a deadline) while the client is still there: the
    cancellation propagates as itself."""
    closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    scope: dict[str, Any] = {"extensions": {CLOSED_KEY: closed}}
    with anyio.move_on_after(0.01) as outer:
        await unless_gone(scope, _never, anyio.sleep_forever())
    assert outer.cancelled_caught
