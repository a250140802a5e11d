"""The status page in a real headless Chromium against a running router: it renders, shows the
config's providers, routes and plans, updates itself after real traffic (a failover, a changed
share, a breaker opening), and takes the admin token from the URL fragment or its form.

The router runs on a real socket (`router_server`) in front of the fake providers (`fakes`);
traffic goes through it to /v1/chat/completions, and the page polls /status.json every 2 s.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from router.billing.auth import hash_key
from router.config import Config
from tests.conftest import CHAT, ConfigFactory, Fakes, RouterServer
from tests.integration.chromium import Page, browser_page

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

ADMIN = "admin-" + "z" * 30
KEY = "toc-acme-key"
PROVIDERS = ["alpha", "beta", "gamma"]
EXPECTED_NAMES = json.dumps(sorted(PROVIDERS), separators=(",", ":"))  # as JSON.stringify writes it
PRICE = {"input_per_mtok": 100, "output_per_mtok": 200}
POLL_S = 8  # the page polls every 2 s; room for a slow poll on busy cores

# JavaScript read-outs of what the page shows.
PROVIDER_NAMES = "[...document.querySelectorAll('#providers tbody tr')].map(r => r.dataset.provider)"
ROUTES = "[...document.querySelectorAll('#routes tbody tr')].map(r => r.dataset.route)"
FAILOVER_ROUTES_REASONS = (
    "[...document.querySelectorAll('#failovers tbody tr')].map(r => [r.cells[2].textContent, r.cells[3].textContent])"
)
STATE = "document.getElementById('state').textContent"
GENERATION = "Number(document.getElementById('meta').dataset.generation || 0)"


def cells(table: str, key_attr: str, key: str) -> str:
    """The texts of the cells of the row whose data-`key_attr` is `key`, or null."""
    return (
        f"(() => {{ const r = [...document.querySelectorAll('#{table} tbody tr')]"
        f".find(r => r.dataset.{key_attr} === {key!r});"
        " return r ? [...r.cells].map(c => c.textContent) : null; })()"
    )


def status_config(config_factory: ConfigFactory, admin_token: str | None = None) -> Config:
    """beta first for `m` (alpha behind it), gamma alone for `m2`; beta's breaker opens after 2 failures."""
    return config_factory(
        routes={"m": [("beta", 0), ("alpha", 1)], "m2": [("gamma", 0)]},
        breaker={"fail_max": 2, "reset_timeout_s": 30},
        prices={"m": PRICE, "m2": PRICE},
        plans=[{"name": "pro", "models": ["*"], "budget": {"usd": 5, "window": "1h"}}],
        keys=[{"id": "acme", "hash": hash_key(KEY), "plan": "pro"}],
        server={"admin_token": hash_key(admin_token)} if admin_token else None,
    )


async def chat(rs: RouterServer, model: str) -> httpx.Response:
    """One chat completion through the router, off the event loop (the CDP socket lives there)."""
    body = {**CHAT, "model": model}
    headers = {"authorization": f"Bearer {KEY}"}
    with anyio.fail_after(15):
        return await anyio.to_thread.run_sync(lambda: rs.post("/v1/chat/completions", json=body, headers=headers))


async def shows_the_config(page: Page) -> None:
    await page.wait_for(f"JSON.stringify({PROVIDER_NAMES}.sort()) === {json.dumps(EXPECTED_NAMES)}")
    assert await page.evaluate(STATE) == "live"
    for name in PROVIDERS:
        row = await page.evaluate(cells("providers", "provider", name))
        assert row[:4] == [name, "healthy", "closed", "0"], row
    assert sorted(await page.evaluate(ROUTES)) == ["alpha/alpha-m", "beta/beta-m", "gamma/gamma-m2"]
    assert await page.evaluate(cells("plans", "plan", "pro")) == ["pro", "1", "$5.0000 / 1.0 h", "$0.0000"]
    assert await page.evaluate("document.getElementById('failovers-empty').hidden") is False


