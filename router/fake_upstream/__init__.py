"""The shipped fake LLM provider: a real HTTP server speaking chat completions, anthropic messages
and responses (non-stream and SSE, with usage) that injects faults on demand, for tests and benchmarks.

Its answers depend on the request only (answers.py decides, one formats_* module per format writes):
1. The last turn is tool results (chat: trailing `tool` messages; anthropic: `tool_result` blocks in
   the last user message; responses: trailing `function_call_output` items): the text is
   "The tool said: <result texts joined by '; '>", with no tool call.
2. Otherwise, when function tools are defined: the text "Let me check.", then a call of the first
   tool with arguments {"city": "Paris"}; two calls with distinct ids when the last user text has
   the word "parallel". Stop: chat `tool_calls`, anthropic `tool_use`, responses `completed`.
   Streamed arguments arrive in three fragments (plus anthropic's empty first `input_json_delta`).
3. Otherwise the text is "Hello from <name>.".
With reasoning asked for (chat `reasoning_effort`, responses `reasoning.effort`, other than "none";
anthropic `thinking.type` enabled or adaptive) the answer opens with "Thinking about: <first 40
characters of the last user text>": chat `reasoning_content` (message and deltas), an anthropic
thinking block signed "sig-fake-<rid>", a responses reasoning item with a summary and
encrypted_content "enc-fake-<rid>"; usage counts reasoning tokens. Faults: `text` replaces the
visible text; `cached_tokens` reports cached input; `output_tokens` reports that many output tokens, at most the
request's max tokens; per-delta faults count every delta kind.
GET /_admin/last returns the last body each endpoint received (?path= for one)."""

from __future__ import annotations

from router.fake_upstream.app import build_app
from router.fake_upstream.faults import FaultError, Faults
from router.fake_upstream.server import RunningServer, main, start_in_thread

__all__ = ["FaultError", "Faults", "RunningServer", "build_app", "main", "start_in_thread"]
