"""The soak's readings and report (benchmarks/soak.py): the router's memory and descriptors
sampled from /proc, the ledger checked against the budgets' view in Redis, the router log's
errors, the verdicts, the tables and the chart."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _abuse import SLOW_KINDS, CaseResult, SlowConn
from _common import open_fds, process_tree, tcp_sockets, vm_hwm_mib, vm_rss_mib
from _report import markdown_table, meta_line, percentile, pyplot, save_chart

SAMPLE_S = 0.5
REDIS_GRACE_S = 1.0  # after Redis is back, Redis errors are no longer expected
_KINDS = ("clients", "upstream", "redis", "listen", "other")


class Sampler:
    """RSS and open descriptors of the router's process tree; sockets sorted by peer: client
    connections (to the router's port), upstream (to a fake), Redis, the listening socket, other."""

    def __init__(self, pid: int, port: int, upstream_ports: set[int], redis_port: int) -> None:
        self.pid, self.port, self.upstream, self.redis = pid, port, upstream_ports, redis_port
        self.samples: list[dict[str, Any]] = []
        self.marks: list[tuple[float, str]] = []

    def sample(self, t: float) -> dict[str, Any]:
        tree = process_tree(self.pid)
        tcp = tcp_sockets()
        fds: Counter[str] = Counter()
        close_wait: Counter[str] = Counter()  # the peer has closed, the router has not (yet)
        for pid in tree:
            for target in open_fds(pid):
                kind, state = "other", ""
                if target.startswith("socket:[") and (sock := tcp.get(int(target[8:-1]))) is not None:
                    local, remote, state = sock
                    if state == "LISTEN":
                        kind = "listen"
                    elif local == self.port:
                        kind = "clients"
                    elif remote in self.upstream:
                        kind = "upstream"
                    elif remote == self.redis:
                        kind = "redis"
                fds[kind] += 1
                close_wait[kind] += state == "CLOSE_WAIT"
        counts = {k: fds[k] for k in _KINDS}
        return {
            "t": round(t, 2),
            "rss_mib": round(sum(vm_rss_mib(p) for p in tree), 1),
            "hwm_mib": round(max(vm_hwm_mib(p) for p in tree), 1),
            "fds": {"total": sum(counts.values()), **counts},
            "close_wait": {k: close_wait[k] for k in _KINDS if close_wait[k]},
        }

    async def run(self, start_at: float) -> None:
        while True:
            self.samples.append(self.sample(time.monotonic() - start_at))
            await asyncio.sleep(SAMPLE_S)

    def mark(self, t: float, label: str) -> None:
        self.marks.append((round(t, 2), label))


def _micros(usd: float) -> int:
    """USD to micro-USD as the router settles it (router/billing/state/base.py: up, float noise aside)."""
    micros = usd * 1_000_000
    nearest = round(micros)
    return nearest if abs(micros - nearest) <= 1e-6 else math.ceil(micros)


def _epoch(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def read_log(path: Path | None) -> list[dict[str, Any]]:
    """The router's JSON log lines; anything else (a traceback, uvicorn's text) as {"text": line}."""
    out: list[dict[str, Any]] = []
    text = path.read_text(errors="replace") if path else ""
    for line in text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            doc = None
        out.append(doc if isinstance(doc, dict) else {"text": line})
    return out


def redis_view(url: str, keys: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """The budget hash the router keeps per key (router/billing/state/redis/backend.py), in micro-USD."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        out = {}
        for key in keys:
            start, spent, reserved = client.hmget(f"router:{{{key}}}:budget", ["start", "spent", "reserved"])
            out[key] = {"window": int(start is not None), "spent": int(spent or 0), "reserved": int(reserved or 0)}
        return out
    finally:
        client.close()


def ledger_check(raw: dict[str, Any], log: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    """Per key: the ledger's total against Redis's spend. A request whose life overlapped Redis's
    outage (from the stop until the router logged state_recovered) may be uncounted (fail_open:
    admitted uncounted, or its settle lost), so for a key with such requests the spend must lie
    between the ledger without them and the whole ledger; for any other key it must be equal."""
    flips = [_epoch(d["timestamp"]) for d in log if d.get("event") in ("state_recovered", "state_unavailable")]
    t0 = raw["redis"]["stop_wall"] - 0.05
    t1 = max([raw["redis"]["up_wall"], *(t for t in flips if t > t0)]) + 0.05
    life = {
        d["request_id"]: (_epoch(d["timestamp"]) - d.get("total_ms", 0) / 1000, _epoch(d["timestamp"]))
        for d in log
        if d.get("event") == "request" and "request_id" in d and "timestamp" in d
    }
    lines = [json.loads(ln) for ln in raw["ledger"].read_text().splitlines() if ln.strip()]
    view = redis_view(raw["redis_url"], keys)
    out: dict[str, Any] = {"outage_s": round(t1 - t0, 2), "keys": {}}
    for key in keys:
        mine = [rec for rec in lines if rec.get("key") == key]
        touched = [
            rec
            for rec in mine
            if (span := life.get(rec["request_id"], (float(rec["ts"]) - 60, float(rec["ts"]))))[0] <= t1
            and span[1] >= t0
        ]
        total, near = sum(_micros(r["cost_usd"]) for r in mine), sum(_micros(r["cost_usd"]) for r in touched)
        spent = view[key]["spent"]
        ok = spent == total if not touched else total - near <= spent <= total
        out["keys"][key] = {
            "lines": len(mine),
            "lines_200": sum(1 for r in mine if r.get("status") == 200),
            "statuses": dict(Counter(str(r.get("status")) for r in mine)),
            "ledger_micros": total,
            "ledger_usd": round(sum(float(r["cost_usd"]) for r in mine), 8),
            "touched_outage": len(touched),
            "touched_micros": near,
            "redis_spent_micros": spent,
            "redis_reserved_micros": view[key]["reserved"],
            "difference_micros": total - spent,
            "ok": ok,
        }
    return out


def analyse(raw: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    reqs = raw["requests"]
    recs = raw["result"]["records"]  # start, lat, ttfb, status, provider, attempts, stream, ok, index
    kinds: dict[str, dict[str, Any]] = {}
    for r in recs:
        q = reqs[r[8]]
        name = f"{q['path'].rsplit('/', 1)[1]}{' stream' if q['body'].get('stream') else ''}"
        k = kinds.setdefault(name, {"sent": 0, "errors": 0, "statuses": Counter(), "lat": [], "failed_over": 0})
        k["sent"] += 1
        k["errors"] += not r[7]
        k["statuses"][str(r[3])] += 1
        k["failed_over"] += r[5] > 1
        if r[7]:
            k["lat"].append(r[1] * 1000)
    for k in kinds.values():
        lat = sorted(k.pop("lat"))
        k.update(p50_ms=percentile(lat, 50), p99_ms=percentile(lat, 99), max_ms=lat[-1] if lat else math.nan)
        k["statuses"] = dict(k["statuses"])
    acct_errors = sum(n for s, n in raw["acct"].items() if s != "200")
    bad: dict[str, CaseResult] = raw["bad"]
    slow: list[SlowConn] = raw["slow"]
    slow_kinds = {}
    for kind in SLOW_KINDS:
        conns = [c for c in slow if c.kind == kind]
        closed = sorted(c.held_s for c in conns if c.closed_by_router)
        slow_kinds[kind] = {
            "connections": len(conns),
            "closed_by_router": len(closed),
            "closed_after_s": [round(x, 2) for x in (closed[0], percentile(closed, 50), closed[-1])]
            if closed
            else None,
            "answers": dict(Counter(str(c.answer) for c in conns if c.answer is not None)),
        }
    log = read_log(raw["router_log"])
    levels = Counter(
        f"{d.get('level')} {d.get('event')}" for d in log if d.get("level") in ("warning", "error", "critical")
    )
    # Redis errors are due while it is down (and for a moment after: a connection's first use);
    # later ones are not
    t_stop, t_up = raw["redis"]["stop_wall"], raw["redis"]["up_wall"] + REDIS_GRACE_S
    down = [d for d in log if d.get("event") == "state_unavailable"]
    expected = [d for d in down if t_stop <= _epoch(d["timestamp"]) <= t_up]
    late = [round(_epoch(d["timestamp"]) - raw["redis"]["up_wall"], 2) for d in down if _epoch(d["timestamp"]) > t_up]
    unexpected = [
        d.get("text") or json.dumps(d)
        for d in log
        if (d.get("level") in ("error", "critical") or "Traceback" in d.get("text", "")) and d not in expected
    ]
    samples = raw["samples"] + [raw["final"]]
    base, final = raw["baseline"], raw["final"]
    client_200 = {
        "good": sum(1 for r in recs if r[3] == 200),
        "acct": raw["acct"].get("200", 0),
        "bad": sum(r.ok_200 for r in bad.values()),
        "slow": sum(1 for c in slow if c.answer == 200),
    }
    ledger = ledger_check(raw, log, keys)
    for key, v in ledger["keys"].items():
        v["client_200"] = client_200.get(key, 0)
    return {
        "events": raw["events"],
        "redis_restart": raw["redis"],
        "well_behaved": {
            "requests": len(recs) + sum(raw["acct"].values()),
            "errors": sum(1 for r in recs if not r[7]) + acct_errors,
            "by_kind": kinds,
            "acct": raw["acct"],
            "loadgen_exceptions": raw["result"]["errors"],
            "failures": raw["result"].get("failures", []),
        },
        "bad_input": {
            name: {
                "sent": r.sent,
                "statuses": r.statuses,
                "bad_envelope": r.bad_envelope,
                "server_errors": r.server_errors,
            }
            for name, r in bad.items()
        },
        "slow_clients": slow_kinds,
        "memory": {
            "baseline_rss_mib": base["rss_mib"],
            "peak_rss_mib": max(s["rss_mib"] for s in samples),
            "final_rss_mib": final["rss_mib"],
            "peak_hwm_mib": final["hwm_mib"],
        },
        "fds": {"baseline": base["fds"], "peak_total": max(s["fds"]["total"] for s in samples), "final": final["fds"]},
        "close_wait_final": final["close_wait"],
        "ledger": ledger,
        "log": {
            "warnings_and_errors": dict(levels),
            "expected_errors": len(expected),
            "redis_errors_after_back_s": late,
            "unexpected": unexpected,
        },
        "samples": samples,
        "marks": raw["marks"],
    }


def verdicts(res: dict[str, Any]) -> list[tuple[str, str, str, bool | None, bool]]:
    """(check, goal, measured, passed (None: information only), must)."""
    wb = res["well_behaved"]
    late = res["log"]["redis_errors_after_back_s"]
    bad5 = sum(len(c["server_errors"]) for c in res["bad_input"].values())
    env = sum(c["bad_envelope"] for c in res["bad_input"].values())
    bad_n = sum(c["sent"] for c in res["bad_input"].values())
    unanswered = sum(
        n for c in res["bad_input"].values() for label, n in c["statuses"].items() if label.startswith("no answer")
    )
    m, f = res["memory"], res["fds"]
    other_ok = f["final"]["other"] + f["final"]["listen"] <= f["baseline"]["other"] + f["baseline"]["listen"]
    fd_ok = f["final"]["clients"] == 0 and other_ok
    stale = res["close_wait_final"]
    led = res["ledger"]["keys"]
    billed = {k: v for k, v in led.items() if k in ("good", "acct")}
    slow = res["slow_clients"]
    closed = sum(s["closed_by_router"] for s in slow.values())
    conns = sum(s["connections"] for s in slow.values())
    return [
        ("errors seen by well-behaved clients", "0", f"{wb['errors']} of {wb['requests']:,}", wb["errors"] == 0, True),
        ("5xx answers to bad input", "0", f"{bad5} of {bad_n:,}", bad5 == 0, True),
        ("bad-input errors not in the endpoint's envelope", "0", f"{env}", None, False),
        ("bad requests without an answer (closed, reset, timeout)", "info", f"{unanswered}", None, False),
        (
            "router log: tracebacks, unexpected error lines",
            "none",
            f"{len(res['log']['unexpected'])} (and {res['log']['expected_errors']} state_unavailable while Redis was "
            "down)",
            not res["log"]["unexpected"],
            True,
        ),
        (
            "Redis errors after Redis was back",
            f"0 (later than {REDIS_GRACE_S:g} s)",
            f"{len(late)}" + (f", at +{', +'.join(f'{x:g}' for x in late)} s" if late else ""),
            not late,
            True,
        ),
        (
            "descriptors back to baseline (pooled connections aside)",
            "0 client connections, other fds <= baseline",
            f"{f['final']['total']} (baseline {f['baseline']['total']}, peak {f['peak_total']}): clients "
            f"{f['final']['clients']}, other {f['final']['other'] + f['final']['listen']} (baseline "
            f"{f['baseline']['other'] + f['baseline']['listen']}), pooled: upstream {f['final']['upstream']} "
            f"(baseline {f['baseline']['upstream']}), Redis {f['final']['redis']}",
            fd_ok,
            True,
        ),
        (
            "pooled connections the peer had closed (CLOSE_WAIT) at the end",
            "info",
            ", ".join(f"{k} {n}" for k, n in stale.items()) or "none",
            None,
            False,
        ),
        (
            "memory (RSS)",
            "info",
            f"baseline {m['baseline_rss_mib']:.1f} MiB, peak {m['peak_rss_mib']:.1f}, final {m['final_rss_mib']:.1f}"
            f" (VmHWM {m['peak_hwm_mib']:.1f})",
            None,
            False,
        ),
        (
            "ledger total = budgets' view (Redis), per key",
            "equal (within the outage's requests)",
            "; ".join(f"{k} {'ok' if v['ok'] else 'MISMATCH'}" for k, v in led.items()),
            all(v["ok"] for v in led.values()),
            True,
        ),
        (
            "ledger lines with 200 = 200 answers (well-behaved keys)",
            "equal",
            "; ".join(f"{k} {v['lines_200']:,} / {v['client_200']:,}" for k, v in billed.items()),
            all(v["lines_200"] == v["client_200"] for v in billed.values()),
            True,
        ),
        ("slow connections closed by the router", "info", f"{closed} of {conns}", None, False),
    ]


def print_report(res: dict[str, Any], meta: dict[str, Any], args: argparse.Namespace, note: str) -> bool:
    """Prints everything; returns whether a must-pass check failed."""
    print(
        f"\nSoak | {meta_line(meta)}\n{args.seconds:g} s, {args.concurrency} well-behaved clients + 1 (acct), "
        f"{args.bad_workers} bad-input connections, {args.slow_clients} slow connections; Redis restarted at "
        f"{res['redis_restart']['at_s']:.1f} s (down {res['redis_restart']['down_s']:.2f} s, data kept); events: "
        + ", ".join(f"{t:.1f} s {lbl}" for t, lbl in res["events"])
    )
    rows = verdicts(res)
    print(
        "\n"
        + markdown_table(
            ["check", "goal", "measured", "verdict", "must"],
            [
                [c, g, m, "info" if ok is None else ("PASS" if ok else "FAIL"), "yes" if must else ""]
                for c, g, m, ok, must in rows
            ],
        )
    )
    wb = res["well_behaved"]
    print(
        "\nWell-behaved traffic (load generator, key good; acct: "
        + ", ".join(f"{s}: {n}" for s, n in wb["acct"].items())
        + ")\n"
        + markdown_table(
            ["request", "sent", "errors", "statuses", "failed over", "p50 ms", "p99 ms", "max ms"],
            [
                [
                    n,
                    k["sent"],
                    k["errors"],
                    _counts(k["statuses"]),
                    k["failed_over"],
                    f"{k['p50_ms']:.1f}",
                    f"{k['p99_ms']:.1f}",
                    f"{k['max_ms']:.0f}",
                ]
                for n, k in sorted(res["well_behaved"]["by_kind"].items())
            ],
        )
    )
    for f in wb["failures"][:5]:
        print(f"  failure: {f[:300]}")
    print(
        "\nBad input (key bad)\n"
        + markdown_table(
            ["case", "sent", "answers", "not in envelope", "5xx"],
            [
                [n, c["sent"], _counts(c["statuses"]), c["bad_envelope"], len(c["server_errors"])]
                for n, c in res["bad_input"].items()
            ],
        )
    )
    for n, c in res["bad_input"].items():
        for e in c["server_errors"][:3]:
            print(f"  5xx for {n!r}: {e['status']} request id {e['request_id']}: {e['body'][:200]}")
    print(
        "\nSlow clients (each held until the router closed it, or the end of the load)\n"
        + markdown_table(
            ["kind", "connections", "closed by the router", "after s (min / median / max)", "answers"],
            [
                [
                    k,
                    s["connections"],
                    s["closed_by_router"],
                    " / ".join(f"{x:g}" for x in s["closed_after_s"] or []) or "-",
                    _counts(s["answers"]) or "-",
                ]
                for k, s in res["slow_clients"].items()
            ],
        )
    )
    led = res["ledger"]
    print(
        f"\nLedger against the budgets' view (Redis hash router:{{key}}:budget), micro-USD; outage window "
        f"{led['outage_s']:.2f} s\n"
        + markdown_table(
            [
                "key",
                "ledger lines",
                "200 lines / 200 answers",
                "ledger total",
                "Redis spent",
                "difference",
                "lines near the outage (their total)",
                "Redis reserved",
                "verdict",
            ],
            [
                [
                    k,
                    v["lines"],
                    f"{v['lines_200']} / {v['client_200']}",
                    f"{v['ledger_micros']:,}",
                    f"{v['redis_spent_micros']:,}",
                    f"{v['difference_micros']:,}",
                    f"{v['touched_outage']} ({v['touched_micros']:,})",
                    f"{v['redis_reserved_micros']:,}",
                    "ok" if v["ok"] else "MISMATCH",
                ]
                for k, v in led["keys"].items()
            ],
        )
        + "\n(with fail_open, a request whose life overlapped the outage, from Redis's stop until the router's"
        " last state_recovered, may be uncounted: admitted uncounted, or its settle lost, which also leaves its"
        " reservation held until the window ends. For a key with such requests the spend must lie between the"
        " ledger without them and the whole ledger; for any other key it must equal the ledger.)"
    )
    lg = res["log"]
    print("\nRouter log, warnings and errors by event: " + (_counts(lg["warnings_and_errors"]) or "none"))
    for line in lg["unexpected"][:10]:
        print(f"  UNEXPECTED: {line[:400]}")
    print(f"\n({note})")
    return any(must and ok is False for _, _, _, ok, must in rows)


def _counts(c: dict[str, int]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1]))


def chart(res: dict[str, Any], path: str) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 6), sharex=True)
    s = [x for x in res["samples"] if x["t"] >= 0]
    ts = [x["t"] for x in s]
    ax1.plot(ts, [x["rss_mib"] for x in s], color="tab:blue", label="RSS")
    ax1.set_ylabel("router RSS MiB")
    for kind, color in (("total", "black"), ("clients", "tab:blue"), ("upstream", "tab:orange"), ("redis", "tab:red")):
        ax2.plot(ts, [x["fds"][kind] for x in s], color=color, label=kind)
    ax2.set_ylabel("open descriptors")
    ax2.set_xlabel("seconds since the start of the load")
    ax2.legend(loc="upper right", fontsize=8)
    merged: list[tuple[float, str]] = []  # events at the same moment share one line and label
    for t, lbl in sorted([*res["events"], *res["marks"]]):
        if merged and t - merged[-1][0] < 0.2:
            merged[-1] = (merged[-1][0], f"{merged[-1][1]}; {lbl}")
        else:
            merged.append((t, lbl))
    for ax in (ax1, ax2):
        for t, lbl in merged:
            ax.axvline(t, color="grey", ls=":", lw=1)
            ax.text(t, 1.0, f" {lbl}", transform=ax.get_xaxis_transform(), fontsize=7, va="top", rotation=90)
    fig.suptitle("soak: router memory and descriptors", fontsize=10)
    save_chart(fig, path)
