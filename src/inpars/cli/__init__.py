"""The ``inpars`` command line: a thin layer over the library, one module per subcommand.

Each module in this package defines ``add_parser(subparsers)``, which adds its subcommand and sets
``func`` (a callable taking the parsed arguments and returning an exit code). Modules are found
automatically, so a new subcommand is one new file.

:func:`main` is the one error boundary: an error a user can cause (bad input, config, path, model,
option) exits 2 with one line ``inpars CMD: error: ...`` naming what is wrong and what to do; any other
exception exits 1, also with one line. A traceback is printed only with ``-vv``. Secrets in URLs are
masked in every log line and error (:mod:`inpars.safety`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import traceback
from collections.abc import Sequence

from inpars import __version__

log = logging.getLogger("inpars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inpars",
        description="Synthetic training data from LLMs for neural rerankers (InPars, Promptagator).",
    )
    parser.add_argument("--version", action="version", version=f"inpars {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", default=False,
                        help="warnings, errors and the result only: no progress bars, no stage lines")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.add_parser(sub)
    for subparser in sub.choices.values():  # '-v' after the subcommand too: 'inpars run x.yaml -vv'
        if not any("--verbose" in a.option_strings for a in subparser._actions):
            subparser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                                   help="more logging; -vv also prints the traceback of an error")
        if not any("--quiet" in a.option_strings for a in subparser._actions):
            subparser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                                   help="warnings, errors and the result only")
    return parser


def setup_logging(verbosity: int, quiet: bool = False) -> None:
    """Logging for a command: ``quiet`` (``-q``) warnings and errors only; by default inpars' own INFO
    lines and one progress bar per long stage, the libraries silenced (:mod:`inpars.quiet`); ``-v`` INFO
    from everything; ``-vv`` DEBUG."""
    from inpars import quiet as q

    level = q.QUIET if quiet else min(verbosity, q.DEBUG)
    q.set_verbosity(level)  # the progress bars' switch, inherited by worker processes
    root_level = logging.DEBUG if level >= q.DEBUG else logging.INFO if level >= q.VERBOSE else logging.WARNING
    root = logging.getLogger()
    if not root.handlers:
        ours = q.TqdmHandler()
        ours.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(ours)
    # Logging configured by the caller (main() called in-process, e.g. under pytest) is left as it is.
    if any(isinstance(h, q.TqdmHandler) for h in root.handlers):
        root.setLevel(root_level)
        q.silence_libraries(level)
    # Stage progress is logged at INFO by inpars itself; visible unless quiet.
    logging.getLogger("inpars").setLevel(logging.WARNING if level <= q.QUIET else min(root_level, logging.INFO))
    from inpars.safety import SecretFilter

    for handler in root.handlers:
        if isinstance(handler, q.TqdmHandler):  # ours (a handler configured by a caller is left as it is)
            for f in [f for f in handler.filters if isinstance(f, q.LevelFilter)]:
                handler.removeFilter(f)
            # on the handler: a library that sets its own logger's level (bm25s sets DEBUG) passes no more
            handler.addFilter(q.LevelFilter(level))
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(SecretFilter())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quiet and args.verbose:
        parser.error("-q and -v cannot be combined")
    setup_logging(args.verbose, args.quiet)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"inpars {args.command}: interrupted; run it again to resume", file=sys.stderr)
        return 130
    except Exception as exc:
        from inpars.safety import describe_error, mask_secrets

        code, line = describe_error(exc)
        if args.verbose >= 2:
            print(mask_secrets("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
        print(f"inpars {args.command}: error: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
