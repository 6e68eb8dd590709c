"""Scoring on an executor out of this process (``rerank.executor: ray``; ``executor: ray`` on a
``reranker`` or ``consistency`` filter step).

:class:`PoolScorer` is a :class:`~inpars.rerank.base.Scorer` whose work runs in the workers of an
executor's pool (:meth:`inpars.executors.Executor.pool`; on Ray, ``actors`` actors), each holding one
scorer loaded with the same :func:`inpars.rerank.load_scorer` arguments as a local run (only its thread
count differs: each worker gets its share, see below). The workers are started once, when the scorer is
loaded, and serve every later :meth:`~inpars.rerank.base.Scorer.score` call (a rerank or a filter calls it
once per chunk of queries, so a model is loaded once per worker, not once per chunk).

A call cuts its pairs, in input order, into shards of ``batch_size * SHARD_BATCHES`` pairs and hands them
to the workers through the pool's one ordered map (:meth:`inpars.executors.Pool.map`); each worker scores
a shard with the local scorer (which sorts the shard's pairs by length and cuts them into batches of
``batch_size``) and the scores come back in input order. The scores are those of the local scorer on the
same model; the pairs that share a batch may differ from a run in one process, which pads each batch to
its longest pair, so a score may differ in its last bits (padding is masked, not computed away).

Failures: an actor that dies (killed, out of memory) is restarted by Ray and its shard retried
(``max_restarts`` limits both; unset: no limit); an exception raised by the scorer stops the call. A
rerank keeps the scores of every finished chunk in its score cache, so a rerun after a killed driver
scores only what is missing.

Options: those of :mod:`inpars.ray_cluster`. Thread budget: ``threads`` (default: the cluster's CPUs)
is the total; each worker's scorer gets ``threads // actors`` (at least 1) torch / onnxruntime threads,
and the actor reserves as many CPUs unless ``cpus_per_actor`` says otherwise. Two scorers open at once
(e.g. two filter steps, or two checkpoints compared) each reserve their actors' CPUs: on a local cluster
too small for both, loading the second is a :class:`~inpars.errors.ConfigError` (lower
``cpus_per_actor``) rather than a wait without end.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from inpars.executors import Executor, Pool
from inpars.rerank.local import load_local_scorer
from inpars.scoring.base import Pair, Scorer, progress

log = logging.getLogger(__name__)

#: batches per shard handed to a worker (one shard is the unit that is retried after a dead actor)
SHARD_BATCHES = 4


class ScoreActor:
    """One local scorer per worker (``threads``: its share of the thread budget)."""

    def __init__(self, model: str, model_type: str | None, kwargs: dict[str, Any], threads: int | None = None) -> None:
        # the scorer sets its own threads (torch, onnxruntime)
        self.scorer = load_local_scorer(model, model_type, **{**kwargs, "threads": threads})

    def describe(self) -> dict[str, Any]:
        return self.scorer.describe()

    def score(self, pairs: list[Pair]) -> list[float]:
        return self.scorer.score(pairs, show_progress=False)


class PoolScorer(Scorer):
    """A scorer whose :meth:`score` runs on the workers of ``executor`` (see the module's description).

    ``options`` are the executor's, checked (:meth:`~inpars.executors.Executor.check_options`); ``kwargs``
    are the other arguments of :func:`inpars.rerank.load_scorer` (``threads`` being the total over the
    workers). :meth:`close` stops the workers (and the cluster, when it was started for them).
    """

    def __init__(self, executor: type[Executor], model: str, model_type: str | None, options: dict[str, Any],
                 **kwargs: Any) -> None:
        self._pool: Pool | None = None
        self._pool = executor.pool(ScoreActor, (model, model_type, kwargs), size=executor.workers(options),
                                   threads=kwargs.get("threads"), options=options, key="executor")
        try:
            described = self._pool.each("describe")[0]
        except BaseException:
            self.close()
            raise
        super().__init__(str(described["model"]), int(kwargs.get("batch_size") or 32), int(described["max_length"]))
        self.model_type = str(described["model_type"])
        self.engine = str(described["engine"])
        self._where = executor.name
        self._described = {**described, "threads": self._pool.budget, "executor": executor.name,
                           "actors": self._pool.size}

    def describe(self) -> dict[str, Any]:
        return dict(self._described)

    def _score(self, pairs: list[Pair], show_progress: bool | None) -> list[float]:
        if self._pool is None:
            raise RuntimeError("the scorer is closed")
        size = self.batch_size * SHARD_BATCHES
        shards: list[Sequence[Pair]] = [pairs[i : i + size] for i in range(0, len(pairs), size)]
        results = self._pool.map("score", (list(shard) for shard in shards))
        scores: list[float] = []
        for values in progress(results, len(shards), show_progress, f"rerank ({self._where})", unit="shard"):
            scores.extend(float(v) for v in values)
        return scores

    def close(self) -> None:
        """Stop the workers, and the Ray cluster started for them when no other pool still uses it."""
        pool, self._pool = getattr(self, "_pool", None), None
        if pool is not None:
            pool.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit: nothing to report to
            self.close()


#: the name of :class:`PoolScorer` when Ray was its only executor
RayScorer = PoolScorer
