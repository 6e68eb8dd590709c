"""A small named registry, so that a new prompt, backend or filter is one class.

>>> shapes = Registry("shape")
>>> @shapes.register("square")
... class Square:
...     pass
>>> shapes.get("square") is Square
True
>>> shapes.names()
['square']

A registry may also know names before their implementation is imported: ``modules`` maps a name to the
module that registers it, imported on the first :meth:`~Registry.get` of that name. Its names are then
known (:meth:`~Registry.names`, ``in``) without importing anything, so a low layer (the configuration)
can check a name that a higher one implements::

    >>> lazy = Registry("shape", modules={"circle": "no.such.module"})
    >>> "circle" in lazy, lazy.names()
    (True, ['circle'])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from inpars.errors import ConfigError

T = TypeVar("T")


class UnknownNameError(ConfigError, LookupError):
    """A name that is not in a registry (a configuration error); the message lists the names that are."""


class Registry(Generic[T]):
    """Maps names to classes (or factories) of one kind; ``modules``: name -> the module whose import
    registers it (imported when that name is first asked for)."""

    def __init__(self, kind: str, modules: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._modules: dict[str, str] = dict(modules or {})

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        if name not in self._items and name in self._modules:
            importlib.import_module(self._modules[name])
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown(name)) from None

    def unknown(self, name: str) -> str:
        """The one wording of every registry for a name it does not hold: ``unknown KIND 'NAME'; available:
        ...``."""
        return f"unknown {self.kind} '{name}'; available: {', '.join(self.names()) or '(none)'}"

    def names(self) -> list[str]:
        return sorted({*self._items, *self._modules})

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._modules

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
