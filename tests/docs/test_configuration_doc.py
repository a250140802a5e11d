"""docs/configuration.md cannot drift from the code: every key of the schema has a row with the
default the loader applies, no row or inline `path` names a key the schema lacks, the documented
bounds and choices are the ones the loader enforces, and every YAML example loads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.config import Config, load_config, parse_config
from tests.docs.config_doc import (
    BASE,
    DOC,
    REQUIRED,
    Key,
    Row,
    bounds,
    edit,
    listed_choices,
    problems,
    prose_keys,
    read,
    render,
    rows,
    walk,
    without,
    yaml_blocks,
)

TEXT = DOC.read_text(encoding="utf-8")
KEYS = walk()
BY_PATH = {k.path: k for k in KEYS}
ROWS = {r.key: r for r in rows(TEXT)}
DOCUMENTED = [k for k in KEYS if not k.heading]  # the always-present sections are headings instead
MAPPINGS = [k for k in KEYS if k.children is not None]
TOPS = {k.path for k in KEYS if "." not in k.path}
NUMERIC = [k for k in DOCUMENTED if k.kind in ("integer", "number", "duration")]
# The Reader's own bound messages ("must be >= 1, got 0"); cross-key ones name the other key.
BOUND_REFUSAL = re.compile(r": (must be (>=|<=|>|<) -?\d|expected )")


def row(key: Key) -> Row:
    assert key.path in ROWS, f"docs/configuration.md has no row for `{key.path}`"
    return ROWS[key.path]


def test_the_walk_finds_the_schema() -> None:
    """Guards against a broken walk: nested sections and list entries are reached."""
    paths = set(BY_PATH)
    assert {"server.max_connections", "providers[].breaker.reset_jitter", "models[].routes[].drop_params"} <= paths
    assert {"plans[].budget.window", "models[].price.cache_write_per_mtok", "keys[].hash"} <= paths
    assert "source" not in paths and "plans[].budget.window_s" not in paths
    assert len(DOCUMENTED) > 80


@pytest.mark.parametrize("key", [None, *MAPPINGS], ids=lambda k: k.path if k else "top level")
def test_the_walk_has_the_keys_the_loader_accepts(key: Key | None) -> None:
    """The loader's list of expected keys in each mapping is the walk's (so the renamed and the
    skipped fields are right): an unknown key's message names them all."""
    children = tuple(k.path for k in KEYS if "." not in k.path) if key is None else key.children
    at = "" if key is None else key.entry.replace("[]", "[0]") + "."
    doc = dict(BASE, zz_unknown=1) if key is None else edit(BASE, f"{key.entry}.zz_unknown", 1)
    found = [p for p in problems(doc) if p.startswith(f"{at}zz_unknown: unknown key (expected one of: ")]
    assert len(found) == 1, problems(doc)
    accepted = found[0].split("expected one of: ", 1)[1].rstrip(")").split(", ")
    assert sorted(accepted) == sorted(children or ())


def test_every_key_has_one_row_and_every_row_a_key() -> None:
    table_keys = [r.key for r in rows(TEXT)]
    assert len(table_keys) == len(set(table_keys)), "a key has two rows"
    missing = [k.path for k in DOCUMENTED if k.path not in ROWS]
    unknown = [f"line {r.line}: `{r.key}`" for r in ROWS.values() if r.key not in BY_PATH]
    assert not missing, f"keys without a row in docs/configuration.md: {missing}"
    assert not unknown, f"rows for keys the schema does not have: {unknown}"


def test_inline_key_paths_name_real_keys() -> None:
    """`routing.backoff_min_s` in a sentence is a key too: a renamed key must not linger there."""
    unknown = sorted(prose_keys(TEXT, TOPS) - set(BY_PATH))
    assert not unknown, f"docs/configuration.md names keys the schema does not have: {unknown}"


def test_the_reload_table_places_every_key() -> None:
    """Each key, or a section it is in, is in the reload table: a new key must say whether a
    reload changes it."""
    table = TEXT.split("| takes effect at reload | needs a restart |", 1)[1].split("\n\n", 1)[0]
    tokens = {re.sub(r"\[\d*\]", "[]", t.rstrip(":")) for t in re.findall(r"`([^`]+)`", table)}
    named = {t for t in tokens if re.split(r"[.\[]", t)[0] in TOPS}  # not the log events
    assert named <= set(BY_PATH), f"the reload table names keys the schema does not have: {named - set(BY_PATH)}"

    def sections(path: str) -> set[str]:
        return {path[: m.start()] for m in re.finditer(r"\.|\[\]", path)} | {path}

    unplaced = [k.path for k in DOCUMENTED if not sections(k.path) & named]
    assert not unplaced, f"say in the reload table whether a reload changes: {unplaced}"


@pytest.mark.parametrize("key", DOCUMENTED, ids=lambda k: k.path)
def test_default_is_the_one_the_loader_applies(key: Key) -> None:
    """A required key's absence is refused at its path; any other key's absence gives the value
    the doc shows, read from what the loader built (not only from the dataclass)."""
    cell = row(key).default
    if key.required:
        assert cell.startswith("required"), f"`{key.path}` is required; the doc says {cell!r}"
        assert problems(without(key.path), key.path), f"the loader accepts a config without `{key.path}`"
        return
    shown = re.match(r"`([^`]*)`", cell)
    assert shown, f"`{key.path}`: the default cell must start with the default in backticks, got {cell!r}"
    config = parse_config(without(key.path), "probe", env={})
    assert shown.group(1) == render(read(config, key.steps), key)


