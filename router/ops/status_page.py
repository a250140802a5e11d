"""The status page: one self-contained HTML document (inline CSS and JS, no external assets)
that polls `status.json` every 2 s and renders providers (their health state, and why), routes,
models without a usable route, recent failovers and spend.

Its Content-Security-Policy allows exactly its own inline script and style (by hash) and
fetches to its own origin, so nothing it renders from the JSON can run or load anything. The
page writes data only through textContent, never as HTML.

The admin token comes from the URL fragment (`#token=...`: never sent to the server, so never
in an access log) and is then dropped from the address bar and kept in sessionStorage for the
tab; without one, a 401 shows a token form instead (no blocking prompt()).
"""

from __future__ import annotations

import base64
import hashlib

REFRESH_MS = 2000

STYLE = """
:root { font: 14px/1.4 system-ui, sans-serif; color: #1d2330; background: #f6f7f9; }
body { margin: 1.5rem auto; max-width: 72rem; padding: 0 1rem; }
header { display: flex; align-items: baseline; gap: 1rem; }
h1 { font-size: 1.3rem; margin: 0; } h2 { font-size: 1rem; margin: 1.5rem 0 .4rem; }
#state.ok { color: #1a7f37; } #state.bad { color: #c62828; } #meta { color: #667; margin-left: auto; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #e3e6ea; }
th { font-weight: 600; color: #445; background: #eef0f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok, .b-closed { color: #1a7f37; } .bad, .b-open { color: #c62828; font-weight: 600; }
.b-half-open { color: #b26a00; font-weight: 600; }
.bar { display: inline-block; height: .6rem; background: #4a78c2; margin-right: .4rem; vertical-align: middle; }
.empty { color: #889; margin: .3rem 0; }
form { margin: 1rem 0; padding: .8rem; background: #fff3cd; }
"""

