"""The status page in a real headless Chromium: it renders, shows the config's providers, routes
and plans, updates itself after traffic, and takes the admin token from the URL fragment or
its form.

The page and its data come from the real `StatusBoard` over a real Pool and Limits, served by a
small Starlette app built here (`Site`), since the router's own /status routes are wired
elsewhere. To run these against the router instead, point `Site.url` at it and make traffic
through it where `traffic()` pokes the pool.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from router.auth import Principal, hash_key
from router.clock import ManualClock
from router.config import Config, parse_config
from router.limits import Limits
from router.routing.breaker import AttemptResult
from router.routing.pool import Pool
from router.routing.table import RoutingTable
from router.state import MemoryBackend
from router.status import SPEND_TTL_S, StatusBoard
from router.threaded import ThreadedServer
from tests.integration.chromium import Page, browser_page

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

ADMIN = "admin-" + "z" * 30
PROVIDERS = ["alpha", "beta", "gamma"]
EXPECTED_NAMES = json.dumps(PROVIDERS, separators=(",", ":"))  # as JSON.stringify writes it
PRICE = {"input_per_mtok": 1, "output_per_mtok": 2}

# JavaScript read-outs of what the page shows.
PROVIDER_NAMES = "[...document.querySelectorAll('#providers tbody tr')].map(r => r.dataset.provider)"
STATE = "document.getElementById('state').textContent"
GENERATION = "Number(document.getElementById('meta').dataset.generation || 0)"


def cells(table: str, key_attr: str, key: str) -> str:
    """The texts of the cells of the row whose data-`key_attr` is `key`, or null."""
    return (
        f"(() => {{ const r = [...document.querySelectorAll('#{table} tbody tr')]"
        f".find(r => r.dataset.{key_attr} === {key!r});"
        " return r ? [...r.cells].map(c => c.textContent) : null; })()"
    )


def site_config(admin_token: str | None) -> Config:
    return parse_config({
        "server": {"admin_token": admin_token} if admin_token else {},
        "providers": [{"name": n, "base_url": f"http://{n}.invalid", "formats": ["openai-chat"],
                       "breaker": {"fail_max": 2, "reset_timeout_s": 30}} for n in PROVIDERS],
        "models": [
            {"name": "m", "price": PRICE,
             "routes": [{"provider": "alpha", "model": "alpha-m"}, {"provider": "beta", "model": "beta-m"}]},
            {"name": "m2", "price": PRICE, "routes": [{"provider": "gamma", "model": "gamma-m2"}]},
        ],
        "plans": [{"name": "pro", "models": ["*"], "budget": {"usd": 5, "window": "1h"}}],
        "keys": [{"id": "acme", "hash": hash_key("toc-acme-key"), "plan": "pro"}],
    }, source="test", env={})  # fmt: skip


class Site:
    """The page and /status.json from a StatusBoard, on a real socket."""

    def __init__(self, admin_token: str | None) -> None:
        self.config = site_config(None if admin_token is None else hash_key(admin_token))
        self.clock = ManualClock()
        self.pool = Pool(RoutingTable(self.config), self.clock, half_life_s=10.0)
        self.limits = Limits(self.config, MemoryBackend(), self.clock)
        self.board = StatusBoard(self.pool, self.limits, self.config, self.clock)
        self.authorizations: list[str | None] = []

        async def page(request: Request) -> Response:
            status, headers, body = self.board.render_page()
            return Response(body, status, headers=headers)

        async def data(request: Request) -> Response:
            auth = request.headers.get("authorization")
            self.authorizations.append(auth)
            status, headers, body = await self.board.render_json(auth)
            return Response(body, status, headers=headers)

        app = Starlette(routes=[Route("/status", page), Route("/status.json", data)])
        self.server = ThreadedServer(app, lifespan="off").start()
        self.url = self.server.url

    async def traffic(self) -> None:
        """What a burst of real traffic leaves behind: requests served (mostly by beta), alpha's
        breaker opened by two failures, a failover, and spend on the pro plan."""
        for key in ["beta/beta-m"] * 3 + ["gamma/gamma-m2"]:
            self.board.note_served(key)
        alpha = self.pool.routes["alpha/alpha-m"]
        for _ in range(2):
            lease = self.pool.acquire(alpha)
            assert lease is not None
            lease.finish(AttemptResult.FAILURE)
            self.board.note_failover("m", "alpha/alpha-m", "status_503")
        grant = await self.limits.admit(Principal("acme", self.config.plan("pro"), frozenset()), "r1", 2.0)
        await self.limits.settle(grant, 1.25)
        self.clock.advance(SPEND_TTL_S)  # past the spend cache


@pytest.fixture
def site() -> Iterator[Callable[..., Site]]:
    started: list[Site] = []

    def start(admin_token: str | None = None) -> Site:
        s = Site(admin_token)
        started.append(s)
        return s

    yield start
    for s in started:
        s.server.stop()


async def shows_the_config(page: Page) -> None:
    await page.wait_for(f"JSON.stringify({PROVIDER_NAMES}) === {json.dumps(EXPECTED_NAMES)}")
    assert await page.evaluate(STATE) == "live"
    for name in PROVIDERS:
        row = await page.evaluate(cells("providers", "provider", name))
        assert row[:4] == [name, "healthy", "closed", "0"], row
    routes = await page.evaluate("[...document.querySelectorAll('#routes tbody tr')].map(r => r.dataset.route)")
    assert routes == ["alpha/alpha-m", "beta/beta-m", "gamma/gamma-m2"]
    assert await page.evaluate(cells("plans", "plan", "pro")) == ["pro", "1", "$5.0000 / 1.0 h", "$0.0000"]
    assert await page.evaluate("document.getElementById('failovers-empty').hidden") is False


async def test_page_renders_the_providers_and_updates_after_traffic(site: Callable[..., Site]) -> None:
    s = site()
    async with browser_page() as page:
        await page.navigate(f"{s.url}/status")
        await shows_the_config(page)
        before = await page.evaluate(GENERATION)
        await s.traffic()
        # The page polls every 2 s: the next poll shows what the traffic did.
        await page.wait_for(cells("providers", "provider", "alpha") + "?.[2] === 'open'", timeout=8)
        assert (await page.evaluate(cells("routes", "route", "alpha/alpha-m")))[2:4] == ["no", "open"]
        beta = await page.evaluate(cells("providers", "provider", "beta"))
        assert beta[1:3] == ["healthy", "closed"] and beta[4] == "75.0 %"
        failovers = await page.evaluate(
            "[...document.querySelectorAll('#failovers tbody tr')].map(r => r.cells[3].textContent)"
        )
        assert failovers == ["status_503", "status_503"]
        assert await page.evaluate("document.getElementById('failovers-empty').hidden") is True
        assert (await page.evaluate(cells("plans", "plan", "pro")))[3] == "$1.2500"
        assert await page.evaluate(GENERATION) > before
        # And it keeps polling: a third state shows up too.
        s.pool.providers["gamma"].health.record(False)
        s.pool.providers["gamma"].health.record(False)
        await page.wait_for(cells("providers", "provider", "gamma") + "?.[1] === 'down'", timeout=8)
    assert len(s.authorizations) >= 3 and set(s.authorizations) == {None}


async def test_admin_token_from_the_fragment_or_the_form(site: Callable[..., Site]) -> None:
    s = site(admin_token=ADMIN)
    async with browser_page() as page:
        await page.navigate(f"{s.url}/status#token={ADMIN}")
        await shows_the_config(page)
        assert await page.evaluate("location.hash") == ""  # dropped from the address bar
        assert set(s.authorizations) == {f"Bearer {ADMIN}"}

        # A new visit without the fragment, in a tab that never had the token: the form.
        await page.evaluate("sessionStorage.clear()")
        await page.navigate(f"{s.url}/status")
        await page.wait_for(f"{STATE} === 'admin token needed'")
        assert await page.evaluate("document.getElementById('auth').hidden") is False
        assert await page.evaluate(PROVIDER_NAMES) == []

        await submit_token(page, "wrong")
        await page.wait_for(f"{STATE} === 'admin token refused'")
        await submit_token(page, ADMIN)
        await shows_the_config(page)
        assert await page.evaluate("document.getElementById('auth').hidden") is True
    assert s.authorizations[-1] == f"Bearer {ADMIN}" and "Bearer wrong" in s.authorizations


async def submit_token(page: Page, token: str) -> Any:
    await page.wait_for("!document.getElementById('auth').hidden")
    return await page.evaluate(
        f"document.getElementById('token').value = {token!r}; document.getElementById('auth').requestSubmit(); true"
    )
