"""Loading a reranker in this process: the arguments checked, the family chosen, the scorer built.

:func:`load_local_scorer` is :func:`inpars.rerank.load_scorer` for ``executor: local``; the actors of a
:class:`~inpars.rerank.ray_scoring.RayScorer` call it too, each for its own scorer.
"""

from __future__ import annotations

from typing import Any

from inpars.catalog import DEFAULT_ENGINE, get_engine
from inpars.config import MAX_TOKENS
from inpars.models import resolve_model
from inpars.safety import check_device, check_range, check_threads
from inpars.scoring.base import LENGTH_FROM_MODEL, Scorer, model_max_length
from inpars.scoring.family import detect_model_type, get_family


def check_arguments(
    batch_size: int, max_length: int | None, engine: str, threads: int | None, device: str | None, *, present: bool
) -> None:
    """The checks of :func:`inpars.rerank.load_scorer`'s arguments (``present``: the device must be on this
    machine, which a Ray executor's actors check on theirs)."""
    get_engine(engine)
    check_range(batch_size, "batch_size", 1)
    if max_length is not None:
        check_range(max_length, "max_length", 16, MAX_TOKENS)
    if threads is not None:
        check_threads(check_range(threads, "threads", 1), "threads")
    check_device(device, "device", present=present)


def load_local_scorer(
    model: str,
    model_type: str | None = None,
    *,
    batch_size: int = 32,
    max_length: int | None = None,
    engine: str = DEFAULT_ENGINE,
    threads: int | None = None,
    device: str | None = None,
) -> Scorer:
    """:func:`inpars.rerank.load_scorer` in this process (``executor: local``)."""
    check_arguments(batch_size, max_length, engine, threads, device, present=True)
    family = get_family(model_type) if model_type is not None else None
    path = resolve_model(model)
    if family is None:
        family = get_family(detect_model_type(path))
    if max_length is None:  # the length the model was saved with (rerank.base.model_max_length)
        max_length = model_max_length(path, family.name) if family.name in LENGTH_FROM_MODEL else 256
    kwargs: dict[str, Any] = dict(
        batch_size=batch_size, max_length=max_length, engine=engine, threads=threads, device=device
    )
    return family.load_scorer(path, **kwargs)
