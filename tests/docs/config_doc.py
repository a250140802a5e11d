"""What tests/docs/test_configuration_doc.py compares: the config keys as the schema's dataclasses
define them, the reference tables and YAML blocks of docs/configuration.md, and a small valid
document to probe the loader with (`problems` runs it and returns what it refused, by path)."""

from __future__ import annotations

import copy
import dataclasses
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from router.config import Budget, Config, ConfigError, parse_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
COLUMNS = ["key", "type", "default", "allowed", "meaning"]
# The file's key differs from the field's name: the reader turns a duration ("2h") into seconds.
RENAMED = {(Budget, "window_s"): "window"}
NOT_IN_FILE = {(Config, "source")}  # which file the config came from: set by the loader
DURATIONS = {"plans[].budget.window"}  # typed "duration": numbers or "45s", "2h", "1h30m"
REQUIRED = object()


@dataclass(frozen=True)
class Key:
    path: str  # as the doc writes it: providers[].health.path
    steps: tuple[str | int, ...]  # attributes and list indexes from a Config to the value
    hint: Any  # the field's type, None-less
    required: bool
    schema_default: Any  # the dataclass's default, or REQUIRED
    children: tuple[str, ...] | None  # a mapping's keys in the file; None for a leaf

    @property
    def heading(self) -> bool:
        """A mapping that is always there (its fields have defaults): a table, not a row."""
        return dataclasses.is_dataclass(self.hint) and not self.required and self.schema_default is not None

    @property
    def entry(self) -> str:
        """The path of the mapping that holds its children: `providers[]` for a list of them."""
        return f"{self.path}[]" if self.kind == "list of mappings" else self.path

    @property
    def kind(self) -> str:
        if self.path in DURATIONS:
            return "duration"
        return kind(self.hint)

    @property
    def choices(self) -> tuple[str, ...]:
        inner = get_args(self.hint)[0] if get_origin(self.hint) is tuple else self.hint
        return get_args(inner) if get_origin(inner) is Literal else ()


def _strip_none(hint: Any) -> Any:
    if get_origin(hint) in (Union, types.UnionType):
        rest = [a for a in get_args(hint) if a is not type(None)]
        assert len(rest) == 1, hint
        return rest[0]
    return hint


def kind(hint: Any) -> str:
    """The word the doc's type column starts with for a field of type `hint`."""
    if dataclasses.is_dataclass(hint):
        return "mapping"
    if get_origin(hint) is tuple:
        elem = get_args(hint)[0]
        if dataclasses.is_dataclass(elem):
            return "list of mappings"
        return "mapping" if get_origin(elem) is tuple else "list of strings"  # headers: name -> value pairs
    if get_origin(hint) is Literal:
        return "string"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}[hint]


def walk(cls: Any = Config, prefix: str = "", steps: tuple[str | int, ...] = ()) -> list[Key]:
    """Every key of the file, depth first, from the dataclasses of router/config/schema.py."""
    out: list[Key] = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if (cls, f.name) in NOT_IN_FILE:
            continue
        name = RENAMED.get((cls, f.name), f.name)
        path = f"{prefix}.{name}" if prefix else name
        hint = _strip_none(hints[f.name])
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = REQUIRED
        elem = get_args(hint)[0] if get_origin(hint) is tuple else None
        nested, sub, sub_steps = None, "", (*steps, f.name)
        if dataclasses.is_dataclass(hint):
            nested, sub = hint, path
        elif dataclasses.is_dataclass(elem):
            nested, sub, sub_steps = elem, f"{path}[]", (*sub_steps, 0)
        inner = walk(nested, sub, sub_steps) if nested is not None else []
        children = tuple(k.path.rsplit(".", 1)[-1] for k in inner if k.path.count(".") == sub.count(".") + 1)
        out.append(Key(path, (*steps, f.name), hint, default is REQUIRED, default, children if nested else None))
        out.extend(inner)
    return out


