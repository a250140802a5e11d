"""The dependency direction of design.md's layering table, and where third-party packages may be
imported, checked by parsing every module under router/ with `ast` (in the spirit of httpx's
tests/test_exported_members.py). Imports inside functions and under TYPE_CHECKING count too."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "router"

# design.md's table, adapted to the modules that exist:
# - `config` (with its loader and reader) sits in layer 0, not 1: `types` (a leaf) imports
#   `config.Format`, and config imports nothing of the router's but its own two helpers.
# - `accounting` (usage, prices, the stream meter: pure) is layer 0 because `types` carries its
#   Usage and StreamMeter in answers.
# - `parse` (request body checks, pure) is layer 1; `translate` (today only its __init__) is
#   layer 1 as design.md says, and routing/table, layer 2, asks it for a route's format.
# - `threaded` and `demo` are wiring (layer 7); so are the package `__init__`s of router and
#   fake_upstream. `routing/__init__` is an empty package marker, put with its layer-2 leaves.
LAYERS: dict[str, int] = {
    "router.clock": 0,
    "router.errors": 0,
    "router.config": 0,
    "router.config.validate": 0,
    "router.config.reader": 0,
    "router.config.loader": 0,
    "router.config.schema": 0,
    "router.billing": 0,
    "router.formats": 1,
    "router.ops": 0,
    "router.server": 0,
    "router.upstream": 0,
    "router.billing.accounting": 1,
    "router.types": 0,
    "router.log": 1,
    "router.routing.classify": 1,
    "router.server.parse": 1,
    "router.routing": 2,
    "router.routing.ewma": 2,
    "router.routing.health": 2,
    "router.routing.breaker": 2,
    "router.routing.cooldown": 2,
    "router.routing.table": 2,
    "router.billing.state": 2,
    "router.routing.pool": 3,
    "router.routing.outcome": 3,
    "router.routing.choose": 3,
    "router.billing.auth": 4,
    "router.billing.limits": 4,
    "router.upstream.provider": 4,
    "router.upstream.client": 4,
    "router.upstream.connection": 4,
    "router.upstream.relay": 4,
    "router.billing.ledger": 4,
    "router.ops.admin_auth": 4,
    "router.server.drain": 4,
    "router.routing.failover": 5,
    "router.ops.metrics": 5,
    "router.ops.metrics_live": 5,
    "router.ops.status": 5,
    "router.ops.status_page": 5,
    "router.billing.metering": 5,
    "router.server.responses": 6,
    "router.server.endpoints": 6,
    "router.server.middleware": 6,
    "router.server.dispatch": 6,
    "router": 7,
    "router.app": 7,
    "router.cli": 7,
    "router.ops.serve": 7,
    "router.ops.runtime": 7,
    "router.ops.reload": 7,
    "router.__main__": 7,
    "router.ops.threaded": 7,
    "router.ops.demo": 7,
    "router.fake_upstream": 7,
}
# Subpackages whose every module shares the package's layer.
_PACKAGE_LAYERS = ("router.formats", "router.billing.state", "router.fake_upstream")

# The shipped fake provider stands beside the router, not on top of it: besides its own modules
# it may use only layer 0-1 helpers (sse, translate writers, config's Format).
FAKE = "router.fake_upstream"
FAKE_MAX_LAYER = 1

# Third-party package -> the modules (or packages, by prefix) allowed to import it.
CONFINED: dict[str, tuple[str, ...]] = {
    "pybreaker": ("router.routing.breaker",),
    # The data path's HTTP client is router.upstream.client (over httptools); aiohttp is only the
    # benchmarks' and tests' client now.
    "aiohttp": (),
    "httptools": ("router.upstream.connection",),
    "yaml": ("router.config",),
    "redis": ("router.billing.state",),
    "starlette": (
        "router.app",
        "router.server.endpoints",
        "router.server.responses",
        "router.server.middleware",
        "router.server.dispatch",
        "router.ops.threaded",
        "router.fake_upstream",
    ),
    # app builds the health probe callable; demo drives traffic; the fake's admin client.
    "httpx": ("router.app", "router.ops.runtime", "router.ops.demo", "router.fake_upstream"),
    # The metrics module is the one place that knows the exposition library.
    "prometheus_client": ("router.ops.metrics",),
    # Not in the brief, but the same idea: only the process and thread wiring runs a server.
    "uvicorn": ("router.cli", "router.ops.serve", "router.ops.threaded", "router.fake_upstream"),
}
# Every third-party import must be a declared dependency (pyproject.toml) by its import name.
DECLARED = frozenset(
    {
        "starlette",
        "uvicorn",
        "aiohttp",
        "httptools",
        "httpx",
        "sniffio",
        "anyio",
        "structlog",
        "pybreaker",
        "orjson",
        "yaml",
        "redis",
        "prometheus_client",
    }
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """(absolute imported module, line) for every import statement in the module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod == "__future__":
                continue
            out.append((mod, node.lineno))
            # `from router import x` / `from . import x` may name submodules.
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                if sub in MODULES:
                    out.append((sub, node.lineno))
    return out


