""":func:`fit_on`: the choice of the interpolation weight on tuning queries reranked by a scorer.

The fusion itself (tail, interpolation, weight tuning on given runs) is :mod:`inpars.fusion`; this module adds
the scoring (:func:`inpars.rerank.rerank_run`). The whole path from a first-stage run to the written runs
(decision included) is :func:`inpars.reranking.rerank_and_fuse`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from inpars.datasets import Dataset
from inpars.fusion import DEFAULT_ALPHAS, RunDict, TuneSet, tune_alpha
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
    there (:func:`tune_alpha`); returns ``(alpha, {alpha: value}, reranked top)``. The decision
    (:func:`inpars.decision.decide`) fits each candidate model with it."""
    tuned = rerank_run(ds, tune.first, None, queries=tune.queries, scorer=scorer, depth=depth, resume=resume,
                       show_progress=show_progress, cache=cache)
    alpha, table = tune_alpha(tune.first, tuned, tune.qrels, alphas)
    return alpha, table, tuned
