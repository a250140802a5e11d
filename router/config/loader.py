"""Reading a config file: YAML with ${ENV} substitution, then validation (`router.config.validate`)
into the frozen dataclasses of `router.config.schema`. The only module that imports yaml."""

from __future__ import annotations

import os
from collections.abc import Mapping

import yaml

from router.config.schema import Config, ConfigError
from router.config.validate import parse_document


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, substitute and validate a YAML config file; `ConfigError` lists every problem."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(source, [f"cannot read config file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"config file is not UTF-8: {exc.reason} at byte {exc.start}"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = f" ({exc.context})" if exc.problem and exc.context else ""
        raise ConfigError(source, [f"{where}invalid YAML: {exc.problem or exc.context}{context}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"invalid YAML: {' '.join(str(exc).split())}"]) from None
    return parse_config(data, source, env)


def parse_config(data: object, source: str = "<memory>", env: Mapping[str, str] | None = None) -> Config:
    """Validate an already-loaded document (dicts, lists, scalars) into a `Config`."""
    return parse_document(data, source, env)
