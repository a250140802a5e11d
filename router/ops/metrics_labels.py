"""The label values and buckets of the router's metrics: every label is bounded, by the config
(models, plans, providers: folded into "other" when unknown) or by the fixed lists here."""

from __future__ import annotations

import re

from router import formats

OTHER = "other"
NONE = "none"  # provider label of a request no provider served (401, 402, 429, 503, ...)

ENDPOINTS = (
    *(f.path for f in formats.ALL),
    "/v1/models",
    "/health/live",
    "/health/ready",
    "/metrics",
    "/status",
    "/status.json",
)
# Why a stream broke after its content began (the relay's reasons), and what became of it.
CONTINUATION_REASONS = (
    "truncated",
    "upstream_error_event",
    "timeout_idle",
    "timeout_total",
    "upstream_reset",
    "upstream_connect_error",
    "oversized_event",
)
CONTINUATION_OUTCOMES = ("ok", "not_resumable", "limit", "failed")
OUTCOMES = ("ok", "5xx", "429", "4xx", "timeout", "connect_error", "reset", "protocol_error", "cancelled", "error")
# classify.Verdict.reason values, plus the codes of UpstreamError subclasses (its catch-all).
FAILOVER_REASONS = frozenset(
    {
        "timeout_connect",
        "timeout_first_token",
        "timeout_idle",
        "timeout_total",
        "connect_error",
        "stream_failed_before_content",
        "context_exceeded",
        "upstream_error",
        "upstream_connect_error",
        "upstream_reset",
        "upstream_timeout",
        "upstream_status",
        "upstream_protocol_error",
    }
)
STATUS_REASON = re.compile(r"status_[1-5][0-9][0-9]")  # "status_503": bounded by the code range
REFUSALS = {402: "budget", 429: "rate_limit"}
TOKEN_KINDS = ("input", "cached", "cache_write", "output")

# Duration of a whole request: a cached short answer takes 50 ms, a long stream minutes, and
# routing.deadline_s defaults to 600 s.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
# Time to first byte: fast models answer in 100-500 ms, reasoning models take tens of seconds,
# and first_token_s defaults to 60 s.
TTFB_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60)
