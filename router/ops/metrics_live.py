"""The live gauges behind /metrics (breaker state, health, in-flight, latency EWMA, model
availability), read off the routing pool when scraped, and, with several workers, shared between
them through files.

Why files: prometheus_client's multiprocess mode sums what each worker *stored*; these values
are *computed* from a worker's own pool (its breakers, EWMAs, in-flight counts) at scrape time,
so the worker that answers a scrape cannot compute them for the others. Each worker therefore
writes its values to `live_<pid>.json` in PROMETHEUS_MULTIPROC_DIR every publish interval (and
the scraped worker once more, at once), and the scrape aggregates the files of workers that are
alive and wrote recently:

- in-flight: summed (the router's total);
- breaker state and EWMA: the worst, max (a route is shown open when any worker has it open);
- health and model availability: the worst, min (0 when any worker's probes see the provider
  down, or any worker has no route of the model it could use now);
- client connections, open and closed by each limit (the process's own counts, conn_clock.py):
  summed. A worker that exits takes its closed counts with it (Prometheus reads the drop as a
  counter reset); they were kept in the protocol, which has no prometheus_client to store them.

A worker that exits gracefully removes its file (`LiveFiles.remove`); one that died or hangs
stops counting when its pid is gone or its file is older than LIVE_STALE_S. No prometheus_client
here: `router.ops.metrics` turns these rows into metric families.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import orjson

from router.routing.breaker import BreakerState
from router.routing.pool import Pool

LIVE_PUBLISH_INTERVAL_S = 2.0
LIVE_STALE_S = 15.0  # a worker silent this long (hung, or killed without cleanup) stops counting

# gauge -> rows of [label values..., value]
Rows = dict[str, list[list[Any]]]

BREAKER_VALUE = {BreakerState.CLOSED: 0.0, BreakerState.HALF_OPEN: 1.0, BreakerState.OPEN: 2.0}
_COMBINE: dict[str, Callable[[list[float]], float]] = {
    "breaker": max,
    "healthy": min,
    "inflight": math.fsum,
    "ewma": max,
    "model_available": min,
    "client_connections": math.fsum,  # the process's own (conn_clock.STATS), summed
    "client_closed": math.fsum,
}


def pool_rows(pool: Pool) -> Rows:
    """One pool's gauges: breaker and ewma by (provider, route), healthy and inflight by provider,
    model_available by model. A route never measured has no ewma row (absent, rather than a
    misleading 0). A provider not yet probed counts healthy here, as routing sends it traffic."""
    inflight: dict[str, int] = {name: 0 for name in pool.providers}
    breaker, ewma = [], []
    for key, rs in pool.routes.items():
        name = rs.provider.name
        inflight[name] += rs.inflight
        breaker.append([name, key, BREAKER_VALUE[rs.breaker.state]])
        value = rs.ewma.value()
        if value is not None:
            ewma.append([name, key, value])
    models = []
    for m in pool.table.models():
        routes = pool.table.get(m.name)
        models.append([m.name, 1.0 if routes is not None and pool.available_routes(routes) else 0.0])
    return {
        "breaker": breaker,
        "healthy": [[name, 1.0 if ps.health.routable else 0.0] for name, ps in pool.providers.items()],
        "inflight": [[name, float(n)] for name, n in inflight.items()],
        "ewma": ewma,
        "model_available": models,
    }


def aggregate(workers: list[Rows]) -> Rows:
    """The workers' rows combined per label set (sum, max or min; see the module doc)."""
    out: Rows = {}
    for gauge, combine in _COMBINE.items():
        seen: dict[tuple[Any, ...], list[float]] = {}
        for rows in workers:
            for *labels, value in rows.get(gauge, ()):
                seen.setdefault(tuple(labels), []).append(float(value))
        out[gauge] = [[*labels, float(combine(vs))] for labels, vs in seen.items()]
    return out


class LiveFiles:
    """This worker's file in the shared directory, and the reading of everyone's."""

    def __init__(self, directory: str, pid: int | None = None) -> None:
        self.directory = directory
        self._pid = pid

    @property
    def path(self) -> str:
        # The pid is read at each call, not at construction: a worker forked after the app was
        # built must not write over its parent's file.
        return os.path.join(self.directory, f"live_{self._pid or os.getpid()}.json")

    def publish(self, rows: Rows) -> None:
        path = self.path
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(rows))
        os.replace(tmp, path)  # atomic: a reader sees the old file or the new one, never half

    def remove(self) -> None:
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass

    def read_all(self, now: float) -> list[Rows]:
        """The rows of every worker alive that wrote within LIVE_STALE_S of `now` (wall time)."""
        found = []
        for name in os.listdir(self.directory):
            if not (name.startswith("live_") and name.endswith(".json")):
                continue  # prometheus_client's own *.db files, and half-written *.tmp ones
            path = os.path.join(self.directory, name)
            try:
                pid = int(name[5:-5])
                if now - os.stat(path).st_mtime > LIVE_STALE_S or not _alive(pid):
                    continue
                with open(path, "rb") as f:
                    rows = orjson.loads(f.read())
            except (ValueError, OSError):  # a stray name, a file removed meanwhile, or garbage
                continue
            if isinstance(rows, dict):
                found.append(rows)
        return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
