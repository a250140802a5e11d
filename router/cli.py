"""Command line: `router serve | check | demo | keys new | token new | usage | fake-upstream`.
Parses arguments, then hands off."""

from __future__ import annotations

import argparse
import datetime
import os
import secrets
import signal
import sys
import tempfile
import time

from router.config import Config, ConfigError, load_config


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def cmd_serve(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    if args.workers > 1 and config.state.backend == "memory":
        print(
            f"--workers {args.workers} needs shared state: with state.backend 'memory' each worker would "
            "keep its own budgets and rate limits. Set state: {backend: redis, url: redis://...} "
            "or run one worker.",
            file=sys.stderr,
        )
        return 2
    os.environ["ROUTER_CONFIG"] = os.path.abspath(args.config)
    # uvicorn shuts down gracefully, then re-raises the signal under the handler that was in
    # place before it started; this one turns that into a clean exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    from router.log import configure
    from router.ops.serve import run

    configure(config.log.level, config.log.format)  # this process's lines: `starting`, the fd limit

    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    if args.workers > 1:
        # Counters of all workers, summed at scrape time (prometheus-client's multiprocess mode).
        with tempfile.TemporaryDirectory(prefix="router-metrics-") as metrics_dir:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            run(config, host, port, args.workers, args.config)
    else:
        run(config, host, port, args.workers, args.config)
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_reload(args: argparse.Namespace) -> int:
    """SIGHUP to a running `router serve` (the parent of several workers passes it on)."""
    try:
        os.kill(args.pid, signal.SIGHUP)
    except ProcessLookupError:
        print(f"no process {args.pid}", file=sys.stderr)
        return 1
    except PermissionError:
        print(f"not allowed to signal process {args.pid}", file=sys.stderr)
        return 1
    print(f"asked process {args.pid} to reload its config; its log says whether the new file was taken")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate, print the routing table and warnings; with --probe, probe each provider once
    (exit 1 unless every probed provider passed)."""
    if args.config and args.config_file and args.config != args.config_file:
        print("router check: give the config once (CONFIG or --config)", file=sys.stderr)
        return 2
    path = args.config or args.config_file
    if path is None:
        print("router check: which config? router check [--probe] CONFIG", file=sys.stderr)
        return 2
    config = _load(path)
    if config is None:
        return 2
    print(f"{config.source}: OK, {len(config.providers)} provider(s), {len(config.models)} model(s)")
    # columns as wide as their longest entry, so long upstream model ids keep the table aligned
    name_w = max((len(p.name) for p in config.providers), default=0)
    model_w = max((len(r.model) for m in config.models for r in m.routes), default=0)
    for m in config.models:
        fallback = f"  (context_fallback: {m.context_fallback})" if m.context_fallback else ""
        print(f"\n{m.name}{fallback}")
        for r in sorted(m.routes, key=lambda r: r.priority):
            p = config.provider(r.provider)
            weight = r.weight if r.weight is not None else p.weight
            print(
                f"  priority {r.priority}  {p.name:<{name_w}}  {r.model:<{model_w}}  weight {weight:g}  "
                f"{p.base_url}  [{', '.join(p.formats)}]"
            )
    from router.ops.check import base_url_warnings, probe_all, probe_table

    sys.stdout.flush()  # the warnings after the table, also when both go to one pipe
    for warning in base_url_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    if not args.probe:
        return 0
    import anyio

    ok, lines = probe_table(anyio.run(probe_all, config))
    print("\nhealth probes, sent once from this host:")
    for line in lines:
        print(line)
    return 0 if ok else 1


def cmd_keys_new(args: argparse.Namespace) -> int:
    from router.billing.auth import hash_key, new_key
    from router.config.reader import name_problem

    for flag, value in (("--plan", args.plan), ("--id", args.id)):
        problem = name_problem(value) if value is not None else None
        if problem:  # the rule the config applies to plans[].name and keys[].id
            print(f"{flag}: {problem}", file=sys.stderr)
            return 2
    key_id = args.id or f"{args.plan}-{secrets.token_hex(3)}"
    if args.config is not None:
        config = _load(args.config)
        if config is None:
            return 2
        plans = [p.name for p in config.plans]
        if args.plan not in plans:
            known = ", ".join(plans) or "none"
            print(f"--plan: no plan {args.plan!r} in {config.source} (plans: {known})", file=sys.stderr)
            return 2
        if any(k.id == key_id for k in config.keys):
            print(f"--id: {config.source} already has a key with id {key_id!r}", file=sys.stderr)
            return 2
    key = new_key()
    print(f"API key (shown once; store it now, the router keeps only its hash):\n\n  {key}\n")
    print("Config entry, under `keys:`:\n")
    print(f'  - {{id: {key_id}, hash: "{hash_key(key)}", plan: {args.plan}}}')
    return 0


# What each operator token guards: its config key under `server:`, and how it is sent.
_TOKEN_USES = {
    "metrics": (
        "metrics_token",
        "GET /metrics wants it as `Authorization: Bearer <token>` (Prometheus: "
        "`authorization: {type: Bearer, credentials: <token>}` in the scrape config)",
    ),
    "admin": (
        "admin_token",
        "GET /status.json wants it as `Authorization: Bearer <token>`; open the status page as "
        "/status#token=<token> (the fragment never reaches the server)",
    ),
}


def cmd_token_new(args: argparse.Namespace) -> int:
    from router.billing.auth import hash_key
    from router.ops.admin_auth import new_token

    name, use = _TOKEN_USES[args.purpose]
    token = new_token()
    print(f"{args.purpose} token (shown once; store it now, the router keeps only its hash):\n\n  {token}\n")
    print("Config entry, under `server:`:\n")
    print(f'  {name}: "{hash_key(token)}"\n')
    print(use)
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    from router.billing.ledger import summarize

    if args.ledger is not None:
        path = args.ledger  # the file alone: no config, so none of its ${VAR}s need to be set
    else:
        config = _load(args.config)
        if config is None:
            return 2
        path = config.ledger.path
    try:
        since = _since(args.since) if args.since else None
    except ValueError:
        print(
            f"--since {args.since!r}: give an ISO date/time (2026-11-25, 2026-11-25T10:00) or an age (30m, 2h, 7d)",
            file=sys.stderr,
        )
        return 2
    try:
        with open(path, "rb") as f:
            totals = summarize(f, key=args.key, since=since)
    except FileNotFoundError:
        print(f"no ledger at {path} yet", file=sys.stderr)
        return 1
    print(f"{'key':<20} {'model':<24} {'requests':>9} {'input':>12} {'cached':>10} {'output':>12} {'cost USD':>12}")
    grand = 0.0
    for (key, model), t in sorted(totals.items()):
        grand += t.cost_usd
        print(
            f"{key:<20} {model:<24} {t.requests:>9} {t.input_tokens:>12} {t.cached_tokens:>10} "
            f"{t.output_tokens:>12} {t.cost_usd:>12.6f}"
        )
    requests = sum(t.requests for t in totals.values())
    print(f"{'total':<20} {'':<24} {requests:>9} {'':>12} {'':>10} {'':>12} {grand:>12.6f}")
    return 0


def _since(value: str) -> float:
    """A unix time from an ISO date/time ("2026-11-25", "2026-11-25T10:00") or an age ("2h", "30m", "7d")."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(value[:-1]) * units[value[-1]]
    when = datetime.datetime.fromisoformat(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def cmd_fake_upstream(argv: list[str]) -> int:
    from router.fake_upstream.server import main as fake_main

    return fake_main(argv)


def cmd_demo(args: argparse.Namespace) -> int:
    from router.demo import run_demo, until_interrupted
    from router.log import configure

    config = _load(args.config)
    if config is None:
        return 2
    configure(level="warning", fmt="console")  # the demo prints its own summary
    # Stay up for the printed curl commands when someone is there to try them and press Ctrl-C.
    stay = args.stay if args.stay is not None else sys.stdin.isatty() and sys.stdout.isatty()
    return run_demo(config, requests=args.requests, hold=until_interrupted if stay else None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fake-upstream"]:
        return cmd_fake_upstream(argv[1:])
    parser = argparse.ArgumentParser(prog="router", description="A smart-routing LLM API gateway.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the router")
    serve.add_argument("--config", required=True)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)
    reload = sub.add_parser("reload", help="make a running router re-read its config (SIGHUP)")
    reload.add_argument("--pid", type=int, required=True)
    reload.set_defaults(func=cmd_reload)
    check = sub.add_parser("check", help="validate a config and print the routing table")
    check.add_argument("config_file", nargs="?", metavar="CONFIG")
    check.add_argument("--config", help="the config file (the same as CONFIG)")
    check.add_argument(
        "--probe", action="store_true", help="send each provider's health probe once; exit 1 on a failure"
    )
    check.set_defaults(func=cmd_check)
    demo = sub.add_parser("demo", help="run the router on fake providers and send it traffic")
    demo.add_argument("--config", default="config/demo.yaml")
    demo.add_argument("--requests", type=int, default=120)
    demo.add_argument(
        "--stay",
        action=argparse.BooleanOptionalAction,
        help="keep the router up after the demo, for curl, until Ctrl-C (default: on a terminal)",
    )
    demo.set_defaults(func=cmd_demo)
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    keys_new = keys.add_parser("new", help="print a fresh API key and its config entry")
    keys_new.add_argument("--plan", required=True)
    keys_new.add_argument("--id", help="the key's id in logs and the ledger (default: PLAN-xxxxxx)")
    keys_new.add_argument("--config", help="check --plan and --id against this config first")
    keys_new.set_defaults(func=cmd_keys_new)
    token = sub.add_parser("token", help="operator tokens (/metrics, /status.json)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    token_new = token_sub.add_parser("new", help="print a fresh operator token and its config entry")
    token_new.add_argument("--for", dest="purpose", choices=sorted(_TOKEN_USES), required=True)
    token_new.set_defaults(func=cmd_token_new)
    usage = sub.add_parser("usage", help="sum the usage ledger per key and model")
    where = usage.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", help="the config whose ledger.path to read")
    where.add_argument("--ledger", help="the ledger file itself (no config, no environment needed)")
    usage.add_argument("--key", help="only this key id")
    usage.add_argument("--since", help="ISO date/time (UTC unless given) or an age like 2h, 7d")
    usage.set_defaults(func=cmd_usage)
    sub.add_parser("fake-upstream", help="run the fake provider (see `router fake-upstream --help`)")
    args = parser.parse_args(argv)
    return int(args.func(args))
