"""The built-in evaluators, registered on first use (importing them imports no optional package)."""

from __future__ import annotations


def load_all() -> None:
    from . import clip_eval, evaluators, nudenet_eval  # noqa: F401  (each module registers its evaluators)
