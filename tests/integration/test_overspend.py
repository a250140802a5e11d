"""The overspend bound (docs/billing.md, "Reserve, then settle"): requests that set no output cap get one
the reservation covers, so a window's spend ends at most one reservation over its budget, however
many requests run at once on however many replicas. Over real sockets, two routers on one Redis."""

from __future__ import annotations

import concurrent.futures
import itertools
import uuid

import orjson
import pytest

from router.billing.accounting import reserve_usd
from router.config import Price
from tests.conftest import CHAT, RESPONSES, RouterServer
from tests.integration.test_limits import PRICE, auth, ledger, limited_config

LIMIT = 200  # the model's output limit
LONG = 100_000  # what the fake would write if nothing capped it


def test_a_request_without_a_cap_is_sent_the_models_limit(fakes, config_factory, router_server, tmp_path):
    """No cap from the client: the provider gets the model's limit; a larger cap is lowered to
    it, on a native and on a translated route alike."""
    config = limited_config(config_factory, tmp_path, models_extra={"m": {"max_output_tokens": LIMIT}})
    rs = router_server(config)
    fakes.set("alpha", output_tokens=LONG)
    for body, path in [(CHAT, "/v1/chat/completions"), ({**CHAT, "max_tokens": 5000}, "/v1/chat/completions")]:
        r = rs.post(path, body, headers=auth())
        assert r.status_code == 200, r.text
        sent = fakes.last("alpha", path)
        assert sent is not None and LIMIT in (sent.get("max_completion_tokens"), sent.get("max_tokens"))
        assert r.json()["usage"]["completion_tokens"] == LIMIT
    translated = limited_config(
        config_factory,
        tmp_path,
        models_extra={"m": {"max_output_tokens": LIMIT}},
        formats={"alpha": ["anthropic-messages"]},
    )
    rs = router_server(translated)
    r = rs.post("/v1/responses", RESPONSES, headers=auth())
    assert r.status_code == 200, r.text
    sent = fakes.last("alpha", "/v1/messages")
    assert sent is not None and sent["max_tokens"] == LIMIT
    assert r.json()["usage"]["output_tokens"] == LIMIT


@pytest.mark.parametrize("budget", [0.5, 2.0])
def test_the_overspend_bound_holds_at_the_window_edge_on_two_replicas(
    fakes, config_factory, router_server, tmp_path, redis_server, budget
):
    """60 requests without a cap, 24 at a time, across two routers sharing Redis, against a
    budget that runs out among them; the fake writes as long an answer as it is allowed. The
    ledger's total stays within budget + one reservation (each answer costs at most its
    reservation), where before the cap each answer cost 500 times its reservation."""
    state = {"backend": "redis", "url": redis_server.url, "key_prefix": f"t-{uuid.uuid4().hex[:8]}"}
    config = limited_config(
        config_factory, tmp_path, budget=budget, state=state, models_extra={"m": {"max_output_tokens": LIMIT}}
    )
    replicas: list[RouterServer] = [router_server(config), router_server(config)]
    fakes.set("alpha", output_tokens=LONG, latency_ms=20)
    raw = orjson.dumps(CHAT)
    one_reservation = reserve_usd(LIMIT, len(raw), Price(**PRICE))
    turns = itertools.cycle(replicas)
    targets = [next(turns) for _ in range(60)]

    def call(rs: RouterServer) -> int:
        headers = {**auth(), "content-type": "application/json"}
        return rs.client.post("/v1/chat/completions", content=raw, headers=headers).status_code

    with concurrent.futures.ThreadPoolExecutor(24) as ex:
        statuses = list(ex.map(call, targets))
    assert set(statuses) <= {200, 402} and 402 in statuses and 200 in statuses
    records = [r for r in ledger(tmp_path) if r["status"] == 200]
    assert all(r["output_tokens"] == LIMIT for r in records), "every provider was sent the cap"
    spent = sum(r["cost_usd"] for r in records)
    assert budget - one_reservation <= spent <= budget + one_reservation + 1e-9, (spent, budget, one_reservation)
