"""Exceptions with messages a user can act on.

Every error raised on bad input names the file, the line and the field, so that nobody has to read a
traceback from deep inside a library to find out what is wrong with their data.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType


class InparsError(Exception):
    """Base class of the errors this package raises on purpose."""


class InputError(InparsError, ValueError):
    """A malformed input file: names the file, the 1-based line number and the field.

    >>> str(InputError("expected 4 columns, got 3", path="run.trec", line=7))
    'run.trec:7: expected 4 columns, got 3'
    """

    def __init__(
        self,
        message: str,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        if self.field is not None:
            where += f"field '{self.field}': "
        return where + self.message


class ConfigError(InparsError, ValueError):
    """An invalid configuration: the message names every offending key path."""


class LeakageError(InparsError, PermissionError):
    """A stage other than evaluation tried to read protected (test) relevance judgements."""


class MissingExtraError(InparsError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""


def require(module: str, extra: str, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install.

    >>> require("json", "dev").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f" for {purpose}" if purpose else ""
        raise MissingExtraError(
            f"the optional dependency '{module}' is needed{what}; "
            f"install it with: pip install 'inpars-toolkit[{extra}]'"
        ) from exc
