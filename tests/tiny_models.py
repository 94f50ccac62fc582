"""Tests build their tiny models with the package's offline builders."""

from loba.tiny_models import *  # noqa: F401,F403
from loba.tiny_models import _bytes_to_unicode  # noqa: F401
