"""A small named registry, so that a new prompt, backend or filter is one class.

>>> shapes = Registry("shape")
>>> @shapes.register("square")
... class Square:
...     pass
>>> shapes.get("square") is Square
True
>>> shapes.names()
['square']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from inpars.errors import InparsError

T = TypeVar("T")


class UnknownNameError(InparsError, LookupError):
    """A name that is not in a registry; the message lists the names that are."""


class Registry(Generic[T]):
    """Maps names to classes (or factories) of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'; available: {', '.join(sorted(self._items)) or '(none)'}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
