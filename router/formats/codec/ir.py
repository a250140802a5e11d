"""The internal representation that every format is read into and written from.

Three formats, six directions: each format has one reader and one writer around this IR
(requests, answers, stream events), so a change to one format touches one module and the six
directions come for free. The IR holds only what has a counterpart in at least two formats;
a field with no counterpart is dropped by the reader with a debug log line (formats that match
are never translated at all, so pass-through keeps everything).

Plain slotted dataclasses, no validation here: readers validate what they read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from router.config import Format
from router.types import Usage

# ---------------------------------------------------------------- content parts


@dataclass(slots=True)
class Text:
    text: str


@dataclass(slots=True)
class Image:
    """An image by URL, or inline as base64 `data` with its `media_type` (a data: URL is split)."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None  # openai's detail hint; dropped for Anthropic


@dataclass(slots=True)
class Thinking:
    """Reasoning content. `signature` (Anthropic) or `encrypted` (Responses' encrypted_content)
    are only valid at the provider that made them: `origin` names that format, and a writer for
    another format drops the opaque parts (never sends a signature elsewhere). One exception,
    toward clients only: a Responses client gets a signed block as an opaque token in
    encrypted_content, read back into the block with its origin (carry.py)."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None  # Anthropic redacted_thinking data
    encrypted: str | None = None  # Responses reasoning.encrypted_content
    id: str | None = None  # Responses reasoning item id
    origin: Format | None = None


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # the JSON text, exactly as produced


@dataclass(slots=True)
class ToolResult:
    call_id: str
    content: list[Text | Image]
    is_error: bool = False


Part = Text | Image | Thinking | ToolCall | ToolResult


@dataclass(slots=True)
class Message:
    """`user` messages carry Text, Image and ToolResult parts; `assistant` messages carry Text,
    Thinking and ToolCall parts. Chat's `tool` role and Responses' function_call_output items are
    read into ToolResult parts of a user message (Anthropic's shape) and split out again on write."""

    role: Literal["user", "assistant"]
    parts: list[Part]


# ---------------------------------------------------------------- request


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # JSON Schema
    strict: bool | None = None


ToolMode = Literal["auto", "none", "required", "tool"]


@dataclass(slots=True)
class ToolChoice:
    mode: ToolMode
    name: str | None = None  # with mode "tool"


Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


@dataclass(slots=True)
class Reasoning:
    """What the client asked for. `effort` from OpenAI formats or Anthropic adaptive thinking's
    `output_config.effort`; `budget_tokens` from Anthropic `thinking: enabled`. `enabled` False
    means the client turned reasoning off (`thinking: disabled`, effort `none`)."""

    enabled: bool = True
    effort: Effort | None = None
    budget_tokens: int | None = None
    summary: str | None = None  # Responses reasoning.summary ("auto", "concise", "detailed")


@dataclass(slots=True)
class Request:
    model: str
    messages: list[Message]
    system: list[str] = field(default_factory=list)  # system/developer/instructions texts, in order
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None  # Anthropic only; dropped for OpenAI formats
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    reasoning: Reasoning | None = None
    user: str | None = None  # chat `user` / responses `user`/safety id / anthropic metadata.user_id


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """How a route wants requests written (from the route config)."""

    thinking: Literal["budget", "adaptive"] = "budget"  # the Anthropic thinking form upstream accepts
    drop_params: frozenset[str] = frozenset()  # sampling fields the upstream model rejects
    default_max_tokens: int = 16384  # Anthropic requires max_tokens; used when the client gave none


# ---------------------------------------------------------------- answer

# The union of the formats' stop reasons, named by what happened.
Stop = Literal["end", "length", "tool_use", "stop_sequence", "content_filter", "refusal", "pause"]


@dataclass(slots=True)
class Answer:
    id: str
    model: str
    parts: list[Text | Thinking | ToolCall]
    stop: Stop = "end"
    stop_sequence: str | None = None
    usage: Usage | None = None
    created: int | None = None  # unix seconds, when the upstream said


# ---------------------------------------------------------------- stream events
# A reader turns each upstream event into zero or more of these; a writer turns each of these
# into zero or more client events. The order a reader produces:
#   Start, then blocks, then Finish (or Error, at any point, which ends the stream).
# A block is text (TextDelta...), thinking (ThinkingDelta...) or one tool call (ToolStart, then
# ToolArgs with its index). A reader emits BlockEnd when its format says a block is complete;
# formats that never say so (chat) leave it out, so a writer also closes the open block
# implicitly when a delta of another block arrives, and closes everything still open on Finish
# or Error. ToolArgs may name any started call (a chat upstream may interleave parallel calls).


@dataclass(slots=True)
class Start:
    """Once, first: the message/response/completion begins."""

    id: str
    model: str
    created: int | None = None
    usage: Usage | None = None  # Anthropic reports input tokens here


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ThinkingDelta:
    text: str = ""
    signature: str | None = None  # the block's signature, which arrives after its text
    redacted: str | None = None
    encrypted: str | None = None
    origin: Format | None = None


@dataclass(slots=True)
class ToolStart:
    """A tool call begins. `index` counts tool calls in this answer from 0."""

    index: int
    id: str
    name: str


@dataclass(slots=True)
class ToolArgs:
    index: int
    fragment: str  # a piece of the arguments' JSON text


@dataclass(slots=True)
class BlockEnd:
    """The current text, thinking or tool-call block is complete."""


@dataclass(slots=True)
class Finish:
    """The answer is complete: why it stopped, and its usage when the upstream reported one.
    Last event of a successful stream (a writer emits its terminal events on it)."""

    stop: Stop
    stop_sequence: str | None = None
    usage: Usage | None = None


@dataclass(slots=True)
class UsageUpdate:
    """Usage reported apart from Finish (chat's trailing usage chunk); writers fold it into what
    they emit at the end."""

    usage: Usage


@dataclass(slots=True)
class Error:
    """An error event inside the stream. `kind` is the Anthropic-style error type
    (`overloaded_error`, `api_error`, `rate_limit_error`, `invalid_request_error`, ...)."""

    message: str
    kind: str = "api_error"
    code: str | None = None


Event = Start | TextDelta | ThinkingDelta | ToolStart | ToolArgs | BlockEnd | Finish | UsageUpdate | Error
