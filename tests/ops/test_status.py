"""router.ops.status: the /status.json document from a real Pool and Limits (memory backend), the
bounded rings behind traffic share and recent failovers, spend per plan, the admin token, and
the page's own headers. No sockets; the page in a browser is tests/integration/test_status_page.py."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import anyio
import orjson
import pytest

from router.billing.auth import Principal, hash_key
from router.billing.limits import Limits
from router.billing.state import MemoryBackend
from router.billing.state.base import LimitSpec, StateUnavailable
from router.clock import ManualClock
from router.config import Config, parse_config
from router.ops import status as status_mod
from router.ops.status import StatusBoard
from router.ops.status_page import PAGE, PAGE_HEADERS
from router.routing.pool import Pool
from router.routing.table import RoutingTable
from router.types import AttemptResult

ADMIN = "admin-s3cret"
PRICE = {"input_per_mtok": 1, "output_per_mtok": 2}


def config(**server: Any) -> Config:
    """Providers a, b; m1 on a and b, m2 on b; plan pro (5 USD per hour) with keys k1, k2, plan
    free (no budget) with key k3."""
    providers = [
        {
            "name": n,
            "base_url": f"http://{n}.invalid",
            "formats": ["openai-chat"],
            "breaker": {"fail_max": 2, "reset_timeout_s": 30},
            "health": {"unhealthy_after": 1},
        }
        for n in ("a", "b")
    ]
    return parse_config(
        {
            "server": server,
            "providers": providers,
            "models": [
                {
                    "name": "m1",
                    "price": PRICE,
                    "routes": [{"provider": "a", "model": "a-m1"}, {"provider": "b", "model": "b-m1"}],
                },
                {"name": "m2", "price": PRICE, "routes": [{"provider": "b", "model": "b-m2"}]},
            ],
            "plans": [
                {"name": "pro", "models": ["*"], "budget": {"usd": 5, "window": "1h"}},
                {"name": "free", "models": ["m2"]},
            ],
            "keys": [
                {"id": f"k{i}", "hash": hash_key(f"toc-key-{i}"), "plan": plan}
                for i, plan in ((1, "pro"), (2, "pro"), (3, "free"))
            ],
        },
        source="test",
        env={},
    )


def board(backend: Any = None, **kw: Any) -> tuple[StatusBoard, Pool, ManualClock, Limits]:
    clock = ManualClock()
    cfg = config(**kw.pop("server", {}))
    pool = Pool(RoutingTable(cfg), clock, half_life_s=10.0)
    limits = Limits(cfg, backend or MemoryBackend(), clock)
    return StatusBoard(pool, limits, cfg, clock, **kw), pool, clock, limits


def snapshot(b: StatusBoard) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        return await b.snapshot()

    return anyio.run(go)


def by(rows: list[dict[str, Any]], field: str) -> dict[str, dict[str, Any]]:
    return {r[field]: r for r in rows}


def test_document_shape_from_the_pool() -> None:
    b, pool, clock, _ = board()
    a1 = pool.routes["a/a-m1"]
    for _ in range(2):
        lease = pool.acquire(a1)
        assert lease is not None
        lease.finish(AttemptResult.FAILURE)
    assert pool.acquire(pool.routes["b/b-m2"]) is not None  # held: in flight
    pool.routes["b/b-m1"].ewma.observe(0.0421)
    doc = snapshot(b)
    assert set(doc) == {
        "generated_at",
        "pid",
        "traffic",
        "providers",
        "routes",
        "models",
        "models_unavailable",
        "failovers",
        "plans",
        "keys",
    }
    assert doc["generated_at"] == round(clock.wall(), 3)
    providers = by(doc["providers"], "name")
    assert list(providers) == ["a", "b"]
    assert providers["a"] == {
        "name": "a",
        "state": "unknown",
        "reason": "not probed yet",
        "since": round(clock.wall(), 3),
        "assumed": False,
        "last_probe": None,
        "healthy": True,
        "probed": False,
        "breaker": "open",
        "inflight": 0,
        "served": 0,
        "share": 0.0,
        "routes": ["a/a-m1"],
    }
    assert providers["b"]["inflight"] == 1 and providers["b"]["routes"] == ["b/b-m1", "b/b-m2"]
    routes = by(doc["routes"], "key")
    assert routes["a/a-m1"]["breaker"] == "open" and routes["a/a-m1"]["available"] is False
    assert routes["b/b-m1"] == {
        "key": "b/b-m1",
        "provider": "b",
        "upstream_model": "b-m1",
        "models": ["m1"],
        "available": True,
        "breaker": "closed",
        "ewma_ms": 42.1,
        "inflight": 0,
        "cooldown_s": 0.0,
        "served": 0,
        "share": 0.0,
    }
    assert routes["b/b-m2"]["ewma_ms"] is None and routes["b/b-m2"]["inflight"] == 1
    assert doc["models"] == {"m1": 1, "m2": 1}
    assert doc["traffic"] == {"window_s": 60.0, "max_requests": 1000, "requests": 0}
    orjson.dumps(doc)  # JSON all the way down


def test_share_of_recent_traffic() -> None:
    b, _, clock, _ = board()
    for key in ["a/a-m1"] * 3 + ["b/b-m1", "b/b-m2", "b/b-m2", "gone/route"]:
        b.note_served(key)
    doc = snapshot(b)
    routes, providers = by(doc["routes"], "key"), by(doc["providers"], "name")
    assert doc["traffic"]["requests"] == 7
    assert (routes["a/a-m1"]["served"], routes["a/a-m1"]["share"]) == (3, round(3 / 7, 4))
    assert routes["b/b-m2"]["share"] == round(2 / 7, 4)
    assert (providers["b"]["served"], providers["b"]["share"]) == (3, round(3 / 7, 4))
    clock.advance(59.0)
    b.note_served("b/b-m1")
    clock.advance(2.0)  # the first seven are now older than the window
    doc = snapshot(b)
    assert doc["traffic"]["requests"] == 1
    assert by(doc["routes"], "key")["b/b-m1"]["share"] == 1.0
    assert by(doc["routes"], "key")["a/a-m1"]["share"] == 0.0


def test_rings_are_bounded() -> None:
    b, _, clock, _ = board(recent_requests=10, recent_failovers=3)
    for i in range(25):
        b.note_served("a/a-m1" if i < 20 else "b/b-m1")
        b.note_failover("m1", "a/a-m1", f"status_50{i % 4}")
        clock.advance(0.5)
    assert len(b._served) == 10 and len(b._failovers) == 3
    doc = snapshot(b)
    assert doc["traffic"] == {"window_s": 60.0, "max_requests": 10, "requests": 10}
    assert by(doc["routes"], "key")["b/b-m1"]["served"] == 5
    failovers = doc["failovers"]
    assert [f["reason"] for f in failovers] == ["status_500", "status_503", "status_502"]  # newest first
    newest = {"ts": round(clock.wall() - 0.5, 3), "model": "m1", "route": "a/a-m1", "reason": "status_500"}
    assert failovers[0] == newest


def test_attempts_and_continuations_feed_the_board() -> None:
    """The observer feed: a served attempt counts as traffic, a failed one and a continued stream
    show in the recent failovers."""
    from router.observe import Attempt

    b, _, _, _ = board()
    b.attempt(Attempt("m1", "a/a-m1", "a", "5xx", failover="status_503"))
    b.attempt(Attempt("m1", "b/b-m1", "b", "ok", served=True))
    b.continuation("m1", "upstream_reset", "ok")
    doc = snapshot(b)
    assert by(doc["routes"], "key")["b/b-m1"]["served"] == 1
    reasons = [(f["route"], f["reason"]) for f in doc["failovers"]]
    assert reasons == [("(stream)", "continued after upstream_reset: ok"), ("a/a-m1", "status_503")]


def test_spend_per_plan_and_key() -> None:
    b, _, clock, limits = board()
    cfg = config()

    async def spend(key_id: str, cost: float) -> None:
        grant = await limits.admit(Principal(key_id, cfg.plan("pro"), frozenset()), f"r-{key_id}", 2.0)
        await limits.settle(grant, cost)

    anyio.run(spend, "k1", 1.25)
    doc = snapshot(b)
    plans, keys = by(doc["plans"], "name"), by(doc["keys"], "id")
    assert plans["pro"] == {
        "name": "pro",
        "keys": 2,
        "budget_usd": 5.0,
        "window_s": 3600.0,
        "spent_usd": 1.25,
        "unknown_keys": 0,
    }
    assert plans["free"] == {
        "name": "free",
        "keys": 1,
        "budget_usd": None,
        "window_s": None,
        "spent_usd": None,
        "unknown_keys": 0,
    }
    assert keys["k1"]["spent_usd"] == 1.25 and keys["k1"]["remaining_usd"] == 3.75
    assert keys["k1"]["window_end"] == round(clock.wall() + 3600, 3)
    assert keys["k2"]["spent_usd"] == 0.0 and "k3" not in keys  # no budget: no window to show
    anyio.run(spend, "k2", 0.5)
    assert by(snapshot(b)["plans"], "name")["pro"]["spent_usd"] == 1.25  # cached for SPEND_TTL_S
    clock.advance(status_mod.SPEND_TTL_S)
    assert by(snapshot(b)["plans"], "name")["pro"]["spent_usd"] == 1.75


class _DownBackend(MemoryBackend):
    async def status(self, key_id: str, spec: LimitSpec, now: float) -> tuple[float | None, float | None]:
        raise StateUnavailable("redis is down")


class _HangingBackend(MemoryBackend):
    async def status(self, key_id: str, spec: LimitSpec, now: float) -> tuple[float | None, float | None]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


@pytest.mark.parametrize("backend", [_DownBackend(), _HangingBackend()], ids=["down", "hanging"])
def test_spend_unknown_when_the_state_store_fails(backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page still answers, in bounded time, with the spend marked unknown."""
    monkeypatch.setattr(status_mod, "SPEND_TIMEOUT_S", 0.2)
    b, _, _, _ = board(backend)

    async def bounded() -> dict[str, Any]:
        with anyio.fail_after(5):
            return await b.snapshot()

    doc = anyio.run(bounded)
    pro = by(doc["plans"], "name")["pro"]
    assert (pro["spent_usd"], pro["unknown_keys"]) == (0, 2)
    assert all(k["spent_usd"] is None for k in doc["keys"])