def render(value: Any, key: Key) -> str:
    """A default as the doc writes it, in YAML's terms."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        assert not value, f"{key.path}: a non-empty default needs a rendering rule"
        return "{}" if key.kind == "mapping" else "[]"
    return str(value)


def read(config: Config, steps: tuple[str | int, ...]) -> Any:
    value: Any = config
    for step in steps:
        value = value[step] if isinstance(step, int) else getattr(value, step)
    return value


# --- the document --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    allowed: str
    meaning: str
    line: int


def rows(text: str) -> list[Row]:
    """The rows of every table whose header is exactly COLUMNS."""
    out: list[Row] = []
    header: list[str] | None = None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif header == COLUMNS and not set(line) <= set("|-: "):
            assert len(cells) == len(COLUMNS), f"docs line {n}: {len(cells)} cells, expected {len(COLUMNS)}"
            key = re.fullmatch(r"`([^`]+)`", cells[0])
            assert key, f"docs line {n}: the key cell must be one `path`, got {cells[0]!r}"
            out.append(Row(key.group(1), cells[1], cells[2], cells[3], cells[4], n))
    return out


def yaml_blocks(text: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", text, flags=re.S | re.M)


def prose_keys(text: str, tops: set[str]) -> set[str]:
    """Inline `code` outside fenced blocks that looks like a key path (`server.port`,
    `providers[0].api_key`), normalised to the tables' form (`providers[].api_key`)."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    found = set()
    for m in re.finditer(r"`([a-z_]+(?:\[\d*\])?(?:\.[a-z_]+(?:\[\d*\])?)+)(?=[`:\s])", prose):
        path = re.sub(r"\[\d*\]", "[]", m.group(1))
        if path.split("[")[0].split(".")[0] in tops:
            found.add(path)
    return found


BOUND = re.compile(r"`(>=|<=|>|<) (-?\d+(?:\.\d+)?)`")


def bounds(allowed: str) -> list[tuple[str, float]]:
    return [(op, float(n)) for op, n in BOUND.findall(allowed)]


def listed_choices(allowed: str) -> tuple[str, ...] | None:
    """The `values` after "one of" in an allowed cell; None when it lists no choices."""
    parts = re.split(r"\bone of\b", allowed, maxsplit=1)
    return tuple(re.findall(r"`([^`]+)`", parts[1])) if len(parts) == 2 else None


# --- probing the loader --------------------------------------------------------------------------

H1 = "sha256:" + "1" * 64
PRICE = {"input_per_mtok": 1, "output_per_mtok": 2}
ROUTE = [{"provider": "p", "model": "up"}]
# One of every list entry and optional mapping, with only their required keys; model m's price
# can go without breaking plan pro's budget, which covers n only.
BASE: dict[str, Any] = {
    "providers": [{"name": "p", "base_url": "http://127.0.0.1:9", "formats": ["openai-chat"]}],
    "models": [{"name": "m", "routes": ROUTE, "price": PRICE}, {"name": "n", "routes": ROUTE, "price": PRICE}],
    "plans": [{"name": "pro", "models": ["n"], "budget": {"usd": 5, "window": "1h"}}],
    "keys": [{"id": "k", "hash": H1, "plan": "pro"}],
}
# Keys that cannot go alone: keys name plan pro, and no keys needs server.allow_anonymous.
COMPANIONS: dict[str, list[tuple[str, Any]]] = {
    "plans": [("keys", ...), ("server.allow_anonymous", True)],
    "keys": [("server.allow_anonymous", True)],
}


def _parts(path: str) -> list[str | int]:
    out: list[str | int] = []
    for part in path.split("."):
        out.append(part.removesuffix("[]"))
        if part.endswith("[]"):
            out.append(0)
    return out


def edit(doc: dict[str, Any], path: str, value: Any = ..., delete: bool = False) -> dict[str, Any]:
    """A copy of `doc` with the key at `path` set to `value`, or deleted (first list entries)."""
    doc = copy.deepcopy(doc)
    node: Any = doc
    parts = _parts(path)
    for part in parts[:-1]:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    last = parts[-1]
    if delete:
        node.pop(last, None)
    else:
        node[last] = value
    return doc


def without(path: str) -> dict[str, Any]:
    """BASE without the key at `path` (and with what its absence needs)."""
    doc = edit(BASE, path, delete=True)
    for other, value in COMPANIONS.get(path, []):
        doc = edit(doc, other, delete=True) if value is ... else edit(doc, other, value)
    return doc


def concrete(path: str) -> str:
    """The path as the loader's messages write it: providers[0].health.path."""
    return path.replace("[]", "[0]")


def problems(doc: dict[str, Any], path: str | None = None) -> list[str]:
    """What the loader refuses in `doc`, optionally only at `path` or below it."""
    try:
        parse_config(doc, "probe", env={})
    except ConfigError as exc:
        found = exc.problems
    else:
        found = []
    if path is None:
        return found
    at = concrete(path)
    return [p for p in found if re.match(rf"{re.escape(at)}(?:[.\[:])", p.split(": ", 1)[0] + ":")]
