"""What `router serve` says when it starts: one `starting` line from the process that binds the
socket (what is served, from which file, with which state), a warning when an operator
endpoint is open on a non-loopback address, and one `serving` line from each worker once its
app has started (the socket is listening by then: serve.py binds it before any worker starts).

Nothing secret reaches these lines: counts rather than keys, token hashes only as set/unset,
and the Redis URL with its user info and query masked (`router.log.mask_urls`).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import structlog

from router import __version__
from router.config import Config
from router.log import mask_urls

log = structlog.get_logger("router.ops.startup")


def listen_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def starting_fields(config: Config, config_path: str, host: str, port: int, workers: int) -> dict[str, Any]:
    """The `starting` line's fields (port: the bound one, when 0 was asked for)."""
    fields: dict[str, Any] = {
        "version": __version__,
        "listen": listen_url(host, port),
        "config": os.path.abspath(config_path),
        "providers": len(config.providers),
        "models": len(config.models),
        "keys": len(config.keys),
        "state": config.state.backend,
    }
    if config.state.backend == "redis" and config.state.url is not None:
        fields["state_url"] = mask_urls(config.state.url)
    fields["ledger"] = os.path.abspath(config.ledger.path) if config.ledger.enabled else "off"
    fields["metrics"] = "token" if config.server.metrics_token else "open"
    fields["status"] = "token" if config.server.admin_token else "open"
    fields["workers"] = workers
    fields["pid"] = os.getpid()
    return fields


def open_endpoints(config: Config, host: str) -> list[str]:
    """The operator endpoints anyone who reaches a non-loopback `host` can read."""
    if is_loopback(host):
        return []
    open_ = [("/metrics", config.server.metrics_token), ("/status.json", config.server.admin_token)]
    return [path for path, token in open_ if token is None]


def announce_start(config: Config, config_path: str, host: str, port: int, workers: int) -> None:
    log.info("starting", **starting_fields(config, config_path, host, port, workers))
    exposed = open_endpoints(config, host)
    if exposed:
        log.warning(
            "operator_endpoints_open",
            endpoints=exposed,
            host=host,
            note="anyone who reaches this address reads them: set server.metrics_token and server.admin_token "
            "(router token new --for metrics|admin), or listen on 127.0.0.1",
        )


def announce_serving() -> None:
    """From each worker, once its app has started (clients, probes, signal handlers)."""
    log.info("serving", pid=os.getpid())
