"""How much inpars, and the libraries it drives, print: the one switch behind the CLI's ``-q``, default and ``-v``.

The level is kept in ``$INPARS_VERBOSITY`` (set by :func:`set_verbosity`), so that worker processes (Ray
actors, ``torchrun`` ranks) inherit it:

- ``-1`` (``-q``): warnings and errors only, and the command's result lines; no progress bar.
- ``0`` (default): inpars' own INFO lines (one per stage step) and one progress bar per long stage, on a
  terminal; the libraries' info and debug lines, progress bars, model-loading reports and JVM warnings
  are silenced (:func:`silence_libraries`).
- ``1`` (``-v``): INFO from every library; nothing is silenced. ``2`` (``-vv``): DEBUG as well.

:func:`show_progress` is what every progress bar of inpars asks; :func:`bar` makes one (a tqdm bar, with
its rate and ETA). Nothing here imports a heavy library: silencing one that is not imported yet goes
through the environment variables it reads when it is.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

ENV = "INPARS_VERBOSITY"
QUIET, DEFAULT, VERBOSE, DEBUG = -1, 0, 1, 2

#: loggers of libraries that log at INFO (or DEBUG, as bm25s does by default) what a user cannot act on
NOISY_LOGGERS = (
    "bm25s", "transformers", "sentence_transformers", "datasets", "huggingface_hub", "accelerate",
    "urllib3", "httpx", "httpcore", "filelock", "ray", "jnius", "jpype", "pyserini", "onnxruntime",
    "torch", "xllamacpp", "openai", "numba", "matplotlib", "PIL", "fsspec", "pyterrier",
)
#: read by those libraries when they are imported: their own verbosity and progress bars
LIBRARY_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",  # also transformers' model LOAD REPORT (a warning of its own logger)
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # huggingface_hub's bars, and transformers' "Loading weights" bars
    "DATASETS_VERBOSITY": "error",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}
_set_here: set[str] = set()  # the variables of LIBRARY_ENV set by this module (not by the user)
_levels_set: set[str] = set()  # the loggers of NOISY_LOGGERS whose level this module set


def verbosity() -> int:
    """The current level: ``$INPARS_VERBOSITY``, else 0 (the default)."""
    try:
        return int(os.environ.get(ENV, DEFAULT))
    except ValueError:
        return DEFAULT


def set_verbosity(level: int) -> None:
    """Set the level for this process and those it starts (``-1`` quiet ... ``2`` debug)."""
    os.environ[ENV] = str(max(QUIET, min(DEBUG, int(level))))


def show_progress(show: bool | None = None) -> bool:
    """Whether to draw a progress bar: never when quiet; else ``show``, and when ``show`` is None only
    when stderr is a terminal (a log file gets no bars)."""
    if verbosity() <= QUIET:
        return False
    if show is None:
        return sys.stderr.isatty()
    return bool(show)


def bar(iterable: Any = None, *, total: float | None = None, desc: str, unit: str = "it",
        show: bool | None = None, **kwargs: Any) -> Any:
    """A tqdm bar (count, rate and ETA; it disappears when done) drawn when :func:`show_progress` allows it."""
    from tqdm.auto import tqdm

    kwargs.setdefault("leave", False)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not show_progress(show), dynamic_ncols=True,
                **kwargs)


def silence_libraries(level: int | None = None) -> None:
    """Below ``-v``: the libraries' loggers to WARNING (transformers' and datasets' to ERROR), their progress
    bars off, and the environment set so that a library imported later (here or in a worker) starts quiet.
    At ``-v`` and above, what an earlier call set is undone."""
    level = verbosity() if level is None else level
    quiet = level < VERBOSE
    for name in NOISY_LOGGERS:
        if quiet:
            logging.getLogger(name).setLevel(logging.WARNING)
            _levels_set.add(name)
        elif name in _levels_set:
            logging.getLogger(name).setLevel(logging.NOTSET)
            _levels_set.discard(name)
    for key, value in LIBRARY_ENV.items():
        if quiet and key not in os.environ:
            os.environ[key] = value
            _set_here.add(key)
        elif not quiet and key in _set_here:
            os.environ.pop(key, None)
            _set_here.discard(key)
    # libraries already imported read their variables no more: tell them directly
    if "transformers" in sys.modules:
        from transformers.utils import logging as tf_logging

        if quiet:
            tf_logging.set_verbosity_error()
            tf_logging.disable_progress_bar()
        else:
            tf_logging.set_verbosity_warning()
            tf_logging.enable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

        (disable_progress_bars if quiet else enable_progress_bars)()
    if "datasets" in sys.modules:
        import datasets

        if quiet:
            datasets.utils.logging.set_verbosity_error()
            datasets.disable_progress_bars()
        else:
            datasets.utils.logging.set_verbosity_warning()
            datasets.enable_progress_bars()


# ---------------------------------------------------------------------------------------------------
# the log handler


class LevelFilter(logging.Filter):
    """What the log handler prints at a level: inpars' INFO lines from the default level up, the other
    loggers' INFO from ``-v`` and DEBUG from ``-vv``; warnings and errors always.

    On the handler, not the loggers: a library may set its own logger's level when it is imported (bm25s
    sets DEBUG), and the root handler would print whatever such a logger lets through."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or self.level >= DEBUG:
            return True
        if record.levelno < logging.INFO or self.level <= QUIET:
            return False
        return self.level >= VERBOSE or record.name == "inpars" or record.name.startswith("inpars.")


class TqdmHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that prints above a progress bar on the screen instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm_module = sys.modules.get("tqdm")
        if tqdm_module is None:  # no bar can be on the screen
            super().emit(record)
            return
        try:
            tqdm_module.tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - as logging.StreamHandler does
            self.handleError(record)


# ---------------------------------------------------------------------------------------------------
# the JVM of the pyserini backend


def jvm_options() -> list[str]:
    """Options for the JVM of the pyserini backend, below ``-v``: no JVM log lines below error, no warning
    that Lucene calls ``sun.misc.Unsafe`` (Java 23 and later; an unknown property is ignored by older ones)."""
    if verbosity() >= VERBOSE:
        return []
    return ["-Xlog:disable", "-Xlog:all=error:stderr", "-Dsun.misc.unsafe.memory.access=allow"]


def quiet_java_logging(autoclass: Any) -> None:
    """Below ``-v``: java.util.logging at SEVERE (Lucene warns there that it was built for an older Java)."""
    if verbosity() >= VERBOSE:
        return
    level = autoclass("java.util.logging.Level")
    autoclass("java.util.logging.Logger").getLogger("").setLevel(level.SEVERE)
