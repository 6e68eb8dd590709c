"""``per_doc``: at most ``top_k`` queries per document, the best by a score an earlier step gave.

Sampling many queries per document and keeping what the round trip accepts (Promptagator samples 8) leaves
some documents with many kept queries and others with one; this step caps each document's share. Its
queries are ordered by the option ``by``, the name of a score an earlier step recorded: a name ending in
``_rank`` (``consistency_rank``: the source document's rank in the round trip) is a rank, lower first;
any other name (``logprob``, ``reranker``, ``random``) is a score, higher first. A query the named step
gave no score comes last; ties, and every query when ``by`` is unset, keep the input order (for generated
queries the order of sampling, which prefers none of a prompt's samples). Documents with the same text
stay apart: the cap is per document id.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, ClassVar

from inpars.config import FilterStep
from inpars.errors import ConfigError
from inpars.filter.base import FILTERS, Candidate, Filter, FilterContext, Option, Removal


@FILTERS.register("per_doc")
class PerDocFilter(Filter):
    """Keep at most ``top_k`` queries per source document, ordered by the score ``by`` names."""

    name = "per_doc"
    summary = "keep at most top_k queries per document, the best by an earlier step's score"
    FIELDS: ClassVar[tuple[Option, ...]] = (Option("top_k", int, 1, "queries kept per document"),)
    OPTIONS: ClassVar[tuple[Option, ...]] = (
        Option("by", str, None, "the score ordering a document's queries: a name ending in _rank (e.g. "
               "consistency_rank) lower first, any other earlier step's score (e.g. logprob) higher first "
               "(default: input order)"),
    )

    def __init__(self, step: FilterStep) -> None:
        super().__init__(step)
        self.top_k: int = self.field("top_k")
        self.by: str | None = self.step.options.get("by")

    def _key(self, c: Candidate) -> tuple[int, float, int]:
        """Sort key: queries with the score first, best first; then input order."""
        if self.by is None:
            return (0, 0.0, c.index)
        value = c.scores.get(self.by)
        if value is None or math.isnan(value):
            return (1, 0.0, c.index)
        return (0, value if self.by.endswith("_rank") else -value, c.index)

    def check_after(self, earlier_scores: Sequence[str]) -> None:
        if self.by is not None and self.by not in earlier_scores:
            raise ConfigError(
                f"filter step 'per_doc': option by='{self.by}' names no score of an earlier step "
                f"(their scores: {', '.join(earlier_scores) or 'none'})"
            )

    def apply(self, cands: list[Candidate], ctx: FilterContext) -> tuple[list[Candidate], list[Removal]]:
        per_doc: dict[str, list[Candidate]] = defaultdict(list)
        for c in cands:
            per_doc[c.record.doc_id].append(c)
        keep: set[int] = set()
        removed: list[Removal] = []
        for group in per_doc.values():
            for place, c in enumerate(sorted(group, key=self._key), start=1):
                if place <= self.top_k:
                    keep.add(c.index)
                else:
                    detail: dict[str, Any] = {"place": place, "of": len(group)}
                    if self.by is not None:
                        detail[self.by] = c.scores.get(self.by)
                    removed.append(Removal(c, "over_per_doc", detail))
        return [c for c in cands if c.index in keep], removed