def _layer(module: str) -> int | None:
    for pkg in _PACKAGE_LAYERS:
        if module == pkg or module.startswith(pkg + "."):
            return LAYERS[pkg]
    return LAYERS.get(module)


def _within(module: str, owners: tuple[str, ...]) -> bool:
    return any(module == o or module.startswith(o + ".") for o in owners)


def _is_router(module: str) -> bool:
    return module == "router" or module.startswith("router.")


def test_every_module_has_a_layer() -> None:
    """Each module under router/ is placed in the table, so a new one must choose its layer."""
    missing = [m for m in MODULES if _layer(m) is None]
    assert not missing, f"add these modules to LAYERS in tests/test_layering.py: {missing}"


def test_table_names_are_real_or_planned() -> None:
    """The parser finds the modules that really exist (guards against a broken walk)."""
    assert {"router.app", "router.routing.pool", "router.upstream.provider", "router.config"} <= set(MODULES)
    assert len(MODULES) > 20


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name: str) -> None:
    """A router module imports only router modules of its own layer or lower ones."""
    own = _layer(name)
    assert own is not None
    bad = []
    for mod, line in _imports(name, MODULES[name]):
        if not _is_router(mod) or mod == "router":
            continue  # `import router` alone (version) is fine from anywhere
        target = _layer(mod)
        assert target is not None, f"{name}:{line} imports unknown module {mod}"
        if target > own:
            bad.append(f"{name} (layer {own}) line {line} imports {mod} (layer {target})")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", sorted(m for m in MODULES if _within(m, (FAKE,))))
def test_fake_upstream_stands_apart(name: str) -> None:
    """The fake provider imports only itself and layer 0-1 helpers, never the router proper."""
    bad = [
        f"{name} line {line} imports {mod}"
        for mod, line in _imports(name, MODULES[name])
        if _is_router(mod) and mod != "router" and not _within(mod, (FAKE,)) and (_layer(mod) or 0) > FAKE_MAX_LAYER
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_third_party_imports_are_confined(name: str) -> None:
    """pybreaker, aiohttp, yaml, redis, starlette, httpx, uvicorn appear only where allowed."""
    bad = []
    for mod, line in _imports(name, MODULES[name]):
        top = mod.split(".")[0]
        owners = CONFINED.get(top)
        if owners is not None and not _within(name, owners):
            bad.append(f"{name} line {line} imports {mod}; only {', '.join(owners)} may")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_third_party_imports_are_declared(name: str) -> None:
    """Every non-stdlib, non-router import is a dependency declared in pyproject.toml."""
    undeclared = [
        f"{name} line {line} imports {mod}"
        for mod, line in _imports(name, MODULES[name])
        if not _is_router(mod)
        and mod.split(".")[0] not in sys.stdlib_module_names
        and mod.split(".")[0] not in DECLARED
    ]
    assert not undeclared, "\n".join(undeclared)


def test_only_log_configures_structlog() -> None:
    """structlog.configure is called in router/log.py only; the rest only call get_logger."""
    callers = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("configure", "configure_once", "reset_defaults")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "structlog"
            ):
                callers.append(name)
    assert callers and set(callers) == {"router.log"}, callers


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The import walker resolves relative and absolute imports (a guard for the checks above)."""
    pkg = tmp_path / "router" / "routing"
    pkg.mkdir(parents=True)
    src = pkg / "x.py"
    src.write_text(
        "from ..failover import Forwarder\nfrom . import pool\nimport aiohttp\n\ndef f():\n    import yaml\n"
    )
    found = [m for m, _ in _imports("router.routing.x", src)]
    assert "router.failover" in found and "aiohttp" in found and "yaml" in found
    assert "router.routing" in found
