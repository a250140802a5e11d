"""The router's exception tree. Every error knows its HTTP status and a low-cardinality `code`;
what an upstream failure means for routing is decided in one place, `routing/classify.py`.

    RouterError
    ├── ClientError                    the request itself is wrong: never retried, never a breaker failure
    │   ├── BadRequest                 400 malformed JSON, missing model, wrong types
    │   ├── Unauthorized               401 missing or unknown API key
    │   ├── BudgetExceeded             402 the key's budget for this window is spent (retry_after)
    │   ├── ModelNotAllowed            403 the model is not on the key's plan
    │   ├── UnknownModel               404 model not served by this router
    │   ├── BodyTooLarge               413 body over server.max_body_bytes
    │   └── RateLimited                429 the key's rpm or max_concurrent is reached (retry_after)
    ├── UpstreamError                  one attempt failed; raised per attempt, classified by classify.py
    │   ├── UpstreamConnectError       refused, DNS failure, no connection
    │   │   └── UpstreamReset          the connection broke while the answer was coming
    │   ├── UpstreamTimeout            connect / first_token / idle / total deadline passed
    │   ├── UpstreamStatusError        a non-2xx answer (carries status, headers, body)
    │   └── UpstreamProtocolError      the stream ended or errored before its first content event
    ├── NoRouteAvailable               503: every route was down or every attempt failed
    ├── LimitsUnavailable              503: the shared state store is unreachable (fail_closed)
    └── InternalError                  500: a bug; the message never carries a traceback

Foreign exceptions (the HTTP transport's, yaml, redis) are translated to these at the edge where they occur.
"""

from __future__ import annotations

from typing import Literal


class RouterError(Exception):
    """Base of every error the router raises on purpose."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClientError(RouterError):
    """The request itself is wrong; trying another provider would not help."""

    status = 400
    code = "invalid_request"


class BadRequest(ClientError):
    status = 400
    code = "invalid_request"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class Unauthorized(ClientError):
    status = 401
    code = "invalid_api_key"


class ModelNotAllowed(ClientError):
    status = 403
    code = "model_not_allowed"


class _Limited(ClientError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BudgetExceeded(_Limited):
    status = 402
    code = "budget_exceeded"


class RateLimited(_Limited):
    status = 429
    code = "rate_limited"


class BodyTooLarge(ClientError):
    status = 413
    code = "request_too_large"


class UnknownModel(ClientError):
    status = 404
    code = "model_not_found"


class UpstreamError(RouterError):
    """One attempt against one provider failed. `classify.py` decides what that means."""

    status = 502
    code = "upstream_error"


class UpstreamConnectError(UpstreamError):
    code = "upstream_connect_error"


class UpstreamReset(UpstreamConnectError):
    code = "upstream_reset"


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"
    status = 504

    def __init__(self, message: str, phase: Literal["connect", "first_token", "idle", "total"]) -> None:
        super().__init__(message)
        self.phase = phase


class UpstreamStatusError(UpstreamError):
    code = "upstream_status"

    def __init__(self, message: str, upstream_status: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status
        self.headers = headers
        self.body = body


class UpstreamProtocolError(UpstreamError):
    """The upstream answered 200 but its stream ended or errored before any content."""

    code = "upstream_protocol_error"

    def __init__(self, message: str, error_event: bytes | None = None) -> None:
        super().__init__(message)
        self.error_event = error_event


class NoRouteAvailable(RouterError):
    status = 503
    code = "no_route_available"

    def __init__(self, message: str, retry_after: float | None = None, failovers: list[str] | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.failovers = failovers or []  # "route:reason" of each attempt that failed


class LimitsUnavailable(RouterError):
    status = 503
    code = "limits_unavailable"


class InternalError(RouterError):
    status = 500
    code = "internal_error"
