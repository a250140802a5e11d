"""Signed thinking carried through a format that cannot hold it, as an opaque router-owned token.

A Responses client talking to an Anthropic upstream sees Anthropic's thinking as a reasoning
item. Anthropic needs that thinking back, signed and unchanged, in the next request of a tool
loop (or it refuses thinking for the turn), but a reasoning item has no signature field. Its
`encrypted_content` is the one field clients keep and send back untouched without reading it, so
the writer puts the block there as a token and the reader rebuilds the block from it:

    rtr1.<base64url, unpadded, of compact JSON>
    {"o": "anthropic-messages", "t": "<thinking text>", "s": "<signature>"}   a thinking block
    {"o": "anthropic-messages", "r": "<redacted data>"}                      a redacted_thinking block

The text travels inside the token because the signature covers it: a client may drop or rewrite
the item's summary, and the block must go back exactly as it came. The token is not secret and not
authenticated (the text is the summary the client already sees; the signature is what Anthropic's
own clients receive): Anthropic verifies the signature, so a token edited into something that still
decodes is refused there, as an edited thinking block would be. Anything that does not decode to
this shape (another provider's real encrypted_content, a truncated token) is not ours: `read`
returns None and the caller treats the field as it always did.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

import orjson

from router.config import Format
from router.formats.codec import ir

PREFIX: Final = "rtr1."
# Formats whose thinking carries a provider signature worth carrying (chat has none; Responses'
# own encrypted_content needs no token).
_SIGNED: frozenset[Format] = frozenset({"anthropic-messages"})


def write(t: ir.Thinking) -> str | None:
    """The token for a signed or redacted block of a signing format; None when there is nothing
    a provider could verify (unsigned text, or Responses' own reasoning)."""
    if t.origin not in _SIGNED:
        return None
    body: dict[str, str]
    if t.redacted is not None:
        body = {"o": t.origin, "r": t.redacted}
    elif t.signature:
        body = {"o": t.origin, "t": t.text, "s": t.signature}
    else:
        return None
    return PREFIX + base64.urlsafe_b64encode(orjson.dumps(body)).rstrip(b"=").decode("ascii")


def is_token(value: Any) -> bool:
    """Whether a field holds a router token (by its prefix: cheap, for scanning whole bodies)."""
    return isinstance(value, str) and value.startswith(PREFIX)


def read(value: Any) -> ir.Thinking | None:
    """The block a token carries, or None for anything that is not a well-formed token."""
    if not is_token(value):
        return None
    raw = value[len(PREFIX) :]
    try:
        body = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):  # bad base64, not UTF-8 JSON (orjson's error is a ValueError)
        return None
    if not isinstance(body, dict) or body.get("o") not in _SIGNED:
        return None
    origin: Format = body["o"]
    redacted, text, signature = body.get("r"), body.get("t"), body.get("s")
    if isinstance(redacted, str) and text is None and signature is None:
        return ir.Thinking(redacted=redacted, origin=origin)
    if isinstance(text, str) and isinstance(signature, str) and signature and redacted is None:
        return ir.Thinking(text=text, signature=signature, origin=origin)
    return None
