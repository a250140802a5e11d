"""The architecture of docs/architecture.md, checked by parsing every module under router/ with
`ast`: the layers and which way imports point, no import cycles, where third-party packages may
be imported, and the size of modules. Imports inside functions and under TYPE_CHECKING count too."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "router"

# The layers, lowest first (docs/architecture.md). A module may import its own package and
# anything in a lower layer; never a higher layer, nor another package of its own layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    # leaves: the error tree, value types, the clock, logging setup, the observer interface
    ("router", "router.clock", "router.errors", "router.types", "router.log", "router.observe"),
    ("router.config",),
    ("router.formats",),
    # talking to providers, and who may ask what at what cost: independent of each other
    ("router.upstream", "router.billing"),
    ("router.routing",),
    ("router.server",),
    ("router.ops",),
    ("router.app", "router.demo", "router.cli", "router.__main__"),
)
# Packages of one layer that must not import each other (other same-layer imports are allowed,
# and kept acyclic by the cycle check).
INDEPENDENT = frozenset({"router.upstream", "router.billing"})
# The shipped fake provider stands beside the router, not on top of it: besides itself it may
# use only the leaves, the config and the formats.
FAKE = "router.fake_upstream"
FAKE_MAY_USE = ("router.clock", "router.errors", "router.types", "router.config", "router.formats")
MAX_LINES = 400

# Third-party package -> the modules (or packages, by prefix) allowed to import it.
CONFINED: dict[str, tuple[str, ...]] = {
    "pybreaker": ("router.routing.breaker",),
    "aiohttp": (),  # the benchmarks' and tests' client only
    "httptools": ("router.upstream.connection", "router.ops.protocol"),
    "yaml": ("router.config.loader",),
    "redis": ("router.billing.state.redis",),
    "starlette": ("router.app", "router.server", "router.ops.threaded", FAKE),
    # the health probe (upstream.probe) and its client (app, runtime), the demo's traffic, the fake's admin client
    "httpx": ("router.app", "router.upstream.probe", "router.ops.runtime", "router.demo", FAKE),
    "prometheus_client": ("router.ops.metrics",),
    "opentelemetry": ("router.ops.tracing",),  # the otel extra; tracing_env imports it only when asked
    "uvicorn": ("router.cli", "router.ops.serve", "router.ops.threaded", "router.ops.protocol", FAKE),
}
# Every third-party import must be a declared dependency (pyproject.toml) by its import name.
DECLARED = frozenset(
    {
        "starlette",
        "uvicorn",
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
        "opentelemetry",  # the otel extra
    }
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str, path: Path, known: dict[str, Path] = MODULES) -> list[tuple[str, int]]:
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
            # `from router.x import y` names module router.x.y when there is one, else router.x
            subs = [f"{mod}.{alias.name}" for alias in node.names if f"{mod}.{alias.name}" in known]
            if subs:
                out.extend((s, node.lineno) for s in subs)
            if len(subs) < len(node.names):
                out.append((mod, node.lineno))
    return out


def _owner(module: str) -> tuple[int, str] | None:
    """(layer, owning package or module) of a router module: the longest entry that contains it."""
    best: tuple[int, str] | None = None
    for i, names in enumerate(LAYERS):
        for n in names:
            inside = module == n or (n != "router" and module.startswith(n + "."))
            if inside and (best is None or len(n) > len(best[1])):
                best = (i, n)
    return best


def _within(module: str, owners: tuple[str, ...]) -> bool:
    return any(module == o or module.startswith(o + ".") for o in owners)


def _is_router(module: str) -> bool:
    return module == "router" or module.startswith("router.")


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Router module -> the router modules it imports (as they exist)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for mod, _ in _imports(name, path, modules):
            while mod and mod not in modules:  # `from router.x.y import Name`: the module is router.x.y
                mod = mod.rpartition(".")[0]
            if mod and mod != name:
                targets.add(mod)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each a cycle or more."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer() -> None:
    """Each module under router/ belongs to a layer, so a new package must choose its place."""
    missing = [m for m in MODULES if not _within(m, (FAKE,)) and _owner(m) is None]
    assert not missing, f"add these modules to LAYERS in tests/test_layering.py: {missing}"


def test_the_walk_finds_the_modules() -> None:
    """The parser finds the modules that really exist (guards against a broken walk)."""
    assert {"router.app", "router.routing.pool", "router.upstream.provider", "router.formats.base"} <= set(MODULES)
    assert len(MODULES) > 60


@pytest.mark.parametrize("name", sorted(m for m in MODULES if not _within(m, (FAKE,))))
def test_imports_point_down(name: str) -> None:
    """A router module imports its own package and lower layers, never up, and never across the
    independent packages of one layer."""
    own = _owner(name)
    assert own is not None
    bad = []
    for mod, line in _imports(name, MODULES[name]):
        if not _is_router(mod) or mod == "router":
            continue  # `import router` alone (the version) is fine from anywhere
        if _within(mod, (FAKE,)):
            if not _within(name, ("router.cli", "router.demo")):
                bad.append(f"{name} line {line} imports the fake provider {mod}")
            continue
        target = _owner(mod)
        assert target is not None, f"{name}:{line} imports unknown module {mod}"
        if target[1] == own[1] or (target[0] == own[0] and not {target[1], own[1]} <= INDEPENDENT):
            continue
        if target[0] >= own[0]:
            bad.append(f"{name} ({own[1]}, layer {own[0]}) line {line} imports {mod} ({target[1]}, layer {target[0]})")
    assert not bad, "\n".join(bad)


def test_no_import_cycles() -> None:
    """No module reaches itself through its imports, within a package or across them."""
    assert _cycles(_graph(MODULES)) == []


@pytest.mark.parametrize("name", sorted(m for m in MODULES if _within(m, (FAKE,))))
def test_fake_upstream_stands_apart(name: str) -> None:
    """The fake provider imports only itself, the leaves, the config and the formats."""
    bad = [
        f"{name} line {line} imports {mod}"
        for mod, line in _imports(name, MODULES[name])
        if _is_router(mod) and mod != "router" and not _within(mod, (FAKE, *FAKE_MAY_USE))
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_third_party_imports_are_confined(name: str) -> None:
    """pybreaker, yaml, redis, starlette, httpx, uvicorn, ... appear only where allowed."""
    bad = []
    for mod, line in _imports(name, MODULES[name]):
        owners = CONFINED.get(mod.split(".")[0])
        if owners is not None and not _within(name, owners):
            bad.append(f"{name} line {line} imports {mod}; only {', '.join(owners) or 'nothing in router/'} may")
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


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name: str) -> None:
    """No module passes the size a newcomer reads in one go."""
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by concern"


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


def test_the_checks_see_violations(tmp_path: Path) -> None:
    """The walker resolves relative and absolute imports, the layer rule flags an upward import,
    and the cycle finder finds a cycle (guards for the checks above)."""
    pkg = tmp_path / "router" / "routing"
    pkg.mkdir(parents=True)
    src = pkg / "x.py"
    src.write_text("from ..server import endpoints\nfrom . import pool\nimport aiohttp\n\ndef f():\n    import yaml\n")
    found = [m for m, _ in _imports("router.routing.x", src)]
    assert "router.server.endpoints" in found and "aiohttp" in found and "yaml" in found
    routing, server = _owner("router.routing.x"), _owner("router.server.endpoints")
    assert routing is not None and server is not None and server[0] > routing[0]
    assert _owner("router.upstream.relay") == (3, "router.upstream")
    assert _owner("router.billing.auth") == (3, "router.billing")
    a, b, c = (tmp_path / f"{n}.py" for n in "abc")
    a.write_text("import router.b\n")
    b.write_text("from router import c\n")
    c.write_text("from router.a import thing\n")
    graph = _graph({"router.a": a, "router.b": b, "router.c": c})
    assert _cycles(graph) == [["router.a", "router.b", "router.c"]]
    c.write_text("x = 1\n")
    assert _cycles(_graph({"router.a": a, "router.b": b, "router.c": c})) == []
