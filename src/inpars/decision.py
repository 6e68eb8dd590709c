"""What a run decides without labels, and on what evidence: the reranking model and the fusion weight.

A label-free run holds out the synthetic queries of a few documents (the pseudo-dev set, each query with
its source document as the one relevant document). On that set :func:`decide`

- keeps the **start** checkpoint unless the fine-tuned one is better by a paired t-test at ``p <
  max_p`` (a tie, a small or noisy difference: the start model, and the decision says so);
- takes the fusion weight that is best there, unless a fixed ``alpha`` is given;
- falls back to the start model and :data:`FALLBACK_ALPHA` when the set holds fewer than
  ``min_queries`` queries, where a choice would follow noise;
- measures the gain of the chosen fusion over BM25 on the set: mean difference, a seeded bootstrap 95%
  interval and the paired t-test p-value (:func:`paired_gain`).

Nothing here reads judgements: the caller passes the tuning set's (pseudo-)judgements in.

>>> gain = paired_gain([0.5, 0.7, 0.9, 0.6], [0.4, 0.6, 0.8, 0.6], seed=1)
>>> round(gain["gain"], 3), gain["queries"], gain["ci95"][0] <= gain["gain"] <= gain["ci95"][1]
(0.075, 4, True)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inpars.evaluation import parse_measures, per_query_values, ttest_pvalue
from inpars.fusion import DEFAULT_MEASURE, TuneSet, interpolate
from inpars.rerank.fuse import fit_on
from inpars.scoring.base import release

if TYPE_CHECKING:
    from inpars.datasets import Dataset
    from inpars.records import Run
    from inpars.scoring.base import Scorer

log = logging.getLogger(__name__)

#: The fusion weight used when the tuning set is too small to choose one: BM25 and the reranker count alike.
FALLBACK_ALPHA = 0.5


def paired_gain(x: Sequence[float], y: Sequence[float], *, seed: int = 0, resamples: int = 2000) -> dict[str, Any]:
    """Mean per-query gain of ``x`` over ``y``, a percentile bootstrap 95% interval (seeded) and the paired
    t-test p-value."""
    import numpy as np

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(a)
    d = a - b
    out: dict[str, Any] = {"queries": n, "mean": float(a.mean()) if n else None,
                           "baseline": float(b.mean()) if n else None, "gain": float(d.mean()) if n else None,
                           "ci95": None, "p": ttest_pvalue(list(a), list(b))}
    if n >= 2:
        idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
        means = d[idx].mean(axis=1)
        out["ci95"] = [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]
    return out


def values_at(tune: TuneSet, reranked: Run, alpha: float, measure: str = DEFAULT_MEASURE) -> dict[str, float]:
    """Per-query ``measure`` of the fusion at ``alpha`` of the tuning set's first stage with ``reranked``,
    over the tuning queries that have judgements (``alpha=0``: the first stage's own order)."""
    qids = [q for q in reranked if q in tune.qrels]
    parsed = parse_measures([measure])
    values = per_query_values(tune.qrels, interpolate(tune.first, reranked, alpha), parsed, qids)
    return values[str(parsed[0])]


@dataclass
class Fit:
    """One candidate model on the tuning set: its best weight, the weight table, its reranked top."""

    alpha: float
    table: dict[str, float]
    reranked: Run
    #: the loaded scorer, kept when it holds nothing outside this process (else None: load it again)
    scorer: Any = None


@dataclass
class Decision:
    """The model and weight a run uses, and why.

    ``model``: a candidate's name (``trained`` or ``start``); ``alpha``: the fusion weight; ``reason``: one
    sentence; ``evidence``: the chosen fusion against BM25 on the tuning set (:func:`paired_gain`), with the
    candidates' values under ``candidates`` and the model comparison under ``comparison``."""

    model: str
    alpha: float
    reason: str
    #: where ``alpha`` comes from: ``tuned`` (best on the tuning set), ``given`` or ``fallback``
    alpha_source: str = "tuned"
    table: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    candidates: dict[str, float] = field(default_factory=dict)
    comparison: dict[str, Any] | None = None


def decide(
    ds: Dataset,
    tune: TuneSet,
    loaders: Mapping[str, Callable[[], Scorer]],
    *,
    depth: int,
    alphas: Sequence[float],
    alpha: float | None = None,
    min_queries: int = 30,
    max_p: float = 0.05,
    seed: int = 0,
    where: str = "pseudo-dev",
    owned: bool = True,
    cache_dir: Path | None = None,
) -> tuple[Decision, dict[str, Fit]]:
    """Fit each candidate of ``loaders`` on ``tune`` and decide: ``trained`` and ``start`` (the fine-tuned
    model and its start checkpoint), or one candidate of any name (a model the config gives).

    Each scorer is loaded, fitted and released in turn (a Ray scorer's actors never overlap), unless the
    loaders hand out scorers the caller owns (``owned=False``: never released, always kept). Returns the
    decision and the fits; a fit's ``scorer`` is None where it was released (load the chosen one again).
    ``cache_dir``: where each candidate's tuning scores are kept (``tune.NAME.scores.jsonl``, resumable, see
    :func:`inpars.rerank.rerank_run`)."""
    fits: dict[str, Fit] = {}
    for name, load in loaders.items():
        scorer = load()
        try:
            cache = cache_dir / f"tune.{name}.scores.jsonl" if cache_dir is not None else None
            best, table, reranked = fit_on(ds, tune, scorer, depth=depth, alphas=alphas, show_progress=False,
                                           cache=cache)
        finally:
            kept = None if owned and release(scorer) else scorer
        fits[name] = Fit(best, table, reranked, kept)
    # each candidate's per-query values at the weight it would fuse at: measured once, used by the
    # comparison, the candidates' figures and (where the decision keeps that weight) the evidence
    weights = {name: f.alpha if alpha is None else alpha for name, f in fits.items()}
    values = {name: values_at(tune, f.reranked, weights[name]) for name, f in fits.items()}
    n = len(next(iter(values.values())))
    fallback = "start" if "start" in fits else next(iter(fits))
    if n < min_queries:
        chosen, weight = fallback, FALLBACK_ALPHA if alpha is None else alpha
        reason = (f"`{where}` holds {n} queries, fewer than the {min_queries} a choice needs: the "
                  f"{'start model' if chosen == 'start' else 'model'} and weight {weight:g} are kept without a choice")
        decision = Decision(chosen, weight, reason, alpha_source="fallback" if alpha is None else "given")
    else:
        decision = _compare(values, weights, given=alpha is not None, max_p=max_p, seed=seed, where=where)
        decision.alpha_source = "tuned" if alpha is None else "given"
    fit = fits[decision.model]
    decision.table = fit.table
    kept_weight = decision.alpha == weights[decision.model]
    chosen_values = values[decision.model] if kept_weight else values_at(tune, fit.reranked, decision.alpha)
    bm25_values = values_at(tune, fit.reranked, 0.0)
    qids = list(chosen_values)
    decision.evidence = paired_gain([chosen_values[q] for q in qids], [bm25_values[q] for q in qids], seed=seed)
    decision.candidates = {name: round(sum(v.values()) / max(len(v), 1), 6) for name, v in values.items()}
    (log.warning if n < min_queries else log.info)("%s", decision.reason.replace("`", ""))
    return decision, fits


def _compare(values: dict[str, dict[str, float]], weights: dict[str, float], *, given: bool, max_p: float,
             seed: int, where: str) -> Decision:
    """The decision between the candidates from their per-query ``values`` at their ``weights``."""
    if "start" not in values:  # one candidate: the trained model, or a model the config gives
        name = next(iter(values))
        weight = weights[name]
        what = "the fine-tuned model" if name == "trained" else "the model the config gives"
        return Decision(name, weight, f"{what}, fused at weight {weight:g} "
                        f"({'given; measured on' if given else 'the best on'} `{where}`)")
    w_trained, w_start = weights["trained"], weights["start"]
    t_values, s_values = values["trained"], values["start"]
    qids = list(t_values)
    comparison = paired_gain([t_values[q] for q in qids], [s_values[q] for q in qids], seed=seed)
    gain, p = comparison["gain"] or 0.0, comparison["p"]
    if gain > 0 and p < max_p:
        reason = (f"the fine-tuned model fuses better than the start model on `{where}` "
                  f"({gain:+.4f}, p = {p:.3g} < {max_p:g})")
        chosen, weight = "trained", w_trained
    else:
        if gain <= 0:
            reason = f"the fine-tuned model fuses no better than the start model on `{where}` ({gain:+.4f})"
        else:
            reason = (f"the fine-tuned model is not significantly better than the start model on `{where}` "
                      f"({gain:+.4f}, p = {p:.3g}, not below {max_p:g})")
        reason += ": the start model is kept"
        chosen, weight = "start", w_start
    return Decision(chosen, weight, reason, comparison=comparison)
