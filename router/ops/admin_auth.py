"""The operator endpoints' bearer tokens (`server.metrics_token`, `server.admin_token`): stored as
`sha256:` hashes like client keys, checked by hashing what is presented and comparing digests in
constant time. Kept apart from `auth.py`, which maps client keys to plans: an operator token
grants no plan, and a client key never opens an operator endpoint."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# What a refused request gets: RFC 6750's challenge, so curl and Prometheus say "unauthorized".
CHALLENGE = {"www-authenticate": 'Bearer realm="router"'}
# "toc-" like client keys, so the log redaction masks a token wherever one strays; "op-" so that
# an operator tells one from a client key at a glance.
TOKEN_PREFIX = "toc-op-"


def new_token() -> str:
    """A fresh operator token (`router token new`): 256 random bits, URL-safe (it travels in the
    status page's URL fragment). The config keeps its hash, as `router.billing.auth.hash_key` writes it."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class BearerGuard:
    """Allows a request when no token is configured, or when `Authorization: Bearer <token>`
    hashes to the configured digest."""

    __slots__ = ("_digest",)

    def __init__(self, token_hash: str | None) -> None:
        # The config loader has validated the form; only the hex part is compared.
        self._digest = None if token_hash is None else token_hash.removeprefix("sha256:").encode()

    @property
    def open(self) -> bool:
        return self._digest is None

    def allows(self, authorization: str | None) -> bool:
        if self._digest is None:
            return True
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        presented = hashlib.sha256(token.encode()).hexdigest().encode()
        return hmac.compare_digest(presented, self._digest)
