"""The routing table: each public model's routes grouped into priority tiers. Built once from
the config and never mutated; the live state of each route lives in `pool.py`."""

from __future__ import annotations

from dataclasses import dataclass, field

from router.config import Config, ModelConfig, ProviderConfig
from router.formats import WireFormat, upstream_format
from router.formats.codec.ir import RequestOptions


@dataclass(frozen=True, slots=True)
class Route:
    """One way to serve a public model: a provider and the upstream model id it knows it by."""

    provider: ProviderConfig
    upstream_model: str
    priority: int
    weight: float
    options: RequestOptions = RequestOptions()  # how requests translated for it are written
    prefill: bool = True  # its model takes a trailing assistant message (a broken stream's continuation)
    # "provider/upstream model": its name in the pool, logs and metrics. Made once here, as it is
    # read several times per request.
    key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.provider.name}/{self.upstream_model}")

    def upstream_format(self, client: WireFormat) -> WireFormat | None:
        """The format this route is sent in for a `client` request; None if it cannot serve it."""
        return upstream_format(client, self.provider.formats)


@dataclass(frozen=True, slots=True)
class ModelRoutes:
    model: ModelConfig
    tiers: tuple[tuple[Route, ...], ...]  # by ascending priority; never empty


class RoutingTable:
    """Public model name -> its routes by tier."""

    def __init__(self, config: Config) -> None:
        self._models: dict[str, ModelRoutes] = {}
        for m in config.models:
            routes = [
                Route(
                    provider=config.provider(r.provider),
                    upstream_model=r.model,
                    priority=r.priority,
                    weight=r.weight if r.weight is not None else config.provider(r.provider).weight,
                    options=RequestOptions(r.thinking, frozenset(r.drop_params), r.default_max_tokens),
                    prefill=config.provider(r.provider).prefill if r.prefill is None else r.prefill,
                )
                for r in m.routes
            ]
            priorities = sorted({r.priority for r in routes})
            tiers = tuple(tuple(r for r in routes if r.priority == p) for p in priorities)
            self._models[m.name] = ModelRoutes(model=m, tiers=tiers)

    def get(self, model: str) -> ModelRoutes | None:
        return self._models.get(model)

    def models(self) -> list[ModelConfig]:
        return [mr.model for mr in self._models.values()]

    def routes(self) -> list[Route]:
        """Every distinct route, once."""
        seen: dict[str, Route] = {}
        for mr in self._models.values():
            for tier in mr.tiers:
                for r in tier:
                    seen.setdefault(r.key, r)
        return list(seen.values())
