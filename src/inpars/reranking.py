"""The one reranking path: from a first-stage run, query texts and the candidate rerankers to the decision
(which model, at what fusion weight), the written runs and the fusion record.

``inpars rerank``, the ``rerank`` stage of ``inpars run`` and the Python API (``inpars.rerank_and_fuse``) all
call :func:`rerank_and_fuse`, so they decide by the same rule (:func:`inpars.decision.decide`) and write the
same files with the same keys (:class:`RerankFiles`):

- ``reranked``: each query's top ``depth`` in the reranker's order, the first-stage tail after it;
- ``interpolated``: the fusion with the first stage at the chosen (or given) weight, tail appended; written
  whenever there is a weight;
- ``record``: the fusion record (:func:`fusion_record`), written when the weight or model was chosen on a
  tuning set: the weight, where it was chosen and on how many queries, the weight table, the model, the
  reason and the evidence (the chosen fusion against BM25 on the tuning set);
- ``top`` (optional): the reranked top alone; ``scores`` (optional): the folder of the resumable score caches
  (``eval.scores.jsonl``, and ``tune.NAME.scores.jsonl`` for each candidate; see
  :func:`inpars.rerank.rerank_run`).

The tuning set is a :class:`~inpars.fusion.TuneSet`: a labelled split's queries (:func:`labelled_tune_set`,
opt-in: it reads that split's judgements) or the label-free pseudo-dev set (:mod:`inpars.pseudo_dev`).
Nothing here reads judgements of its own accord.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars.datasets import Dataset, as_dataset, write_run
from inpars.decision import Decision, Fit, decide
from inpars.errors import ConfigError
from inpars.fusion import DEFAULT_ALPHAS, DEFAULT_MEASURE, RunDict, TuneSet, fuse, sample_ids, tuning_qrels
from inpars.io import write_json
from inpars.rerank.run import as_run, rerank_run
from inpars.scoring.base import Scorer, release

Loader = Callable[[], Scorer]


@dataclass(frozen=True)
class RerankFiles:
    """Where :func:`rerank_and_fuse` writes (see the module's description); None: not written."""

    reranked: Path | None = None
    interpolated: Path | None = None
    record: Path | None = None
    top: Path | None = None
    scores: Path | None = None

    @classmethod
    def beside(cls, out: str | Path, fused: bool) -> RerankFiles:
        """The files of ``inpars rerank --out OUT``: OUT is the run a user asked for (the fused run when there
        is a weight, else the reranked one); the reranker-only run goes to OUT's name with ``.rerank-only``
        before its suffix, the record to ``OUT.fusion.json``, the score cache to ``OUT.scores/``."""
        out = Path(out)
        only = out.with_name(f"{out.stem}.rerank-only{out.suffix}")
        return cls(reranked=only if fused else out, interpolated=out if fused else None,
                   record=Path(f"{out}.fusion.json"), scores=Path(f"{out}.scores"))

    def written(self) -> list[Path]:
        """Every path that may be written (for the checks that no input is overwritten)."""
        return [p for p in (self.reranked, self.interpolated, self.record, self.top) if p is not None]


@dataclass
class Reranked:
    """What :func:`rerank_and_fuse` produced: the runs (``interpolated`` is None without a weight), the
    chosen candidate's name, the weight, the record (None without a tuning set), the scorer's description
    (model, family, engine), and the pairs scored and their wall time."""

    top: RunDict
    reranked: RunDict
    interpolated: RunDict | None
    model: str
    alpha: float | None
    record: dict[str, Any] | None = None
    scorer: dict[str, Any] = field(default_factory=dict)
    pairs: int = 0
    seconds: float = 0.0


def labelled_tune_set(ds: Dataset, split: str, run: RunDict, n: int, seed: int) -> TuneSet:
    """A labelled split's tuning set (opt-in: reads the split's judgements; a protected split is refused,
    :func:`inpars.fusion.tuning_qrels`): ``n`` of the split's queries that ``run`` covers, drawn as
    ``inpars run`` draws them (:func:`inpars.fusion.sample_ids`), with their first stage and texts."""
    qrels = tuning_qrels(ds, split)
    ids = sample_ids([q for q in ds.query_ids(split) if q in run], n, seed)
    if not ids:
        raise ConfigError(f"the tuning run holds no query of split '{split}'")
    texts = ds.queries(split)
    return TuneSet(first={q: run[q] for q in ids}, queries={q: texts[q] for q in ids if q in texts}, qrels=qrels)


def fusion_record(decision: Decision, fits: Mapping[str, Fit], *, where: str, query_ids: list[str],
                  supervised: bool, depth: int, seed: int) -> dict[str, Any]:
    """The fusion record of a decision made on ``query_ids`` of tuning set ``where``: the one set of keys every
    caller writes."""
    record: dict[str, Any] = {
        "alpha": decision.alpha, "alpha_source": decision.alpha_source, "table": decision.table,
        "measure": str(DEFAULT_MEASURE), "tuned_on": where, "queries": decision.evidence["queries"],
        "query_ids": query_ids, "supervised": supervised,
        "model": decision.model, "reason": decision.reason, "evidence": decision.evidence, "depth": depth,
        "seed": seed,
    }
    if len(fits) > 1:
        record.update(selected_model=decision.model, selection_pseudo_dev=decision.candidates,
                      comparison=decision.comparison)
    return record


def rerank_and_fuse(
    dataset: Dataset | str | Path,
    first: RunDict | str | Path,
    queries: Mapping[str, str],
    candidates: Scorer | Mapping[str, Loader],
    *,
    depth: int,
    tune: TuneSet | None = None,
    where: str = "tuning set",
    supervised: bool = True,
    alpha: float | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    min_queries: int = 30,
    max_p: float = 0.05,
    seed: int = 1,
    files: RerankFiles | None = None,
    resume: bool = True,
    tag: str = "inpars-rerank",
    show_progress: bool | None = None,
) -> Reranked:
    """Decide, rerank and fuse, and write ``files`` (see the module's description).

    ``candidates``: one loaded scorer (owned by the caller: never closed here), or loaders by name
    (``trained`` and ``start`` are compared; a scorer loaded here is released before returning). With
    ``tune`` the model and the weight are decided on it (:func:`inpars.decision.decide`; ``alpha``, when
    given, is kept and measured there; ``min_queries``, ``max_p``, ``seed``: the decision's); without it the
    first candidate reranks, fused at ``alpha`` when one is given. ``where``: the tuning set's name in the
    record; ``supervised``: whether its judgements are real. ``queries``: the texts of the queries to rerank
    (a run query without one is skipped; none: only the decision is made). The score cache under
    ``files.scores`` makes a killed rerank resume (``resume``)."""
    ds = as_dataset(dataset)
    first = as_run(first)
    files = files or RerankFiles()
    owned = isinstance(candidates, Mapping)
    loaders: Mapping[str, Loader] = candidates if isinstance(candidates, Mapping) else _borrowed(candidates)
    chosen, scorer, record = next(iter(loaders)), None, None
    if tune is not None:
        decision, fits = decide(ds, tune, loaders, depth=depth, alphas=alphas, alpha=alpha, min_queries=min_queries,
                                max_p=max_p, seed=seed, where=where, owned=owned, cache_dir=files.scores)
        # decide released every scorer that holds anything outside this process; the chosen one, if kept, reranks
        chosen, alpha, scorer = decision.model, decision.alpha, fits[decision.model].scorer
        tuned = [q for q in fits[chosen].reranked if q in tune.qrels]
        record = fusion_record(decision, fits, where=where, query_ids=tuned, supervised=supervised, depth=depth,
                               seed=seed)
    result = Reranked(top={}, reranked={}, interpolated=None, model=chosen, alpha=alpha, record=record)
    if record is not None and files.record is not None:
        write_json(files.record, record)
    if not queries:
        return result
    scorer = scorer or loaders[chosen]()
    try:
        t0 = time.perf_counter()
        result.top = rerank_run(ds, first, None, queries=dict(queries), scorer=scorer, depth=depth, resume=resume,
                                show_progress=show_progress,
                                cache=files.scores / "eval.scores.jsonl" if files.scores is not None else None)
        result.seconds = time.perf_counter() - t0
        result.scorer = scorer.describe()
    finally:
        if owned:
            release(scorer)
    result.pairs = sum(len(v) for v in result.top.values())
    result.reranked = fuse(first, result.top, None, depth)
    if alpha is not None:
        result.interpolated = fuse(first, result.top, alpha, depth)
    _write(result, files, tag)
    return result


def _borrowed(scorer: Scorer) -> dict[str, Loader]:
    """The one candidate ``given``: a scorer the caller loaded (and closes)."""
    return {"given": lambda: scorer}


def _write(result: Reranked, files: RerankFiles, tag: str) -> None:
    if files.top is not None:
        write_run(files.top, result.top, tag=tag)
    if files.reranked is not None:
        write_run(files.reranked, result.reranked, tag=tag)
    if files.interpolated is not None and result.interpolated is not None:
        assert result.alpha is not None
        write_run(files.interpolated, result.interpolated, tag=f"{tag}-interp-{result.alpha:g}")
