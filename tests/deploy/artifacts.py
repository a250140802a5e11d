"""Readers of the deployment artifacts (Dockerfile, deploy/compose.yaml, deploy/nginx.conf,
deploy/kubernetes/) for the tests that hold them to the router: just enough of each format to
take out what the router must agree with (commands, ports, paths, env), nothing more."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from router.app import create_app
from router.config import Config, parse_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"


# --- Dockerfile -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper-cased
    args: str  # the rest of the instruction, continuation lines joined


def dockerfile(path: Path = ROOT / "Dockerfile") -> list[list[Instruction]]:
    """The Dockerfile's stages, each the list of its instructions (FROM first)."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[list[Instruction]] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        elif instruction.keyword != "ARG":
            assert stages, f"{line!r} before the first FROM"
        if stages:
            stages[-1].append(instruction)
    return stages


def exec_form(args: str) -> list[str]:
    """An instruction's exec form (a JSON array of strings); fails on the shell form, which
    would put /bin/sh between the runtime's signals and the router."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def last(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert found, f"no {keyword} in the stage"
    return found[-1]


@dataclass(frozen=True)
class Healthcheck:
    options: dict[str, str]
    command: list[str]


def healthcheck(instruction: Instruction) -> Healthcheck:
    options, _, command = instruction.args.partition("CMD ")
    parsed = dict(o.removeprefix("--").split("=", 1) for o in options.split())
    return Healthcheck(parsed, exec_form(command))


# --- compose ------------------------------------------------------------------------------------

_COMPOSE_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default} (unset or empty), ${VAR-default} (unset);
    $$ is a literal $. An unset ${VAR} without a default fails: compose would warn and use ""."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, default = m.groups()
        got = env.get(name)
        if op == ":-":
            return got or default
        if op == "-":
            return default if got is None else got
        assert got is not None, f"compose needs {name} in the environment"
        return got

    return _COMPOSE_VAR.sub(repl, value)


def compose(path: Path = DEPLOY / "compose.yaml") -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def service_env(service: Mapping[str, Any], host_env: Mapping[str, str]) -> dict[str, str]:
    """A service's environment as the container sees it, given the host's (or .env's) variables."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(str(v), host_env) for k, v in env.items()}


def duration_s(value: str) -> float:
    """Compose's durations: 1m30s, 75s, 500ms."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a duration: {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def command_option(command: list[str], option: str) -> str:
    assert option in command, f"{option} missing from {command}"
    return command[command.index(option) + 1]


# --- nginx --------------------------------------------------------------------------------------


@dataclass
class Block:
    """One nginx directive: its name, arguments, and the directives of its block, if any."""

    name: str
    args: list[str]
    children: list[Block] = field(default_factory=list)

    def all(self, name: str) -> list[Block]:
        return [c for c in self.children if c.name == name]

    def one(self, name: str, *args: str) -> Block:
        found = [c for c in self.all(name) if list(c.args[: len(args)]) == list(args)]
        assert len(found) == 1, f"expected one {name} {' '.join(args)} in {self.name}, found {len(found)}"
        return found[0]

    def value(self, name: str) -> list[str]:
        return self.one(name).args


def nginx(text: str) -> Block:
    """The directives of an nginx config, as a tree (comments dropped)."""
    tokens: list[str] = []
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";{}")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens += list(lexer)
    root = Block("main", [])
    stack, words = [root], list[str]()
    for token in tokens:
        if token in (";", "{"):
            assert words, f"empty directive before {token!r}"
            block = Block(words[0], words[1:])
            stack[-1].children.append(block)
            if token == "{":
                stack.append(block)
            words = []
        elif token == "}":
            assert not words and len(stack) > 1, "unbalanced }"
            stack.pop()
        else:
            words.append(token)
    assert len(stack) == 1 and not words, "unterminated block or directive"
    return root


def nginx_seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", value)
    assert m, value
    return int(m.group(1)) * units[m.group(2) or "s"]


def nginx_bytes(value: str) -> int:
    m = re.fullmatch(r"(\d+)([kKmMgG])?", value)
    assert m, value
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[(m.group(2) or "").lower()]


# --- Kubernetes ---------------------------------------------------------------------------------


def kube_documents() -> dict[tuple[str, str], dict[str, Any]]:
    """Every manifest listed in kustomization.yaml, by (kind, name)."""
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for name in kustomization()["resources"]:
        for doc in yaml.safe_load_all((KUBE / name).read_text()):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in docs, f"{key} defined twice"
            docs[key] = doc
    return docs


def kustomization() -> dict[str, Any]:
    data = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    assert isinstance(data, dict)
    return data


# --- the router ---------------------------------------------------------------------------------


@cache
def router_routes() -> dict[str, frozenset[str]]:
    """The router's HTTP paths and their methods, from the app itself."""
    config = parse_config(
        {
            "server": {"allow_anonymous": True},
            "providers": [{"name": "p", "base_url": "http://127.0.0.1:9", "formats": ["openai-chat"]}],
            "models": [{"name": "m", "routes": [{"provider": "p", "model": "m"}]}],
            "ledger": {"enabled": False},
        }
    )
    app = create_app(config)
    return {r.path: frozenset(r.methods or ()) for r in app.routes}  # type: ignore[attr-defined]


def serves_get(path: str) -> bool:
    return "GET" in router_routes().get(path, frozenset())


def drain_bound_s(config: Config) -> float:
    """What a stop takes at most after SIGTERM: the grace, the drain timeout, and the last flush
    of aborted streams (router/ops/serve.py, _ABORT_FLUSH_S)."""
    from router.ops.serve import _ABORT_FLUSH_S

    return config.server.drain_grace_s + config.server.drain_timeout_s + _ABORT_FLUSH_S
