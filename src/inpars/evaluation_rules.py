"""Measure names (:func:`parse_measures`: ir_measures or trec_eval syntax, checked before any stage runs)
and two rules of evaluation that per-query means do not cover: trec_eval's count measures and BEIR's
``ignore_identical_ids``.

- ``num_q``, ``num_ret``, ``num_rel``, ``num_rel_ret`` (ir_measures ``NumQ``, ``NumRet``, ``NumRel``,
  ``NumRet(rel=1)``) are totals in trec_eval's summary, not means. With ``-c`` (which inpars follows) a
  judged query the run does not answer still counts: ``num_q`` is the number of judged queries and
  ``num_rel`` counts its relevant documents.
- BEIR's ``EvaluateRetrieval.evaluate(..., ignore_identical_ids=True)`` (its default) drops every hit
  whose document id equals the query id before measuring, because in ArguAna and Quora the queries are
  themselves corpus documents. trec_eval and pytrec_eval keep them. inpars keeps them by default (its
  figures equal trec_eval's); ``ignore_identical_ids=True`` gives BEIR's figures, and a run that holds
  such hits gets a warning naming the option.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from inpars.errors import ConfigError

log = logging.getLogger(__name__)


def split_measures(text: str) -> list[str]:
    """Split ``"nDCG@10 R@100, P(rel=2)@5"`` on spaces and commas outside parentheses.

    >>> split_measures("nDCG@10 R@100, nDCG(dcg='exp-log2', judged_only=True)@10")
    ['nDCG@10', 'R@100', "nDCG(dcg='exp-log2', judged_only=True)@10"]
    """
    out: list[str] = []
    depth = 0
    cur = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        if depth == 0 and (ch.isspace() or ch == ","):
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


def parse_measures(measures: str | Iterable[str]) -> list[Any]:
    """ir_measures measure objects from names (ir_measures syntax or trec_eval names), in order.

    >>> [str(m) for m in parse_measures("nDCG@10 map P_5")]
    ['nDCG@10', 'AP', 'P@5']
    """
    import ir_measures

    names = split_measures(measures) if isinstance(measures, str) else [n for m in measures for n in split_measures(m)]
    if not names:
        raise ConfigError("no evaluation measure given")
    out: list[Any] = []
    for name in names:
        try:
            parsed = [ir_measures.parse_measure(name)]
        except (NameError, ValueError, SyntaxError):
            try:
                parsed = list(ir_measures.parse_trec_measure(name))
            except (NameError, ValueError, SyntaxError):
                raise ConfigError(
                    f"unknown evaluation measure '{name}' (examples: nDCG@10 R@100 AP@1000 RR@10 P@5, "
                    "or trec_eval names such as ndcg_cut_10 map)"
                ) from None
        for m in parsed:
            cutoff = getattr(m, "params", {}).get("cutoff")
            if cutoff is not None and cutoff < 1:
                raise ConfigError(f"evaluation measure '{name}': the cut-off must be at least 1")
        out.extend(m for m in parsed if m not in out)
    return out

#: ir_measures measure names that trec_eval sums over queries instead of averaging.
COUNT_MEASURES: frozenset[str] = frozenset({"NumQ", "NumRet", "NumRel"})


def is_count(measure: Any) -> bool:
    """True for a measure that trec_eval reports as a total over queries."""
    return getattr(measure, "NAME", None) in COUNT_MEASURES


def fill_counts(
    values: dict[str, dict[str, float]],
    measures: Sequence[Any],
    qrels: Mapping[str, Mapping[str, int]],
    query_ids: Sequence[str],
) -> None:
    """Set ``NumQ`` (1 per judged query) and ``NumRel`` (its relevant documents) for every query, as
    trec_eval ``-c`` counts them also for the queries a run does not answer. ``values`` is changed in place."""
    for m in measures:
        name = getattr(m, "NAME", None)
        if name == "NumQ":
            values[str(m)] = dict.fromkeys(query_ids, 1.0)
        elif name == "NumRel":
            rel = int(getattr(m, "params", {}).get("rel") or 1)
            values[str(m)] = {q: float(sum(1 for g in qrels.get(q, {}).values() if g >= rel)) for q in query_ids}


def aggregate(values: Mapping[str, Mapping[str, float]], measures: Sequence[Any], n_queries: int) -> dict[str, float]:
    """trec_eval's summary: the total for count measures, the mean over ``n_queries`` for the others."""
    out = {}
    for m in measures:
        total = sum(values[str(m)].values())
        out[str(m)] = total if is_count(m) else total / n_queries
    return out


def drop_identical_ids(run: Mapping[str, Mapping[str, float]]) -> tuple[dict[str, dict[str, float]], int]:
    """The run without hits whose document id equals the query id (BEIR's rule), and how many were dropped.

    >>> drop_identical_ids({"q1": {"q1": 9.0, "d2": 1.0}, "q2": {"d3": 2.0}})
    ({'q1': {'d2': 1.0}, 'q2': {'d3': 2.0}}, 1)
    """
    out = {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}
    return out, sum(len(run[q]) - len(out[q]) for q in run)


def warn_identical_ids(name: str, run: Mapping[str, Mapping[str, float]], query_ids: Sequence[str]) -> None:
    """Warn when the run retrieves a judged query's own id as a document (kept, as trec_eval keeps it)."""
    n = sum(1 for q in query_ids if q in run.get(q, {}))
    if n:
        log.warning(
            "run '%s': %d of %d queries retrieve a document whose id is the query id (queries that are corpus "
            "documents, as in ArguAna and Quora); they are kept, as trec_eval keeps them. BEIR drops them "
            "(ignore_identical_ids): pass ignore_identical_ids=True / --ignore-identical-ids for its figures",
            name, n, len(query_ids),
        )
