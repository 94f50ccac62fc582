"""Errors that name the node and the field, so a bad input is fixed in one look and never crashes the server.

ComfyUI shows an exception's message on the failing node and keeps serving; these helpers make that
message say which LOBA node, which field, and what to do.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from types import MappingProxyType

from ..loba.errors import ConfigError, LobaError, SpecError


class NodeInputError(ValueError):
    def __init__(self, node: str, field: str, message: str):
        self.node, self.field = node, field
        super().__init__(f"{node}, input '{field}': {message}")


def fail(node: str, field: str, message: str) -> NodeInputError:
    return NodeInputError(node, field, message)


def finite_number(value, node: str, field: str) -> float:
    """A FLOAT widget's value: ComfyUI's min/max check lets NaN through (every comparison with NaN is false)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(node, field, f"must be a finite number, e.g. 1.0; got {value!r}")
    return float(value)


def _widget_name(field: str, widget_names: Mapping[str, str]) -> str:
    """The name the user sees on the node for an engine field (resolutions[0] -> resolution)."""
    return widget_names.get(field.split("[", 1)[0], field)


@contextlib.contextmanager
def reported_as(node: str, default_field: str = "settings", widget_names: Mapping[str, str] = MappingProxyType({})
                ) -> Iterator[None]:
    """Re-raise engine errors with the node's name in front (the engine message already names its field), under the
    widget's own name where the node shows the engine field by another one."""
    try:
        yield
    except NodeInputError:
        raise
    except ConfigError as exc:
        raise NodeInputError(node, _widget_name(exc.field, widget_names), str(exc).split(": ", 1)[-1]) from exc
    except SpecError as exc:
        raise NodeInputError(node, _widget_name(exc.field, widget_names), str(exc)) from exc
    except LobaError as exc:
        raise NodeInputError(node, default_field, str(exc)) from exc
