"""The wire formats the router speaks, one object each (see `base.WireFormat`).

    base.py       the WireFormat interface, the parsed client request, stream event kinds and state
    chat.py       OpenAI Chat Completions
    messages.py   Anthropic Messages
    responses.py  OpenAI Responses
    translate.py  answers, errors and streams from one format into another, through the IR
    codec/        each format's reader and writer to and from the IR (`codec/ir.py`)
    sse.py        Server-Sent Events framing, shared by all three

Everything else asks these objects; a fourth format is one module here and its codec.
"""

from __future__ import annotations

from router.config import Format
from router.formats.base import ClientRequest, EventKind, Prepared, StreamState, WireFormat
from router.formats.chat import CHAT
from router.formats.messages import MESSAGES
from router.formats.responses import RESPONSES

__all__ = [
    "ALL",
    "CHAT",
    "MESSAGES",
    "RESPONSES",
    "ClientRequest",
    "EventKind",
    "Prepared",
    "StreamState",
    "WireFormat",
    "for_path",
    "upstream_format",
    "wire",
]

ALL: tuple[WireFormat, ...] = (CHAT, MESSAGES, RESPONSES)
_BY_NAME: dict[str, WireFormat] = {f.name: f for f in ALL}

# When a provider does not speak the client's format, the format to translate into, by
# preference: the OpenAI pair first for each other (same usage and error conventions), chat
# before Anthropic for an Anthropic client (chat is the most widely spoken).
_NEAREST: dict[WireFormat, tuple[WireFormat, ...]] = {
    CHAT: (RESPONSES, MESSAGES),
    RESPONSES: (CHAT, MESSAGES),
    MESSAGES: (CHAT, RESPONSES),
}


def wire(name: Format | str) -> WireFormat:
    """The format object of a config name (`openai-chat`, ...); KeyError for an unknown one."""
    return _BY_NAME[name]


def for_path(path: str) -> WireFormat:
    """The format whose envelope an answer on `path` uses: its API's, else chat's (the OpenAI
    envelope is what most clients parse)."""
    for f in ALL:
        if path.startswith(f.path):
            return f
    return CHAT


def upstream_format(client: WireFormat, spoken: tuple[Format, ...]) -> WireFormat | None:
    """The format to send upstream for a `client` request to a provider speaking `spoken`:
    the client's own when spoken, else the nearest spoken one (None: speaks nothing we know)."""
    if client.name in spoken:
        return client
    for f in _NEAREST[client]:
        if f.name in spoken:
            return f
    return None
