"""TOML reading on every supported Python: tomllib (3.11+) or tomli (3.10)."""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: requirements install tomli there
    import tomli as tomllib

loads = tomllib.loads
TOMLDecodeError = tomllib.TOMLDecodeError