SCRIPT = """
"use strict";
const KEY = "router.admin-token";
const $ = (id) => document.getElementById(id);
let timer = null, generation = 0;

function takeToken() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}
const dash = "\\u2013";
const pct = (x) => x == null ? dash : (x * 100).toFixed(1) + " %";
const usd = (x) => x == null ? dash : "$" + x.toFixed(4);
const num = (x, d) => x == null ? dash : x.toFixed(d);
const when = (ts) => ts == null ? dash : new Date(ts * 1000).toLocaleTimeString();
const HEALTH = { healthy: "ok", unhealthy: "bad", unknown: "b-half-open" };

function cell(tr, text, cls) {
  const td = tr.insertCell();
  td.textContent = String(text);
  if (cls) td.className = cls;
  return td;
}
function share(tr, x) {
  const td = cell(tr, "", "num"), bar = document.createElement("span");
  bar.className = "bar";
  bar.style.width = Math.round((x || 0) * 80) + "px";
  td.append(bar, pct(x));
}
function fill(id, rows, draw) {
  const body = $(id).tBodies[0];
  body.replaceChildren();
  for (const row of rows) draw(body.insertRow(), row);
  $(id + "-empty").hidden = rows.length > 0;
}
function render(d) {
  fill("providers", d.providers, (tr, p) => {
    tr.dataset.provider = p.name;
    cell(tr, p.name);
    cell(tr, p.state, HEALTH[p.state] || "");
    cell(tr, p.breaker, "b-" + p.breaker);
    cell(tr, p.inflight, "num");
    share(tr, p.share);
    const probe = p.last_probe;
    cell(tr, p.reason + (probe && probe.latency_ms != null ? " (" + num(probe.latency_ms, 0) + " ms)" : ""));
    cell(tr, when(p.since));
  });
  const down = d.models_unavailable || [];
  $("models-down").hidden = down.length === 0;
  $("models-down").textContent = "no route can take a request now for: " + down.join(", ");
  fill("routes", d.routes, (tr, r) => {
    tr.dataset.route = r.key;
    cell(tr, r.key);
    cell(tr, r.models.join(", "));
    cell(tr, r.available ? "yes" : "no", r.available ? "ok" : "bad");
    cell(tr, r.breaker, "b-" + r.breaker);
    cell(tr, num(r.ewma_ms, 1), "num");
    cell(tr, r.inflight, "num");
    cell(tr, r.cooldown_s > 0 ? num(r.cooldown_s, 1) + " s" : dash, "num");
    share(tr, r.share);
  });
  fill("failovers", d.failovers, (tr, f) => {
    cell(tr, when(f.ts)); cell(tr, f.model); cell(tr, f.route); cell(tr, f.reason);
  });
  fill("plans", d.plans, (tr, p) => {
    tr.dataset.plan = p.name;
    cell(tr, p.name);
    cell(tr, p.keys, "num");
    cell(tr, p.budget_usd == null ? "none" : usd(p.budget_usd) + " / " + num(p.window_s / 3600, 1) + " h", "num");
    cell(tr, usd(p.spent_usd) + (p.unknown_keys ? " (" + p.unknown_keys + " keys unknown)" : ""), "num");
  });
  generation += 1;
  $("meta").textContent = "worker " + d.pid + " \\u00b7 " + d.traffic.requests + " requests in the last " +
    d.traffic.window_s + " s \\u00b7 updated " + when(d.generated_at);
  $("meta").dataset.generation = String(generation);
}
function state(text, cls) { $("state").textContent = text; $("state").className = cls; }

async function tick() {
  clearTimeout(timer);
  const token = sessionStorage.getItem(KEY);
  try {
    const r = await fetch("status.json", {
      cache: "no-store", headers: token ? { authorization: "Bearer " + token } : {},
    });
    if (r.status === 401) {
      state(token ? "admin token refused" : "admin token needed", "bad");
      $("auth").hidden = false;
      return;  // polling resumes when a token is entered
    }
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
    state("live", "ok");
  } catch (e) {
    state("unreachable (" + e.message + "), retrying", "bad");
  }
  timer = setTimeout(tick, REFRESH_MS);
}
$("auth").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $("token").value.trim());
  $("token").value = "";
  $("auth").hidden = true;
  tick();
});
takeToken();
tick();
"""

_SCRIPT = f"const REFRESH_MS = {REFRESH_MS};" + SCRIPT

_BODY = """
<header><h1>router status</h1><span id="state">loading\u2026</span><span id="meta"></span></header>
<form id="auth" hidden><label>Admin token <input id="token" type="password" autocomplete="off"></label>
<button>Show</button></form>
<h2>Providers</h2>
<table id="providers"><thead><tr><th>provider</th><th>health</th><th>breaker</th><th>in flight</th>
<th>share</th><th>why (last probe)</th><th>since</th></tr></thead><tbody></tbody></table>
<p id="providers-empty" class="empty" hidden>none</p><p id="models-down" class="bad" hidden></p>
<h2>Routes</h2>
<table id="routes"><thead><tr><th>route</th><th>models</th><th>available</th><th>breaker</th><th>EWMA ms</th>
<th>in flight</th><th>cooldown</th><th>share</th></tr></thead><tbody></tbody></table>
<p id="routes-empty" class="empty" hidden>none</p>
<h2>Recent failovers</h2>
<table id="failovers"><thead><tr><th>time</th><th>model</th><th>from route</th><th>reason</th></tr></thead>
<tbody></tbody></table><p id="failovers-empty" class="empty">none</p>
<h2>Spend in the current window, by plan</h2>
<table id="plans"><thead><tr><th>plan</th><th>keys</th><th>budget per key</th><th>spent (all keys)</th></tr>
</thead><tbody></tbody></table><p id="plans-empty" class="empty">no plans</p>
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


PAGE = (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    f"<title>router status</title><style>{STYLE}</style></head>\n<body>{_BODY}<script>{_SCRIPT}</script>"
    "</body></html>\n"
).encode()

CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(STYLE)}; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}
