"""``python -m inpars.<stage>``: the original InPars toolkit's module commands, answered by this package.

The original toolkit (PyPI ``inpars``, github.com/zetaalphavector/InPars) runs its stages as
``python -m inpars.generate``, ``inpars.filter``, ``inpars.generate_triples``, ``inpars.train``,
``inpars.rerank`` and ``inpars.evaluate``, with flags such as ``--base_model`` and ``--output``. Both
distributions install a top-level package ``inpars``, so only one of them can be installed in an
environment. Here each of those modules runs the matching ``inpars`` subcommand with the arguments given;
arguments in the original's style (``--snake_case`` flags, ``--input``, ``--output``, ...) exit 2 with a message that names the command
and its flags to use instead.

These modules are entry points into the command line, like the ``inpars`` console script: the command line is
looked up by name when one runs (:data:`COMMAND_LINE`), so that no module of the library imports
:mod:`inpars.cli` (the layers of ``pyproject.toml``'s ``[tool.importlinter]``; ``inpars.generate``, whose
``python -m`` block runs :func:`module_main`, is one of them).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Sequence

#: Original module -> this package's subcommand.
COMMANDS: dict[str, str] = {
    "generate": "generate",
    "filter": "filter",
    "generate_triples": "negatives",
    "train": "train",
    "rerank": "rerank",
    "evaluate": "evaluate",
}

#: the command line's entry point, as the console script names it (``[project.scripts]``)
COMMAND_LINE = "inpars.cli:main"

_ORIGINAL_FLAG = re.compile(r"^--[a-z0-9]+(_[a-z0-9]+)+(=|$)")
#: The original's flags without an underscore that no inpars subcommand has.
_ORIGINAL_ONLY = frozenset({"--input", "--output", "--triples", "--pairs", "--int8", "--fp16", "--tf"})

_HINTS = {
    "train": " 'inpars train --train FILE' reads the original's triples or pairs TSV as they are.",
    "generate": " Generation files of the original toolkit load unchanged in 'inpars filter' and 'inpars negatives'.",
}


def _is_original(arg: str) -> bool:
    return bool(_ORIGINAL_FLAG.match(arg)) or arg.split("=", 1)[0] in _ORIGINAL_ONLY


def _command_line() -> Callable[[list[str]], int]:
    """The ``inpars`` command's ``main`` (:data:`COMMAND_LINE`), imported when a module command runs."""
    module, _, name = COMMAND_LINE.partition(":")
    main: Callable[[list[str]], int] = getattr(importlib.import_module(module), name)
    return main


def run_module(module: str, argv: Sequence[str] | None = None) -> int:
    """Run ``inpars COMMAND ARGS`` for ``python -m inpars.<module> ARGS``; 2 for the original's flags."""
    stage = module.rsplit(".", 1)[-1]
    command = COMMANDS[stage]
    args = list(sys.argv[1:] if argv is None else argv)
    original = [a.split("=", 1)[0] for a in args if _is_original(a)]
    if original:
        print(
            f"python -m inpars.{stage}: {', '.join(original)} {'is a flag' if len(original) == 1 else 'are flags'} "
            f"of the original InPars toolkit's command line, which this package (inpars-toolkit) does not take. "
            f"Use 'inpars {command}' (also 'python -m inpars.{stage}') with its own flags: see "
            f"'inpars {command} --help'.{_HINTS.get(stage, '')} The two packages cannot be installed together "
            "(both are 'inpars').",
            file=sys.stderr,
        )
        return 2
    return _command_line()([command, *args])


def module_main(module: str) -> None:
    """Entry point for a module's ``if __name__ == "__main__":`` block: exits with :func:`run_module`'s code."""
    sys.exit(run_module(module))
