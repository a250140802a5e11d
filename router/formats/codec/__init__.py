"""Translation between the three wire formats, both ways, streams included.

One reader and one writer per format around a small internal representation (`ir.py`), rather
than six direct pairs: three formats need three readers and three writers, each written and
tested once, and a fourth format would add one module instead of six pairs. A request is read
into the IR and written in the upstream's format; the answer (or each stream event) is read in
the upstream's format and written in the client's. Same-format routes are never translated: the
body is forwarded as it came, unknown fields and all.

Routing asks `upstream_format` (here) which format to send a route in; failover calls
`codecs.py` when that differs from the client's, and the relay feeds each upstream stream event
through a `codecs.StreamTranslator`.
"""

from __future__ import annotations

from router.config import Format

# When a provider does not speak the client's format, the format to translate into, by
# preference: the OpenAI pair first for each other (same usage and error conventions), chat
# before Anthropic for an Anthropic client (chat is the most widely spoken).
_NEAREST: dict[Format, tuple[Format, ...]] = {
    "openai-chat": ("openai-responses", "anthropic-messages"),
    "openai-responses": ("openai-chat", "anthropic-messages"),
    "anthropic-messages": ("openai-chat", "openai-responses"),
}


def upstream_format(client: Format, spoken: tuple[Format, ...]) -> Format | None:
    """The format to send upstream for a `client` request to a provider speaking `spoken`:
    the client's own when spoken, else the nearest spoken one (None: speaks nothing we know)."""
    if client in spoken:
        return client
    for fmt in _NEAREST[client]:
        if fmt in spoken:
            return fmt
    return None
