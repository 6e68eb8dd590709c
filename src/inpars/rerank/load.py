"""Loading a reranker: :func:`load_scorer`, in this process (:mod:`inpars.rerank.local`) or on the workers
of an executor out of it (:mod:`inpars.rerank.ray_scoring`), the executor named in
:data:`inpars.executors.EXECUTORS`."""

from __future__ import annotations

from typing import Any

from inpars.catalog import DEFAULT_ENGINE
from inpars.executors import EXECUTORS
from inpars.rerank.local import check_arguments, load_local_scorer
from inpars.scoring.base import Scorer


def load_scorer(
    model: str,
    model_type: str | None = None,
    *,
    batch_size: int = 32,
    max_length: int | None = None,
    engine: str = DEFAULT_ENGINE,
    threads: int | None = None,
    device: str | None = None,
    executor: str = "local",
    executor_options: dict[str, Any] | None = None,
) -> Scorer:
    """Load a reranker for :meth:`~inpars.scoring.base.Scorer.score`.

    ``model``: a packaged name (``minilm-l6``), a local folder or a hub id (see
    :func:`inpars.models.resolve_model`). ``model_type``: a registered family (:data:`~inpars.catalog.FAMILIES`); read from
    the checkpoint when None (:func:`~inpars.scoring.family.detect_model_type`). ``engine``: a registered engine
    (:data:`~inpars.catalog.ENGINES`) that the family accepts; ``auto`` runs ``onnx`` for a cross-encoder on the CPU when
    onnxruntime and onnx are installed, else ``torch``; ``scorer.engine`` tells which one runs.
    ``threads``: CPU threads (``torch.set_num_threads``; onnxruntime's intra-op threads).
    ``max_length``: tokens per (query, document) input; None: the length the model was saved with
    (:func:`inpars.scoring.base.model_max_length`; 256 document tokens for ``query-likelihood``).
    ``executor``: a name of :data:`~inpars.executors.EXECUTORS` (an unknown one is a
    :class:`~inpars.registry.UnknownNameError`): ``local`` (this process; ``executor_options`` are
    ignored) or ``ray`` (a :class:`~inpars.rerank.ray_scoring.PoolScorer` whose actors each hold such a
    scorer; ``executor_options``: see :mod:`inpars.ray_cluster`, checked before anything starts).

    >>> load_scorer("minilm-l6", engine="tensorflow")
    Traceback (most recent call last):
    ...
    inpars.registry.UnknownNameError: unknown engine 'tensorflow'; available: auto, onnx, onnx-int8, torch, torch-bf16
    """
    where = EXECUTORS.get(executor)
    options = where.check_options(executor_options, "executor_options")
    if where.in_process:
        return load_local_scorer(model, model_type, batch_size=batch_size, max_length=max_length, engine=engine,
                                 threads=threads, device=device)
    check_arguments(batch_size, max_length, engine, threads, device, present=False)  # the workers check the device

    from inpars.rerank.ray_scoring import PoolScorer

    return PoolScorer(where, model, model_type, options, batch_size=batch_size, max_length=max_length,
                      engine=engine, threads=threads, device=device)
