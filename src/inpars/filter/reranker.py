"""``reranker``: keep the queries a reranker finds most relevant to their own document (InPars v2)."""

from __future__ import annotations

import logging
from typing import ClassVar

from inpars.filter.base import (
    FILTERS,
    MIN_SCORE,
    SCORER_OPTIONS,
    TOP_FRACTION,
    TOP_K,
    Candidate,
    FilterContext,
    Option,
    ScoreFilter,
    executor_kwargs,
    scorer_kwargs,
)

log = logging.getLogger(__name__)

DEFAULT_MODEL = "minilm-l6"


@FILTERS.register("reranker")
class RerankerFilter(ScoreFilter):
    """Reranker score of (query, source document), from :func:`inpars.rerank.load_scorer`.

    InPars v2 keeps the top 10k of 100k by monoT5-3B. The default model is the packaged ``minilm-l6``
    (all-MiniLM-L6-v2), detected as a bi-encoder: the score is the cosine of the query and document
    embeddings (zero-shot). A trained cross-encoder (a checkpoint from ``inpars train``, or
    ``cross-encoder/ms-marco-MiniLM-L-6-v2``) is the InPars v2 set-up; ``model_type: cross-encoder`` forces
    the packaged model through a seeded, untrained head (for engine checks only).
    """

    name = "reranker"
    summary = "keep the best by reranker score of (query, its document) (InPars v2)"
    FIELDS: ClassVar[tuple[Option, ...]] = (
        TOP_K,
        TOP_FRACTION,
        Option("model", str, DEFAULT_MODEL, "reranker checkpoint: packaged name, folder or hub id"),
    )
    OPTIONS: ClassVar[tuple[Option, ...]] = (MIN_SCORE, *SCORER_OPTIONS)

    def score(self, cands: list[Candidate], ctx: FilterContext) -> list[float]:
        model = self.field("model")
        if model == DEFAULT_MODEL:
            log.warning(
                "filter 'reranker' with the packaged all-MiniLM-L6-v2: a bi-encoder whose cross-encoder head "
                "is untrained; pass a trained cross-encoder (model=...) for a meaningful filter"
            )
        scorer = ctx.scorer(model, **scorer_kwargs(self.step.options), **executor_kwargs(self.step))
        pairs = [(c.record.query, ctx.doc_text(c.record.doc_id)) for c in cands]
        return list(scorer.score(pairs, show_progress=None))  # a bar on a terminal
