"""The one protocol for what a stage did: an object with ``to_json() -> dict``.

Every stage function of the library returns such a summary (``GenerateSummary``, ``FilterReport``,
``NegativesSummary``, ``TrainSummary``, ...); the pipeline stores ``to_json()`` in the stage manifest and
the report reads it from there.

>>> from dataclasses import dataclass
>>> @dataclass
... class Done:
...     n: int
...     def to_json(self) -> dict:
...         return {"n": self.n}
>>> as_dict(Done(3))
{'n': 3}
>>> as_dict({"n": 3})
{'n': 3}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Summary(Protocol):
    """A stage's summary: JSON-able counts, figures and paths."""

    def to_json(self) -> dict[str, Any]: ...


def as_dict(summary: Summary | Mapping[str, Any] | None) -> dict[str, Any]:
    """A summary (or an already JSON-able mapping) as a plain dict; ``None`` gives ``{}``."""
    if summary is None:
        return {}
    if isinstance(summary, Mapping):
        return dict(summary)
    if isinstance(summary, Summary):
        return dict(summary.to_json())
    raise TypeError(f"a stage summary must have to_json() or be a mapping, got {type(summary).__name__}")