@pytest.mark.parametrize("key", [k for k in DOCUMENTED if not k.required], ids=lambda k: k.path)
def test_the_loader_applies_the_dataclass_default(key: Key) -> None:
    """The default has one home, schema.py: validate.py applies the same (the doc shows either)."""
    config = parse_config(without(key.path), "probe", env={})
    assert read(config, key.steps) == key.schema_default


@pytest.mark.parametrize("key", DOCUMENTED, ids=lambda k: k.path)
def test_type_column_matches_the_field(key: Key) -> None:
    assert row(key).type.startswith(key.kind), f"`{key.path}` is a {key.kind}; the doc says {row(key).type!r}"


def _value(key: Key, n: float) -> Any:
    return int(n) if key.kind == "integer" else n


def _refused(key: Key, value: Any) -> bool:
    return bool(problems(edit(BASE, key.path, value), key.path))


def _accepted(key: Key, value: Any) -> bool:
    """Not refused by a bound or a type; a rule naming another key (backoff_max_s >= backoff_min_s)
    may still apply, and is documented in words."""
    return not [p for p in problems(edit(BASE, key.path, value), key.path) if BOUND_REFUSAL.search(p)]


@pytest.mark.parametrize("key", NUMERIC, ids=lambda k: k.path)
def test_numeric_bounds_are_the_ones_enforced(key: Key) -> None:
    """Each documented bound holds exactly (the value at it allowed or not as written, one step
    past it refused); a key with no documented upper bound takes a huge value."""
    found = bounds(row(key).allowed)
    assert any(op in (">", ">=") for op, _ in found), f"`{key.path}`: document its lower bound"
    step = 1 if key.kind == "integer" else 0.001
    for op, n in found:
        inside, outside = {">=": (n, n - step), ">": (n + step, n), "<=": (n, n + step), "<": (n - step, n)}[op]
        assert _accepted(key, _value(key, inside)), f"`{key.path}` refuses {inside} (documented {op} {n})"
        assert _refused(key, _value(key, outside)), f"`{key.path}` accepts {outside} (documented {op} {n})"
    if not any(op in ("<", "<=") for op, _ in found):
        assert _accepted(key, _value(key, 1e9)), f"`{key.path}` has an upper bound the doc does not give"
    if key.kind == "integer":
        assert _refused(key, 1.5)


@pytest.mark.parametrize(
    "key",
    [k for k in DOCUMENTED if k.choices or (k.path in ROWS and listed_choices(ROWS[k.path].allowed) is not None)],
    ids=lambda k: k.path,
)
def test_choices_are_the_ones_enforced(key: Key) -> None:
    listed = listed_choices(row(key).allowed)
    assert listed, f"`{key.path}` takes one of {key.choices}: list them after 'one of'"
    if key.choices:
        assert sorted(listed) == sorted(key.choices)
    as_list = key.kind.startswith("list")
    for choice in listed:
        assert not problems(edit(BASE, key.path, [choice] if as_list else choice), key.path), choice
    assert problems(edit(BASE, key.path, ["not-a-choice"] if as_list else "not-a-choice"), key.path)


# --- the examples --------------------------------------------------------------------------------

COMPLETE = [b for b in yaml_blocks(TEXT) if b.startswith("# complete example\n")]
FRAGMENTS = [b for b in yaml_blocks(TEXT) if not b.startswith("# complete example\n")]


def _env(text: str) -> dict[str, str]:
    """A value for every ${VAR} without a default (those with one keep their default)."""
    return {name: f"test-{name.lower()}" for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)}


def _merge(base: Any, extra: Any) -> Any:
    """`extra` over `base`: mappings key by key; list entries replace the one of the same name
    or id, or are added."""
    if isinstance(base, dict) and isinstance(extra, dict):
        return {**base, **{k: _merge(base[k], v) if k in base else v for k, v in extra.items()}}
    if isinstance(base, list) and isinstance(extra, list) and all(isinstance(e, dict) for e in base + extra):
        merged = {e.get("name", e.get("id")): e for e in base}
        merged.update({e.get("name", e.get("id")): e for e in extra})
        return list(merged.values())
    return extra


def test_there_is_a_complete_example() -> None:
    assert COMPLETE, "docs/configuration.md needs a ```yaml block starting with '# complete example'"
    assert TEXT.index(COMPLETE[0]) < TEXT.index("## server"), "the complete example comes first"


@pytest.mark.parametrize("block", COMPLETE, ids=lambda b: f"line-{TEXT[: TEXT.index(b)].count(chr(10)) + 1}")
def test_complete_example_loads(block: str, tmp_path: Path) -> None:
    """Through the router's own loader, from a file, as `router check` reads it."""
    path = tmp_path / "config.yaml"
    path.write_text(block, encoding="utf-8")
    config = load_config(path, env=_env(block))
    assert isinstance(config, Config) and config.providers and config.models


@pytest.mark.parametrize("block", FRAGMENTS, ids=lambda b: f"line-{TEXT[: TEXT.index(b)].count(chr(10)) + 1}")
def test_section_example_loads_into_the_complete_one(block: str) -> None:
    base = yaml.safe_load(COMPLETE[0])
    fragment = yaml.safe_load(block)
    assert isinstance(fragment, dict) and fragment
    config = parse_config(_merge(base, fragment), "docs example", env=_env(COMPLETE[0] + block))
    assert isinstance(config, Config)


def test_probe_document_is_valid() -> None:
    """The document the probes edit is itself valid, so each probe's problems are its own."""
    assert problems(BASE) == []
    assert REQUIRED not in [k.schema_default for k in DOCUMENTED if not k.required]
