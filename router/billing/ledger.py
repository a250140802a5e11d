"""The usage ledger: one JSON line per finished request (time, key id, model, provider, tokens,
cost, status, request id), appended with a single write() per record, so a record is in the
kernel before the request ends and nothing is lost when the router is stopped with SIGTERM.
`summarize` reads it back for `router usage`."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

log = structlog.get_logger("router.billing.ledger")


class Ledger:
    """Appends records to a JSON-lines file (O_APPEND: safe with several worker processes)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._fd: int | None = None
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def record(self, fields: dict[str, Any]) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, orjson.dumps(fields) + b"\n")
        except OSError as exc:  # a full disk must not fail the request that was already served
            log.error("ledger_write_failed", path=self.path, error=str(exc))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(slots=True)
class Total:
    requests: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    estimated: int = 0  # records whose usage was estimated (streams cut short)
    statuses: dict[int, int] = field(default_factory=dict)


def summarize(
    lines: Iterable[bytes], key: str | None = None, since: float | None = None
) -> dict[tuple[str, str], Total]:
    """Totals per (key id, model), optionally for one key and from a unix time on. Lines that are
    not valid records are skipped (a torn last line after a crash, say)."""
    totals: dict[tuple[str, str], Total] = {}
    for line in lines:
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(rec, dict) or (key is not None and rec.get("key") != key):
            continue
        if since is not None and float(rec.get("ts", 0)) < since:
            continue
        t = totals.setdefault((str(rec.get("key")), str(rec.get("model"))), Total())
        t.requests += 1
        t.input_tokens += int(rec.get("input_tokens") or 0)
        t.cached_tokens += int(rec.get("cached_tokens") or 0)
        t.output_tokens += int(rec.get("output_tokens") or 0)
        t.cost_usd += float(rec.get("cost_usd") or 0.0)
        t.estimated += 1 if rec.get("estimated") else 0
        status = int(rec.get("status") or 0)
        t.statuses[status] = t.statuses.get(status, 0) + 1
    return totals
