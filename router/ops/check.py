"""What `router check` says beyond validating the file: base URLs that will double their `/v1`,
and (`--probe`) each provider's health probe sent once, as a table.

The probe is the running router's own (`upstream.probe`: the same request, bounded by the
provider's `health.timeout_s` as the probe loop bounds it), so what the table says is what the router's
probes will find from this host.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.config import Config
from router.formats import wire
from router.log import mask_urls
from router.upstream.probe import ProbeResult, probe_each, probe_url


def base_url_warnings(config: Config) -> list[str]:
    """A base_url ending in /v1: the router appends the API path (/v1/chat/completions, ...) itself."""
    out = []
    for i, p in enumerate(config.providers):
        if p.base_url.rstrip("/").endswith("/v1"):
            url = mask_urls(p.base_url + wire(p.formats[0]).path)
            out.append(f"providers[{i}].base_url ends in /v1: requests will go to {url}")
    return out


@dataclass(frozen=True, slots=True)
class ProbeRow:
    provider: str
    url: str  # as fit for a terminal: no credentials
    result: ProbeResult | None  # None: probes disabled, not sent


async def probe_all(config: Config) -> list[ProbeRow]:
    """Every provider's probe once, all at the same time (the whole takes the longest timeout)."""
    found = await probe_each([p for p in config.providers if p.health.enabled])
    return [ProbeRow(p.name, mask_urls(probe_url(p)), found.get(p.name)) for p in config.providers]


def probe_table(rows: list[ProbeRow]) -> tuple[bool, list[str]]:
    """(every probed provider reachable, the table's lines). Reachable: the probe passed, as the
    router counts it (below 400, or 429); a 401 is reachable in network terms, and still a failure."""
    cells = [("provider", "url", "reachable", "status", "latency ms", "reason")]
    all_ok = True
    for row in rows:
        r = row.result
        if r is None:
            cells.append((row.provider, row.url, "-", "-", "-", "skipped: health.enabled is false"))
            continue
        all_ok = all_ok and r.ok
        status = "-" if r.status is None else str(r.status)
        latency = "-" if r.latency_s is None else f"{r.latency_s * 1000:.1f}"
        cells.append((row.provider, row.url, "yes" if r.ok else "no", status, latency, r.reason))
    # columns as wide as their longest entry (as the routing table's): long names and URLs keep it aligned
    name_w, url_w = (max(len(c[i]) for c in cells) for i in (0, 1))
    lines = [f"{p:<{name_w}}  {u:<{url_w}}  {ok:<9} {st:>6} {ms:>10}  {why}" for p, u, ok, st, ms, why in cells]
    return all_ok, lines
