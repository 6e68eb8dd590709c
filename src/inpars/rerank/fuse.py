"""Reranking, then fusing with the first stage: :func:`rerank_and_fuse`, the one path from a first-stage run
to the runs that are evaluated (``inpars rerank`` and the ``rerank`` stage of ``inpars run`` both call it),
and :func:`fit_on`, the choice of the interpolation weight on tuning queries reranked by a scorer.

The fusion itself (tail, interpolation, weight tuning on given runs) is :mod:`inpars.fusion`; this module adds
the scoring (:func:`inpars.rerank.rerank_run`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars.datasets import Dataset
from inpars.fusion import DEFAULT_ALPHAS, RunDict, TuneSet, append_tail, fuse, tune_alpha
from inpars.rerank.run import rerank_run
from inpars.scoring.base import Scorer


def fit_on(
    ds: Dataset,
    tune: TuneSet,
    scorer: Scorer,
    *,
    depth: int,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    resume: bool = True,
    cache: str | Path | None = None,
    show_progress: bool | None = None,
) -> tuple[float, dict[str, float], RunDict]:
    """Rerank the top ``depth`` of the tuning queries with ``scorer`` and choose the interpolation weight
    there (:func:`tune_alpha`); returns ``(alpha, {alpha: value}, reranked top)``. ``rerank_and_fuse`` tunes
    with it, and a label-free run compares checkpoints with it (the value at ``alpha``)."""
    tuned = rerank_run(ds, tune.first, None, queries=tune.queries, scorer=scorer, depth=depth, resume=resume,
                       show_progress=show_progress, cache=cache)
    alpha, table = tune_alpha(tune.first, tuned, tune.qrels, alphas)
    return alpha, table, tuned


@dataclass
class Fused:
    """What :func:`rerank_and_fuse` produced.

    ``top``: the reranked top ``depth`` (reranker scores); ``reranked``: ``top`` followed by the first-stage
    tail (:func:`append_tail`); ``interpolated``: the interpolation at the tuned ``alpha``, tail appended
    (None without tuning); ``alpha_table``: the measure for each alpha tried; ``pairs``: (query, document)
    pairs of the reranked top; ``seconds``: wall time of reranking those; ``tune_queries``: ids of the
    queries the weight was tuned on.
    """

    top: RunDict
    reranked: RunDict
    interpolated: RunDict | None = None
    alpha: float | None = None
    alpha_table: dict[str, float] = field(default_factory=dict)
    pairs: int = 0
    seconds: float = 0.0
    tune_queries: list[str] = field(default_factory=list)


def rerank_and_fuse(
    ds: Dataset,
    first: RunDict,
    queries: dict[str, str],
    *,
    scorer: Scorer,
    depth: int,
    tune: TuneSet | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    resume: bool = True,
    cache_dir: str | Path | None = None,
    show_progress: bool | None = None,
) -> Fused:
    """Rerank the top ``depth`` of ``first`` with ``scorer``, append the first-stage tail, and with
    ``tune`` interpolate with the first stage at the weight that is best on the tuning queries.

    ``queries`` holds the texts of the queries to rerank (a run query without one is skipped). Score caches
    (resumable, see :func:`inpars.rerank.rerank_run`) go to ``cache_dir/eval.scores.jsonl`` and
    ``cache_dir/tune.scores.jsonl`` when ``cache_dir`` is given. Nothing else is written: callers write the
    runs they want from the returned :class:`Fused`.
    """
    cache = Path(cache_dir) if cache_dir is not None else None
    t0 = time.perf_counter()
    top = rerank_run(
        ds, first, None, queries=queries, scorer=scorer, depth=depth, resume=resume, show_progress=show_progress,
        cache=cache / "eval.scores.jsonl" if cache is not None else None,
    )
    seconds = time.perf_counter() - t0
    fused = Fused(top=top, reranked=append_tail(top, first, depth), pairs=sum(len(v) for v in top.values()),
                  seconds=seconds)
    if tune is None:
        return fused
    fused.alpha, fused.alpha_table, tuned = fit_on(
        ds, tune, scorer, depth=depth, alphas=alphas, resume=resume, show_progress=show_progress,
        cache=cache / "tune.scores.jsonl" if cache is not None else None,
    )
    fused.interpolated = fuse(first, top, fused.alpha, depth)
    fused.tune_queries = [q for q in tuned if q in tune.qrels]
    return fused


def describe(fused: Fused) -> dict[str, Any]:
    """A JSON-able summary of a fusion (no runs): alpha, its table, counts and timing."""
    return {
        "alpha": fused.alpha,
        "alpha_table": fused.alpha_table,
        "queries": len(fused.top),
        "pairs": fused.pairs,
        "seconds": round(fused.seconds, 3),
        "tune_queries": fused.tune_queries,
    }
