"""Scoring on a Ray cluster (``rerank.executor: ray``; ``executor: ray`` on a ``reranker`` or
``consistency`` filter step).

:class:`RayScorer` is a :class:`~inpars.rerank.base.Scorer` whose work runs in ``actors`` Ray actors, each
holding one scorer loaded with the same :func:`inpars.rerank.load_scorer` arguments as a local run (only
its thread count differs: each actor gets its share, see below). The actors are started once, when the
scorer is loaded, and serve every later :meth:`~inpars.rerank.base.Scorer.score` call (a rerank or a
filter calls it once per chunk of queries, so a model is loaded once per actor, not once per chunk).

A call cuts its pairs, in input order, into shards of ``batch_size * SHARD_BATCHES`` pairs and hands them
to the free actors (``ray.util.ActorPool``); each actor scores a shard with the local scorer (which sorts
the shard's pairs by length and cuts them into batches of ``batch_size``) and the scores come back in
input order. The scores are those of the local scorer on the same model; the pairs that share a batch may
differ from a run in one process, which pads each batch to its longest pair, so a score may differ in its
last bits (padding is masked, not computed away).

Failures: an actor that dies (killed, out of memory) is restarted by Ray and its shard retried
(``max_restarts`` limits both; unset: no limit); an exception raised by the scorer stops the call. A
rerank keeps the scores of every finished chunk in its score cache, so a rerun after a killed driver
scores only what is missing.

Options: those of :mod:`inpars.ray_cluster`. Thread budget: ``threads`` (default: the cluster's CPUs)
is the total; each actor's scorer gets ``threads // actors`` (at least 1) torch / onnxruntime threads,
and the actor reserves as many CPUs unless ``cpus_per_actor`` says otherwise. Two scorers open at once
(e.g. two filter steps, or two checkpoints compared) each reserve their actors' CPUs: on a local cluster
too small for both, loading the second is a :class:`~inpars.errors.ConfigError` (lower
``cpus_per_actor``) rather than a wait without end.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from inpars.errors import ConfigError
from inpars.rerank.local import load_local_scorer
from inpars.scoring.base import Pair, Scorer, progress

log = logging.getLogger(__name__)

#: batches per shard handed to an actor (one shard is the unit that is retried after a dead actor)
SHARD_BATCHES = 4
#: how long loading waits for CPUs that closed scorers' actors are still giving back
RELEASE_WAIT_SECONDS = 20.0
#: open scorers on the cluster that one of them started: it is stopped when the last of them closes
_USERS = {"started": False, "open": 0}


class ScoreActor:
    """One local scorer per actor."""

    def __init__(self, model: str, model_type: str | None, kwargs: dict[str, Any]) -> None:
        self.scorer = load_local_scorer(model, model_type, **kwargs)  # it sets its own threads (torch, onnxruntime)

    def describe(self) -> dict[str, Any]:
        return self.scorer.describe()

    def score(self, pairs: list[Pair]) -> list[float]:
        return self.scorer.score(pairs, show_progress=False)


class RayScorer(Scorer):
    """A scorer whose :meth:`score` runs on ``actors`` Ray actors (see the module's description).

    ``options`` are checked by :func:`inpars.ray_cluster.check_options`; ``kwargs`` are the other
    arguments of :func:`inpars.rerank.load_scorer` (``threads`` being the total over the actors).
    :meth:`close` stops the actors (and the cluster, when it was started here).
    """

    def __init__(self, model: str, model_type: str | None, options: dict[str, Any], **kwargs: Any) -> None:
        from inpars.ray_cluster import actor_share, cluster_cpus, connect, import_ray, restart_args

        ray = import_ray("executor 'ray'")
        self._ray = ray
        if connect(ray, options, "executor"):
            _USERS["started"] = True
        self._uses_own_cluster = bool(_USERS["started"])
        _USERS["open"] += self._uses_own_cluster
        self._actors: list[Any] = []
        try:
            n = int(options.get("actors") or 2)
            per_actor, cpus, gpus = actor_share(ray, options, kwargs.get("threads"), n)
            need = n * cpus
            free = float(ray.available_resources().get("CPU", 0))
            # actors just killed (a scorer closed a moment ago) give their CPUs back asynchronously
            deadline = time.monotonic() + RELEASE_WAIT_SECONDS
            while need > free and time.monotonic() < deadline:
                time.sleep(0.2)
                free = float(ray.available_resources().get("CPU", 0))
            if need > free and not options.get("address"):  # a local cluster never grows: it would wait forever
                raise ConfigError(
                    f"executor_options: {n} actors need {need:g} CPUs of the Ray cluster, {free:g} are free "
                    "(another scorer holds them?); set executor_options.cpus_per_actor or actors"
                )
            remote = ray.remote(ScoreActor).options(
                num_cpus=cpus,
                num_gpus=gpus,
                **(restart_args(options) or {"max_restarts": -1, "max_task_retries": -1}),
            )
            actor_kwargs = {**kwargs, "threads": per_actor}
            self._actors = [remote.remote(model, model_type, actor_kwargs) for _ in range(n)]
            described = ray.get([a.describe.remote() for a in self._actors])[0]
        except BaseException:
            self.close()
            raise
        super().__init__(str(described["model"]), int(kwargs.get("batch_size") or 32), int(described["max_length"]))
        self.model_type = str(described["model_type"])
        self.engine = str(described["engine"])
        self._described = {**described, "threads": int(kwargs.get("threads") or cluster_cpus(ray)), "executor": "ray", "actors": n}
        log.info("ray: %d scoring actors (%d threads, %g CPUs each)", n, per_actor, cpus)

    def describe(self) -> dict[str, Any]:
        return dict(self._described)

    def _score(self, pairs: list[Pair], show_progress: bool | None) -> list[float]:
        from ray.util import ActorPool

        size = self.batch_size * SHARD_BATCHES
        shards: list[Sequence[Pair]] = [pairs[i : i + size] for i in range(0, len(pairs), size)]
        pool = ActorPool(self._actors)
        results = pool.map(lambda actor, shard: actor.score.remote(list(shard)), shards)
        scores: list[float] = []
        for values in progress(results, len(shards), show_progress, "rerank (ray)", unit="shard"):
            scores.extend(float(v) for v in values)
        return scores

    def close(self) -> None:
        """Stop the actors, and the Ray cluster started for the scorers when no other one still uses it."""
        actors, self._actors = getattr(self, "_actors", []), []
        ray = getattr(self, "_ray", None)
        if ray is None:
            return
        for actor in actors:
            with contextlib.suppress(Exception):  # already dead: nothing to stop
                ray.kill(actor, no_restart=True)
        if getattr(self, "_uses_own_cluster", False):
            self._uses_own_cluster = False
            _USERS["open"] -= 1
            if _USERS["open"] <= 0 and _USERS["started"]:
                _USERS.update(started=False, open=0)
                ray.shutdown()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit: nothing to report to
            self.close()
