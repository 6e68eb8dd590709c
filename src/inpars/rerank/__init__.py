"""Reranking: score (query, document) pairs with a trained reranker and reorder a first-stage run.

Rerankers come in families (``model_type``, :mod:`inpars.families`: ``cross-encoder``, ``monot5``,
``bi-encoder``), all loaded with :func:`load_scorer`; the type is read from the checkpoint when not given
(:func:`detect_model_type`). How a scorer runs is its engine (:data:`~inpars.catalog.ENGINES`:
``auto``, ``torch``, ``torch-bf16``, ``onnx``, ``onnx-int8``; a family declares the engines it accepts).

Modules: :mod:`~inpars.rerank.load` (:func:`load_scorer`; :mod:`~inpars.rerank.local` in this process,
:mod:`~inpars.rerank.ray_scoring` on a Ray cluster), :mod:`~inpars.rerank.run` (:func:`rerank_run` with its
resumable score cache), :mod:`~inpars.rerank.fuse` (:func:`~inpars.rerank.fuse.fit_on`: the weight that fuses
best on tuning queries; the whole path, decision included, is :func:`inpars.reranking.rerank_and_fuse`). What a scorer is lives below both this package and the families that implement
it, in :mod:`inpars.scoring` (the :class:`Scorer` interface, the engines, ONNX export, BERT last-layer
surgery, classification heads), re-exported as :mod:`~inpars.rerank.base`, :mod:`~inpars.rerank.engines`,
:mod:`~inpars.rerank.onnx`, :mod:`~inpars.rerank.surgery` and :mod:`~inpars.rerank.classifier`. Fusion with
the first stage itself (tail, interpolation, weight tuning: runs in, run out) is :mod:`inpars.fusion`.

>>> scorer = load_scorer("minilm-l6", "cross-encoder", batch_size=16, max_length=128)  # doctest: +SKIP
>>> scorer.score([("what lowers cholesterol", "Statins reduce cholesterol.")])       # doctest: +SKIP
[0.0213]
>>> top = rerank_run("scifact", "bm25.trec", "reranked.trec", model="runs/x/model")  # doctest: +SKIP
"""

from __future__ import annotations

from inpars.families.bi_encoder import BiEncoderScorer
from inpars.families.cross_encoder import CrossEncoderScorer
from inpars.families.monot5 import MonoT5Scorer
from inpars.fusion import DEFAULT_ALPHAS, append_tail, interpolate, tune_alpha
from inpars.rerank.load import load_scorer
from inpars.rerank.run import rerank_run, score_cache_key, top_depth
from inpars.scoring.base import Pair, RunDict, Scorer, TorchScorer
from inpars.scoring.classifier import has_classification_head
from inpars.scoring.classifier import load_sequence_classifier as _load_sequence_classifier
from inpars.scoring.engines import DEFAULT_ENGINE, ENGINES, bf16_supported
from inpars.scoring.family import DEFAULT_FAMILY, FAMILIES, detect_model_type
from inpars.scoring.onnx import ONNX_OPSET, onnx_model_path
from inpars.scoring.surgery import prune_last_layer

# importable from here before the scorer protocol moved down to inpars.scoring (not in __all__)
from inpars.models import resolve_model  # noqa: E402,F401  isort: skip
from inpars.scoring.base import LENGTH_FROM_MODEL, model_max_length  # noqa: E402,F401  isort: skip
from inpars.scoring.engines import get_engine  # noqa: E402,F401  isort: skip
from inpars.scoring.family import get_family  # noqa: E402,F401  isort: skip

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

