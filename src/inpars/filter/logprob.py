"""``logprob``: keep the queries the generator was most sure of (InPars v1)."""

from __future__ import annotations

import logging

from inpars.errors import InputError
from inpars.filter.base import FILTERS, Candidate, FilterContext, ScoreFilter

log = logging.getLogger(__name__)


@FILTERS.register("logprob")
class LogProbFilter(ScoreFilter):
    """Mean token log-probability of the query under the generator (InPars v1).

    Records without ``log_probs`` rank last (a warning says how many); when no record has them the step
    is an :class:`~inpars.errors.InputError` (the backend did not return them).
    """

    name = "logprob"
    summary = "keep the best by mean token log-probability of the query (InPars v1)"

    def score(self, cands: list[Candidate], ctx: FilterContext) -> list[float]:
        missing = sum(1 for c in cands if not c.record.log_probs)
        if cands and missing == len(cands):
            raise InputError(
                "filter 'logprob': no record has log_probs (the generation backend did not return them); "
                "use another filter, e.g. reranker or consistency",
                field="log_probs",
            )
        if missing:
            log.warning("filter 'logprob': %d records have no log_probs; they rank last", missing)
        return [c.record.mean_log_prob for c in cands]
