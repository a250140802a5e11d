"""Property-based fuzzing over real sockets (from the hardening work): near-valid requests of each format
(tests/formats/grammar.py) sent to the real router in front of the fake providers, on a native
route and on a route translated into each other format. Every answer is a valid answer of the
endpoint's format or an error in the endpoint's own envelope; never a 500 (nor any 5xx: the
fakes are healthy), and no traceback in the router's output when the run is over. A bounded,
derandomized number of examples, so CI runs the same requests every time."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given

from tests.conftest import ALL_FORMATS
from tests.formats.grammar import CHAT_PATH, MESSAGES_PATH, RESPONSES_PATH, fuzz_settings, near_valid

# A model per upstream format: alpha speaks all three (the native route of every client format);
# beta only Anthropic's, gamma only chat, delta (alpha again) only Responses: translated routes.
MODELS = ["native", "to-messages", "to-chat", "to-responses"]
EXAMPLES = 300


def config(config_factory: Any, fakes: Any) -> Any:
    delta = {
        "name": "delta",
        "base_url": fakes["alpha"].url,
        "formats": ["openai-responses"],
        "api_key": "provider-key-delta",
        "health": {"enabled": False},
    }
    return config_factory(
        {
            "native": [("alpha", 0)],
            "to-messages": [("beta", 0)],
            "to-chat": [("gamma", 0)],
            "to-responses": [("delta", 0)],
        },
        formats={"alpha": ALL_FORMATS, "beta": ["anthropic-messages"], "gamma": ["openai-chat"]},
        extra_providers=[delta],
    )


def error_envelope(path: str, body: Any) -> bool:
    if path == MESSAGES_PATH:
        err = body.get("error") if isinstance(body, dict) and body.get("type") == "error" else None
    else:
        err = body.get("error") if isinstance(body, dict) else None
    return isinstance(err, dict) and isinstance(err.get("message"), str) and isinstance(err.get("type"), str)


def valid_answer(path: str, body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    if path == CHAT_PATH:
        return body.get("object") == "chat.completion" and isinstance(body.get("choices"), list)
    if path == MESSAGES_PATH:
        return body.get("type") == "message" and isinstance(body.get("content"), list)
    return body.get("object") == "response" and isinstance(body.get("output"), list)


def valid_stream(path: str, text: str) -> bool:
    """Every event's data is JSON (chat's [DONE] aside), and the stream ends as its format ends."""
    # SSE lines end at CR, LF or CRLF only (str.splitlines would also cut at U+0085, U+2028, ...).
    data = [line[6:] for line in re.split(r"\r\n|\r|\n", text) if line.startswith("data: ")]
    if not data or any(d != "[DONE]" and not isinstance(orjson.loads(d), dict) for d in data):
        return False
    if path == CHAT_PATH:
        return data[-1] == "[DONE]"
    last = orjson.loads(data[-1])
    if path == MESSAGES_PATH:
        return bool(last.get("type") == "message_stop")
    return last.get("type") in ("response.completed", "response.incomplete")


def check(path: str, r: httpx.Response, request: Any) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500], request)
    if r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"):
        assert valid_stream(path, r.text), (r.text[-500:], request)
        return
    body = orjson.loads(r.content)
    if r.status_code == 200:
        assert valid_answer(path, body), (body, request)
    else:
        assert error_envelope(path, body), (r.status_code, body, request)


@pytest.mark.parametrize("path", [CHAT_PATH, MESSAGES_PATH, RESPONSES_PATH])
def test_fuzzed_requests_get_an_answer_or_the_endpoints_error(fakes, config_factory, router_server, capfd, path):
    rs = router_server(config(config_factory, fakes))
    statuses: Counter[int] = Counter()

    @fuzz_settings(EXAMPLES)
    @given(near_valid(path, MODELS))
    def one(request: Any) -> None:
        r = rs.client.post(path, content=orjson.dumps(request), headers={"content-type": "application/json"})
        check(path, r, request)
        statuses[r.status_code] += 1

    one()
    out, err = capfd.readouterr()
    logged = out + err
    at = max(logged.find("Traceback"), logged.find("internal_error"))
    assert at < 0, logged[max(0, at - 300) : at + 3000]
    # The grammar reaches both sides: answers from each kind of route, and refusals.
    assert statuses[200] >= EXAMPLES // 4 and statuses[400] >= EXAMPLES // 10, statuses