def test_admin_token_guards_the_data_not_the_page() -> None:
    b, _, _, _ = board(server={"admin_token": hash_key(ADMIN)})

    async def render(authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        return await b.render_json(authorization)

    for bad in (None, "Bearer nope", f"Basic {ADMIN}", ADMIN):
        status, headers, body = anyio.run(render, bad)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer") and b"providers" not in body
    status, headers, body = anyio.run(render, f"Bearer {ADMIN}")
    assert status == 200 and headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    assert [p["name"] for p in orjson.loads(body)["providers"]] == ["a", "b"]
    status, headers, page = b.render_page()
    assert status == 200 and page == PAGE and headers["content-type"].startswith("text/html")
    assert b'"a/a-m1"' not in page  # static: no data in the page itself
    open_board, _, _, _ = board()
    assert anyio.run(open_board.render_json, None)[0] == 200


def test_page_is_self_contained_and_its_csp_matches_its_inline_code() -> None:
    html = PAGE.decode()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no external assets
    assert html.count("<script>") == 1 and html.count("<style>") == 1
    csp = PAGE_HEADERS["content-security-policy"]
    for tag in ("script", "style"):
        inline = html.split(f"<{tag}>", 1)[1].split(f"</{tag}>", 1)[0]
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in csp
    assert "connect-src 'self'" in csp and "default-src 'none'" in csp
    assert "status.json" in html and "Bearer" in html and "#token=" not in html.split("<script>")[0]


def test_reconfigure_keeps_the_rings() -> None:
    b, _, clock, _ = board()
    b.note_served("a/a-m1")
    b.note_failover("m1", "a/a-m1", "status_503")
    cfg = config(admin_token=hash_key(ADMIN))
    pool = Pool(RoutingTable(cfg), clock, half_life_s=10.0)
    b.reconfigure(cfg, pool, Limits(cfg, MemoryBackend(), clock))
    assert anyio.run(b.render_json, None)[0] == 401
    doc = orjson.loads(anyio.run(b.render_json, f"Bearer {ADMIN}")[2])
    assert doc["traffic"]["requests"] == 1 and len(doc["failovers"]) == 1
    assert b.pool is pool