async def test_page_renders_the_providers_and_updates_after_traffic(
    fakes: Fakes, config_factory: ConfigFactory, router_server: Any
) -> None:
    rs: RouterServer = router_server(status_config(config_factory))
    async with browser_page() as page:
        await page.navigate(f"{rs.url}/status")
        await shows_the_config(page)
        before = await page.evaluate(GENERATION)

        # Healthy traffic: beta serves `m`, gamma `m2`.
        for model, provider in [("m", "beta")] * 3 + [("m2", "gamma")]:
            r = await chat(rs, model)
            assert r.status_code == 200 and r.headers["x-router-provider"] == provider, r.text
        await page.wait_for(cells("providers", "provider", "beta") + "?.[4] === '75.0 %'", timeout=POLL_S)
        assert (await page.evaluate(cells("providers", "provider", "gamma")))[4] == "25.0 %"
        assert (await page.evaluate(cells("providers", "provider", "alpha")))[4] == "0.0 %"
        assert await page.evaluate("document.getElementById('failovers-empty').hidden") is False
        assert await page.evaluate(GENERATION) > before

        # beta fails: requests fail over to alpha, and beta's breaker opens after two failures.
        fakes.set("beta", status=503)
        served_by_alpha = fakes.served("alpha")
        for _ in range(4):
            r = await chat(rs, "m")
            assert r.status_code == 200 and r.headers["x-router-provider"] == "alpha", r.text
        assert fakes.served("alpha") - served_by_alpha == 4
        await page.wait_for(cells("providers", "provider", "beta") + "?.[2] === 'open'", timeout=POLL_S)
        assert (await page.evaluate(cells("routes", "route", "beta/beta-m")))[3] == "open"
        alpha = await page.evaluate(cells("providers", "provider", "alpha"))
        assert alpha[2] == "closed" and alpha[4] == "50.0 %", alpha  # 4 of the 8 served
        assert (await page.evaluate(cells("providers", "provider", "beta")))[4] == "37.5 %"
        failovers = await page.evaluate(FAILOVER_ROUTES_REASONS)
        assert failovers and all(f == ["beta/beta-m", "status_503"] for f in failovers), failovers
        assert await page.evaluate("document.getElementById('failovers-empty').hidden") is True
        # The spend of the acme key shows on its plan (the spend cache lives 2 s: a poll or two).
        await page.wait_for(cells("plans", "plan", "pro") + "?.[3] !== '$0.0000'", timeout=POLL_S)


async def test_admin_token_from_the_fragment_or_the_form(
    fakes: Fakes, config_factory: ConfigFactory, router_server: Any
) -> None:
    rs: RouterServer = router_server(status_config(config_factory, admin_token=ADMIN))
    # The router itself refuses the data without the token: the page can only show it by sending it.
    assert rs.client.get("/status.json").status_code == 401
    assert rs.client.get("/status.json", headers={"authorization": f"Bearer {ADMIN}"}).status_code == 200
    async with browser_page() as page:
        await page.navigate(f"{rs.url}/status#token={ADMIN}")
        await shows_the_config(page)
        assert await page.evaluate("location.hash") == ""  # dropped from the address bar

        # A new visit without the fragment, in a tab that never had the token: the form.
        await page.evaluate("sessionStorage.clear()")
        await page.navigate(f"{rs.url}/status")
        await page.wait_for(f"{STATE} === 'admin token needed'")
        assert await page.evaluate("document.getElementById('auth').hidden") is False
        assert await page.evaluate(PROVIDER_NAMES) == []

        await submit_token(page, "wrong")
        await page.wait_for(f"{STATE} === 'admin token refused'")
        await submit_token(page, ADMIN)
        await shows_the_config(page)
        assert await page.evaluate("document.getElementById('auth').hidden") is True


async def submit_token(page: Page, token: str) -> Any:
    await page.wait_for("!document.getElementById('auth').hidden")
    return await page.evaluate(
        f"document.getElementById('token').value = {token!r}; document.getElementById('auth').requestSubmit(); true"
    )
