"""Fusing a reranker with its first stage: the tail below the reranked depth, score interpolation, and the
choice of the interpolation weight on tuning queries.

Runs in, run out: nothing here scores a pair (this module imports nothing of :mod:`inpars.rerank`).
:func:`inpars.reranking.rerank_and_fuse`, which reranks and then fuses with these functions, is the one
path from a first-stage run to the runs that are evaluated: ``inpars rerank``, the ``rerank`` stage of
``inpars run`` and the Python API call it, and tuning queries are drawn with :func:`sample_ids` by all.

- :func:`append_tail`: reranking only the top ``depth`` must not cut recall at deeper cut-offs, so the
  first-stage documents below ``depth`` follow the reranked ones, in first-stage order.
- :func:`interpolate`: ``alpha * rerank + (1 - alpha) * first_stage`` on per-query min-max normalised
  scores (:func:`minmax`).
- :func:`tune_alpha`: the ``alpha`` with the best nDCG@10 on tuning queries, from relevance judgements
  given as a dict (a train/dev split's, or pseudo-judgements of synthetic queries); never the test split
  (:func:`tuning_qrels` refuses it).

>>> first = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
>>> top = {"q": {"b": 0.9, "a": 0.1}}
>>> append_tail(top, first, depth=2)
{'q': {'b': 0.9, 'a': 0.1, 'c': -0.9}}
>>> sample_ids(["q1", "q2", "q3", "q4"], 2, seed=1) == sample_ids(["q1", "q2", "q3", "q4"], 2, seed=1)
True
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from inpars.datasets import PROTECTED_SPLITS, Dataset, ranked
from inpars.errors import ConfigError, InputError, LeakageError
from inpars.records import Qrels, Run

log = logging.getLogger(__name__)

RunDict = Run
DEFAULT_ALPHAS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
DEFAULT_MEASURE = "nDCG@10"


def minmax(scores: dict[str, float]) -> dict[str, float]:
    """Scores mapped linearly onto [0, 1] (all equal -> all 0).

    >>> minmax({"a": 2.0, "b": 4.0, "c": 3.0})
    {'a': 0.0, 'b': 1.0, 'c': 0.5}
    """
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    span = hi - lo
    return {d: (s - lo) / span if span > 0 else 0.0 for d, s in scores.items()}


def interpolate(first_stage: RunDict, reranked: RunDict, alpha: float) -> RunDict:
    """``alpha * rerank + (1 - alpha) * first_stage`` on per-query min-max normalised scores.

    Covers the documents of ``reranked``; a document the first stage did not score gets the lowest
    first-stage value (0). ``alpha=1`` keeps the reranker's order, ``alpha=0`` the first stage's.

    >>> first = {"q": {"a": 10.0, "b": 5.0, "c": 0.0}}
    >>> rr = {"q": {"a": 0.0, "b": 1.0, "c": 2.0}}
    >>> interpolate(first, rr, 0.5)
    {'q': {'a': 0.5, 'b': 0.5, 'c': 0.5}}
    >>> interpolate(first, rr, 0.25)["q"]["a"]
    0.75
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
    out: RunDict = {}
    n_missing = 0
    for qid, rr in reranked.items():
        fs_raw = first_stage.get(qid, {})
        fs = minmax({d: fs_raw[d] for d in rr if d in fs_raw})
        n_missing += sum(1 for d in rr if d not in fs)
        rn = minmax(rr)
        out[qid] = {d: alpha * rn[d] + (1.0 - alpha) * fs.get(d, 0.0) for d in rr}
    if n_missing:
        log.warning("%d reranked documents have no first-stage score; counted as the lowest", n_missing)
    return out


