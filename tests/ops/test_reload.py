"""router.ops.reload: a reload triggered while a request runs does not log as that request."""

from __future__ import annotations

import anyio
import pytest
import structlog
from structlog.testing import capture_logs

from router.ops import reload

log = structlog.get_logger("test")


@pytest.mark.anyio
async def test_a_reload_triggered_inside_a_request_carries_no_request_id() -> None:
    """A SIGHUP handler runs inside whatever request was executing; the reload it schedules
    must not inherit that request's id (its lines are the router's, not the request's)."""
    done = anyio.Event()

    async def reloader() -> None:
        log.info("reloaded")
        done.set()

    unregister = reload.register(reloader)
    try:
        merge = [structlog.contextvars.merge_contextvars]
        with capture_logs(processors=merge) as logs:
            with structlog.contextvars.bound_contextvars(request_id="r-unrelated"):
                reload.request_reload()
                log.info("inside")
            with anyio.fail_after(2):
                await done.wait()
    finally:
        unregister()
    by_event = {e["event"]: e for e in logs}
    assert by_event["inside"]["request_id"] == "r-unrelated", "the test's context did carry the id"
    assert "request_id" not in by_event["reloaded"]
