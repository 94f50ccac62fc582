"""Tests build their tiny models with the package's offline builders."""

from loba.tiny_models import *  # noqa: F401,F403
