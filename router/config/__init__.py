"""Configuration: the schema (frozen dataclasses), and `load_config`, which reads a YAML file and
validates it once, at start, reporting every problem with its file and path.

    schema.py    the dataclasses and their defaults; imports nothing of the router's
    reader.py    walking a raw document with paths, ${ENV} substitution, durations
    validate.py  one function per section, cross-section checks
    loader.py    the file and YAML -> Config
"""

from router.config.loader import load_config, parse_config
from router.config.schema import *  # noqa: F403
from router.config.schema import ConfigError

__all__ = ["ConfigError", "load_config", "parse_config"]
