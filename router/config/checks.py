"""Checks across sections of a config, run once every section has been read on its own: unique
names, references that resolve (routes to providers, keys to plans, plan globs to models), and
token hashes that are not also client keys."""

from __future__ import annotations

from fnmatch import fnmatchcase

from router.config.schema import KeyConfig, ModelConfig, PlanConfig, ProviderConfig, ServerConfig


def duplicates(kind: str, key: str, values: list[str], problems: list[str]) -> None:
    """`kind[i].key: duplicate key 'x' (first at kind[j])` for each repeated non-empty value."""
    for i, value in enumerate(values):
        if value and value in values[:i]:
            problems.append(f"{kind}[{i}].{key}: duplicate {key} {value!r} (first at {kind}[{values.index(value)}])")


def cross_check(providers: tuple[ProviderConfig, ...], models: tuple[ModelConfig, ...], problems: list[str]) -> None:
    """The second pass: unique names, and the references from models to providers and models."""
    duplicates("providers", "name", [p.name for p in providers], problems)
    duplicates("models", "name", [m.name for m in models], problems)
    provider_names = sorted({p.name for p in providers if p.name})
    model_names = {m.name for m in models if m.name}
    for i, m in enumerate(models):
        for j, route in enumerate(m.routes):
            if route.provider and route.provider not in provider_names:
                known = ", ".join(provider_names) or "none"
                where = f"models[{i}].routes[{j}].provider"
                problems.append(f"{where}: unknown provider {route.provider!r} (known: {known})")
        if m.context_fallback is not None and m.context_fallback == m.name:
            problems.append(f"models[{i}].context_fallback: must name another model, not itself")
        elif m.context_fallback is not None and m.context_fallback not in model_names:
            problems.append(f"models[{i}].context_fallback: unknown model {m.context_fallback!r}")


def check_access(
    models: tuple[ModelConfig, ...], plans: tuple[PlanConfig, ...], keys: tuple[KeyConfig, ...], problems: list[str]
) -> None:
    """The second pass for access: unique plans and keys, keys to plans, plan globs to priced models."""
    duplicates("plans", "name", [p.name for p in plans], problems)
    duplicates("keys", "id", [k.id for k in keys], problems)
    digests = [k.hash for k in keys]
    for i, k in enumerate(keys):
        if k.hash and k.hash in digests[:i]:
            problems.append(f"keys[{i}].hash: same hash as keys[{digests.index(k.hash)}]; each key needs its own")
    model_names = [m.name for m in models if m.name]
    for i, p in enumerate(plans):
        for j, glob in enumerate(p.models):
            if model_names and not any(fnmatchcase(name, glob) for name in model_names):
                problems.append(f"plans[{i}].models[{j}]: {glob!r} matches no model")
        for j, m in enumerate(models):
            if p.budget and m.name and m.price is None and any(fnmatchcase(m.name, g) for g in p.models):
                problems.append(f"plans[{i}]: budget needs a price for model {m.name!r} (models[{j}].price)")
    plan_names = {p.name for p in plans}
    for i, k in enumerate(keys):
        if k.plan and k.plan not in plan_names:
            problems.append(f"keys[{i}].plan: unknown plan {k.plan!r}")


def check_tokens(server: ServerConfig, keys: tuple[KeyConfig, ...], problems: list[str]) -> None:
    """An operator token must be a secret of its own: one shared with a client key (or with the
    other token) would let that client read what the token guards."""
    digests = [k.hash for k in keys]
    tokens = (("metrics_token", server.metrics_token), ("admin_token", server.admin_token))
    for name, digest in tokens:
        if digest is not None and digest in digests:
            problems.append(f"server.{name}: same hash as keys[{digests.index(digest)}]; use a token of its own")
    if server.metrics_token is not None and server.metrics_token == server.admin_token:
        problems.append("server.admin_token: same hash as server.metrics_token; use a token of its own")
