"""The `loba` command line: train, eval, demo, toyworld."""

from .main import main

__all__ = ["main"]
