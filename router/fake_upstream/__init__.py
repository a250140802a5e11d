"""The shipped fake LLM provider: a real HTTP server speaking chat completions, anthropic messages
and responses (non-stream and SSE, with usage) that injects faults on demand, for tests and benchmarks."""

from __future__ import annotations

from router.fake_upstream.app import build_app
from router.fake_upstream.faults import FaultError, Faults
from router.fake_upstream.server import RunningServer, main, start_in_thread

__all__ = ["FaultError", "Faults", "RunningServer", "build_app", "main", "start_in_thread"]
