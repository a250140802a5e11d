"""Who is calling: the API key from `Authorization: Bearer` or `x-api-key` (either header on any
endpoint, since clients mix them), looked up by its SHA-256 and compared in constant time.

Keys exist here only as hashes; a key never reaches a log line or an error message, only its id.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from router.config import Config, PlanConfig
from router.errors import Unauthorized

KEY_PREFIX = "toc-"
KEY_RANDOM_CHARS = 43  # secrets.token_urlsafe(32): 256 bits of entropy, URL-safe
_HOW = "send the key as 'Authorization: Bearer <key>' or 'x-api-key: <key>'"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the key's id and plan, with the plan's models resolved."""

    key_id: str
    plan: PlanConfig | None  # None: anonymous (server.allow_anonymous), no limits
    models: frozenset[str]  # public model names the plan allows

    def allows(self, model: str) -> bool:
        return model in self.models


def hash_key(key: str) -> str:
    """The config form of a key: `sha256:` + the lowercase hex SHA-256 of the whole key."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def plan_models(plan: PlanConfig, models: Iterable[str]) -> frozenset[str]:
    return frozenset(m for m in models if any(fnmatch.fnmatchcase(m, g) for g in plan.models))


class Authenticator:
    """Maps a presented key to its Principal. Built once from the config."""

    def __init__(self, config: Config) -> None:
        names = [m.name for m in config.models]
        by_plan = {p.name: (p, plan_models(p, names)) for p in config.plans}
        # Lookup by the hash's hex: the dict probe sees only a digest of the presented key,
        # and the final equality check is constant-time.
        self._keys: dict[str, tuple[str, Principal]] = {}
        for k in config.keys:
            plan, allowed = by_plan[k.plan]
            digest = k.hash.removeprefix("sha256:")
            self._keys[digest] = (digest, Principal(k.id, plan, allowed))
        self._anonymous = Principal("anonymous", None, frozenset(names)) if config.server.allow_anonymous else None

    def authenticate(self, authorization: str | None, x_api_key: str | None) -> Principal:
        tokens = _tokens(authorization, x_api_key)
        if not tokens or (self._anonymous is not None and not self._keys):
            # No keys configured at all: credentials sent anyway are not ours to judge.
            if self._anonymous is not None:
                return self._anonymous
            if authorization and authorization.strip():
                # `Authorization: toc-...` (the key without its scheme), another scheme, or an
                # empty Bearer: say how to send it, never what was sent (it may be the key).
                raise Unauthorized(f"no API key in the Authorization header (it needs the Bearer scheme): {_HOW}")
            raise Unauthorized(f"missing API key: {_HOW}")
        for token in tokens:  # a client may send both headers, one of them meant for someone else
            digest = hashlib.sha256(token.encode()).hexdigest()
            found = self._keys.get(digest)
            if found is not None and hmac.compare_digest(found[0], digest):
                return found[1]
        raise Unauthorized("invalid API key")


def _tokens(authorization: str | None, x_api_key: str | None) -> list[str]:
    out = []
    if x_api_key and x_api_key.strip():
        out.append(x_api_key.strip())
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            out.append(value.strip())
    return out
