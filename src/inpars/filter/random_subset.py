"""``random``: a seeded random subset, the baseline a real filter must beat."""

from __future__ import annotations

import random

from inpars.filter.base import FILTERS, Candidate, FilterContext, ScoreFilter


@FILTERS.register("random")
class RandomFilter(ScoreFilter):
    """A seeded random score per record, a function of the seed, the document id and the query only (so
    the kept set does not depend on the input order)."""

    name = "random"
    summary = "keep a seeded random subset (the baseline a filter must beat)"

    def score(self, cands: list[Candidate], ctx: FilterContext) -> list[float]:
        return [random.Random(f"{ctx.seed}\0{c.record.doc_id}\0{c.record.query}").random() for c in cands]