def append_tail(reranked: RunDict, first_stage: RunDict, depth: int) -> RunDict:
    """Put the first-stage documents below ``depth`` back under the reranked ones, in first-stage order.

    The tail keeps its first-stage (trec_eval) order, with scores strictly below every reranked score.

    >>> append_tail({"q": {"b": 0.9, "a": 0.1}}, {"q": {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}}, 2)
    {'q': {'b': 0.9, 'a': 0.1, 'c': -0.9, 'd': -1.9}}
    """
    out: RunDict = {}
    for qid, scores in reranked.items():
        merged = dict(scores)
        floor = min(scores.values()) if scores else 0.0
        tail = [d for d, _ in ranked(first_stage.get(qid, {}))[depth:] if d not in merged]
        for i, d in enumerate(tail, start=1):
            merged[d] = floor - float(i)
        out[qid] = merged
    return out


def fuse(first_stage: RunDict, top: RunDict, alpha: float | None, depth: int) -> RunDict:
    """The run a ranker returns: the reranked top ``depth`` (fused with the first stage at ``alpha``, or the
    reranker's order when ``alpha`` is None), then the first-stage tail (:func:`append_tail`).

    >>> fuse({"q": {"a": 3.0, "b": 2.0, "c": 1.0}}, {"q": {"a": 0.0, "b": 1.0}}, 0.5, depth=2)
    {'q': {'a': 0.5, 'b': 0.5, 'c': -0.5}}
    """
    return append_tail(top if alpha is None else interpolate(first_stage, top, alpha), first_stage, depth)


def sample_ids(ids: Iterable[str], n: int, seed: int) -> list[str]:
    """``n`` of ``ids`` drawn with ``random.Random(seed)``, in their given order (all when there are
    ``n`` or fewer): the one way tuning queries are chosen, by ``inpars run`` and ``inpars rerank`` alike.

    >>> sample_ids(["q1", "q2", "q3"], 5, seed=1)
    ['q1', 'q2', 'q3']
    >>> len(sample_ids([f"q{i}" for i in range(10)], 4, seed=7))
    4
    """
    ids = list(ids)
    if n < 1:
        raise ConfigError(f"the number of sampled queries must be >= 1, got {n}")
    if len(ids) <= n:
        return ids
    position = {q: i for i, q in enumerate(ids)}
    return sorted(random.Random(seed).sample(ids, n), key=position.__getitem__)


def tuning_qrels(ds: Dataset, split: str) -> Qrels:
    """The relevance judgements of a tuning split; a protected (test) split is refused, whatever the
    context: a weight tuned on its judgements would leak them into the system."""
    if split in PROTECTED_SPLITS:
        raise LeakageError(
            f"the interpolation weight may not be tuned on split '{split}': it is reserved for evaluation, "
            "and a weight tuned on its judgements would leak them into the result; tune on a train/dev "
            "split (e.g. 'train')"
        )
    return ds.qrels_dict(split)


def tune_alpha(
    first_stage: RunDict,
    reranked: RunDict,
    qrels: Qrels,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    measure: str = DEFAULT_MEASURE,
) -> tuple[float, dict[str, float]]:
    """Choose the interpolation weight; returns ``(best_alpha, {f"{alpha:g}": value})``.

    Evaluated with ``qrels`` on the queries of ``reranked`` that have judgements. Ties go to the larger
    alpha (more weight on the reranker).
    """
    if not alphas:
        raise ConfigError("alphas is empty")
    from inpars.evaluation import evaluate_runs, parse_measures

    qids = [q for q in reranked if q in qrels]
    if not qids:
        raise InputError("no reranked tuning query has relevance judgements")
    name = str(parse_measures([measure])[0])
    runs = {f"{a:g}": interpolate(first_stage, reranked, a) for a in alphas}
    res = evaluate_runs(qrels, runs, measures=[measure], tests=[], query_ids=qids)
    table = {k: float(res.aggregate[k][name]) for k in runs}
    best = max(alphas, key=lambda a: (table[f"{a:g}"], a))
    log.debug(
        "interpolation weight on %d tuning queries (%s): alpha=%g (%.4f); alpha=1: %s",
        len(qids), name, best, table[f"{best:g}"], table.get("1"),
    )
    return float(best), table


@dataclass
class TuneSet:
    """Tuning queries: their first-stage run, texts and relevance judgements."""

    first: RunDict
    queries: dict[str, str]
    qrels: Qrels
