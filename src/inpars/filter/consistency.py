"""``consistency``: the round-trip check (Promptagator; InPars-light).

Retrieve with the query and keep it only when its source document ranks within ``top_k``. Retrieval is
BM25 (top ``depth``), or, with ``model``, that reranker over the BM25 top ``depth``. The rank is 1 + the
number of documents scoring strictly higher than the source document (:func:`source_rank`: ties count in
its favour; documents with exactly the same text as the source count as the source); a source document
outside the BM25 top ``depth`` (or sharing no term with the query) is ``not_retrieved``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from inpars.config import FilterStep
from inpars.datasets import ranked
from inpars.errors import ConfigError
from inpars.filter.base import (
    FILTERS,
    SCORER_OPTIONS,
    Candidate,
    Filter,
    FilterContext,
    Option,
    Removal,
    executor_kwargs,
    scorer_kwargs,
)
from inpars.quiet import bar


def source_rank(hits: dict[str, float], group: frozenset[str]) -> int | None:
    """Rank of the source document among ``hits``: 1 + documents scoring strictly higher; None if absent.

    ``group`` is the source document with its exact duplicates, which do not count against it.

    >>> source_rank({"a": 3.0, "b": 2.0, "c": 2.0, "d": 1.0}, frozenset({"c"}))
    2
    >>> source_rank({"a": 3.0, "b": 2.0}, frozenset({"b", "a"})), source_rank({"a": 1.0}, frozenset({"z"}))
    (1, None)
    """
    mine = [s for d, s in hits.items() if d in group]
    if not mine:
        return None
    best = max(mine)
    return 1 + sum(1 for d, s in hits.items() if d not in group and s > best)


@FILTERS.register("consistency")
class ConsistencyFilter(Filter):
    """Keep a query when retrieval with it ranks its source document within ``top_k`` (round trip)."""

    name = "consistency"
    summary = "keep a query when retrieval with it ranks its own document within top_k (Promptagator)"
    FIELDS: ClassVar[tuple[Option, ...]] = (
        Option("top_k", int, 3, "the source document must rank within this"),
        Option("model", str, None, "rerank the BM25 candidates with this checkpoint (default: BM25 alone)"),
        Option("depth", int, 100, "BM25 candidates per query"),
    )
    OPTIONS: ClassVar[tuple[Option, ...]] = SCORER_OPTIONS
    _chunk = 1024

    def __init__(self, step: FilterStep) -> None:
        super().__init__(step)
        self.top_k: int = self.field("top_k")
        self.depth: int = self.field("depth")
        if self.depth < self.top_k:
            raise ConfigError(f"filter 'consistency': depth ({self.depth}) must be >= top_k ({self.top_k})")

    def score_names(self) -> tuple[str, ...]:
        return ("consistency_rank",)

    def apply(self, cands: list[Candidate], ctx: FilterContext) -> tuple[list[Candidate], list[Removal]]:
        kept: list[Candidate] = []
        removed: list[Removal] = []
        if not cands:
            return kept, removed
        index = ctx.bm25()
        kw = {**scorer_kwargs(self.step.options), **executor_kwargs(self.step)}
        scorer = ctx.scorer(self.step.model, **kw) if self.step.model else None
        chunk = self._chunk if scorer is None else 32
        starts = range(0, len(cands), chunk)
        for start in bar(starts, desc="consistency", unit="chunk", show=None if len(starts) >= 2 else False):
            part = cands[start : start + chunk]
            run = index.search({str(c.index): c.record.query for c in part}, k=self.depth)
            hits_per = [run.get(str(c.index), {}) for c in part]
            if scorer is not None:
                hits_per = self._rerank(part, hits_per, scorer, ctx)
            for c, hits in zip(part, hits_per, strict=True):
                rank = source_rank(hits, ctx.same_text(c.record.doc_id))
                c.scores["consistency_rank"] = rank
                if rank is None:
                    removed.append(Removal(c, "not_retrieved", {"depth": self.depth}))
                elif rank > self.top_k:
                    top = ranked(hits)[0][0]
                    removed.append(Removal(c, "low_rank", {"rank": rank, "top_doc_id": top}))
                else:
                    kept.append(c)
        return kept, removed

    @staticmethod
    def _rerank(
        part: list[Candidate], hits_per: list[dict[str, float]], scorer: Any, ctx: FilterContext
    ) -> list[dict[str, float]]:
        pairs: list[tuple[str, str]] = []
        for c, hits in zip(part, hits_per, strict=True):
            pairs.extend((c.record.query, ctx.doc_text(d)) for d in hits)
        scores = list(scorer.score(pairs, show_progress=False)) if pairs else []
        out: list[dict[str, float]] = []
        pos = 0
        for hits in hits_per:
            ids = list(hits)
            out.append({d: float(s) for d, s in zip(ids, scores[pos : pos + len(ids)], strict=True)})
            pos += len(ids)
        return out
