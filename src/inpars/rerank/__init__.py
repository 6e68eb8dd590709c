"""Reranking: score (query, document) pairs with a trained reranker and reorder a first-stage run.

Rerankers come in families (``model_type``, :mod:`inpars.families`: ``cross-encoder``, ``monot5``,
``bi-encoder``), all loaded with :func:`load_scorer`; the type is read from the checkpoint when not given
(:func:`detect_model_type`). How a scorer runs is its engine (:data:`~inpars.rerank.engines.ENGINES`:
``auto``, ``torch``, ``torch-bf16``, ``onnx``, ``onnx-int8``; a family declares the engines it accepts).

Modules: :mod:`~inpars.rerank.base` (the :class:`Scorer` interface), :mod:`~inpars.rerank.engines` (the
engine registry, bf16 probing), :mod:`~inpars.rerank.onnx` (export and cache), :mod:`~inpars.rerank.surgery`
(BERT last layer at [CLS] only), :mod:`~inpars.rerank.classifier` (classification heads),
:mod:`~inpars.rerank.run` (:func:`rerank_run` with its resumable score cache). Fusion with the first stage
(tail, interpolation, weight tuning) is :mod:`inpars.fusion`.

>>> scorer = load_scorer("minilm-l6", "cross-encoder", batch_size=16, max_length=128)  # doctest: +SKIP
>>> scorer.score([("what lowers cholesterol", "Statins reduce cholesterol.")])       # doctest: +SKIP
[0.0213]
>>> top = rerank_run("scifact", "bm25.trec", "reranked.trec", model="runs/x/model")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from inpars.families.base import DEFAULT_FAMILY, FAMILIES, detect_model_type, get_family
from inpars.families.bi_encoder import BiEncoderScorer
from inpars.families.cross_encoder import CrossEncoderScorer
from inpars.families.monot5 import MonoT5Scorer
from inpars.fusion import DEFAULT_ALPHAS, append_tail, interpolate, tune_alpha
from inpars.models import resolve_model
from inpars.rerank.base import LENGTH_FROM_MODEL, Pair, RunDict, Scorer, TorchScorer, model_max_length
from inpars.rerank.classifier import has_classification_head
from inpars.rerank.classifier import load_sequence_classifier as _load_sequence_classifier
from inpars.rerank.engines import DEFAULT_ENGINE, ENGINES, bf16_supported, get_engine
from inpars.rerank.onnx import ONNX_OPSET, onnx_model_path
from inpars.rerank.run import rerank_run, score_cache_key, top_depth
from inpars.rerank.surgery import prune_last_layer

__all__ = [
    "DEFAULT_ALPHAS",
    "DEFAULT_ENGINE",
    "DEFAULT_FAMILY",
    "ENGINES",
    "FAMILIES",
    "ONNX_OPSET",
    "BiEncoderScorer",
    "CrossEncoderScorer",
    "MonoT5Scorer",
    "Pair",
    "RunDict",
    "Scorer",
    "TorchScorer",
    "_load_sequence_classifier",
    "append_tail",
    "bf16_supported",
    "detect_model_type",
    "has_classification_head",
    "interpolate",
    "load_scorer",
    "onnx_model_path",
    "prune_last_layer",
    "rerank_run",
    "score_cache_key",
    "top_depth",
    "tune_alpha",
]


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
    """Load a reranker for :meth:`Scorer.score`.

    ``model``: a packaged name (``minilm-l6``), a local folder or a hub id (see
    :func:`inpars.models.resolve_model`). ``model_type``: a registered family (:data:`FAMILIES`); read from
    the checkpoint when None (:func:`detect_model_type`). ``engine``: a registered engine
    (:data:`ENGINES`) that the family accepts; ``auto`` runs ``onnx`` for a cross-encoder on the CPU when
    onnxruntime and onnx are installed, else ``torch``; ``scorer.engine`` tells which one runs.
    ``threads``: CPU threads (``torch.set_num_threads``; onnxruntime's intra-op threads).
    ``max_length``: tokens per (query, document) input; None: the length the model was saved with
    (:func:`inpars.rerank.base.model_max_length`; 256 document tokens for ``query-likelihood``).
    ``executor``: ``local`` (this process) or ``ray`` (a :class:`~inpars.rerank.ray_scoring.RayScorer`
    whose actors each hold such a scorer; ``executor_options``: see :mod:`inpars.ray_cluster`).

    >>> load_scorer("minilm-l6", engine="tensorflow")
    Traceback (most recent call last):
    ...
    inpars.errors.ConfigError: unknown engine 'tensorflow'; choose from auto, onnx, onnx-int8, torch, torch-bf16
    """
    get_engine(engine)
    if executor != "local" or executor_options:
        from inpars.ray_cluster import check_options

        options = check_options(executor, executor_options, engine_key="executor", options_key="executor_options")
        if executor == "ray":
            from inpars.rerank.ray_scoring import RayScorer

            return RayScorer(model, model_type, options, batch_size=batch_size, max_length=max_length,
                             engine=engine, threads=threads, device=device)
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
