"""A small named registry used for losses, optimizers, schedules, presets and objectives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; refuses duplicates; unknown names fail with the list of choices."""

    def __init__(self, kind: str, field: str):
        self.kind = kind
        self.field = field
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False):
        """Register `obj` under `name`; without `obj`, return a decorator."""

        def add(item: T) -> T:
            key = name.lower()
            if key in self._items and not overwrite:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[key] = item
            return item

        if obj is None:
            return add
        return add(obj)

    def get(self, name: str) -> T:
        key = str(name).lower()
        if key not in self._items:
            choices = ", ".join(self.names()) or "(none)"
            raise ConfigError(self.field, f"unknown {self.kind} '{name}'. Registered: {choices}.")
        return self._items[key]

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

