"""Command line: `router serve | check | fake-upstream | demo`. Parses arguments, then hands off."""

from __future__ import annotations

import argparse
import os
import sys

from router.config import Config, ConfigError, load_config


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    config = _load(args.config)
    if config is None:
        return 2
    os.environ["ROUTER_CONFIG"] = os.path.abspath(args.config)
    uvicorn.run(
        "router.app:app_from_env",
        factory=True,
        host=args.host or config.server.host,
        port=args.port if args.port is not None else config.server.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,  # the router writes its own access line
        proxy_headers=False,  # nothing reads the client address; skip the per-request rewrite
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    print(f"{config.source}: OK, {len(config.providers)} provider(s), {len(config.models)} model(s)")
    for m in config.models:
        fallback = f"  (context_fallback: {m.context_fallback})" if m.context_fallback else ""
        print(f"\n{m.name}{fallback}")
        for r in sorted(m.routes, key=lambda r: r.priority):
            p = config.provider(r.provider)
            weight = r.weight if r.weight is not None else p.weight
            print(
                f"  priority {r.priority}  {p.name:<16} {r.model:<28} weight {weight:g}  "
                f"{p.base_url}  [{', '.join(p.formats)}]"
            )
    return 0


def cmd_fake_upstream(argv: list[str]) -> int:
    from router.fake_upstream.server import main as fake_main

    return fake_main(argv)


def cmd_demo(args: argparse.Namespace) -> int:
    from router.demo import run_demo

    config = _load(args.config)
    if config is None:
        return 2
    return run_demo(config, requests=args.requests)


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
    check = sub.add_parser("check", help="validate a config and print the routing table")
    check.add_argument("--config", required=True)
    check.set_defaults(func=cmd_check)
    demo = sub.add_parser("demo", help="run the router on fake providers and send it traffic")
    demo.add_argument("--config", default="config/demo.yaml")
    demo.add_argument("--requests", type=int, default=120)
    demo.set_defaults(func=cmd_demo)
    sub.add_parser("fake-upstream", help="run the fake provider (see `router fake-upstream --help`)")
    args = parser.parse_args(argv)
    return int(args.func(args))
