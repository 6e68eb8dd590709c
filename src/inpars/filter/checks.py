"""The checks that always run before the filter steps; each removed record gets the first reason that applies.

``empty``
    the query is blank.
``flagged:<flags>``
    the generator flagged the record (its ``flags``, e.g. ``repeats_prompt``, ``too_long``).
``too_short`` / ``too_long``
    fewer than ``min_words`` or more than ``max_words`` words (:func:`inpars.text.n_words`).
``copies_document``
    the query copies its document (:func:`inpars.text.copies_document` with ``copy_threshold``; None
    turns the check off).
``duplicate``
    the same normalised query (:func:`inpars.text.normalize_query`) was already kept; of a set of
    duplicates the one with the highest mean log-probability is kept (the first one on ties), whatever
    document it was written for, since one query with two different positives teaches contradictory things.
"""

from __future__ import annotations

from collections.abc import Mapping

from inpars.filter.base import Candidate, Removal
from inpars.records import Document
from inpars.text import copies_document, n_words, normalize_query


def always_on_checks(
    cands: list[Candidate],
    docs: Mapping[str, Document],
    *,
    min_words: int = 2,
    max_words: int = 64,
    copy_threshold: float | None = 0.9,
) -> tuple[list[Candidate], list[Removal]]:
    """Run the checks (see the module docstring); return (kept in input order, removed)."""
    passed: list[Candidate] = []
    removed: list[Removal] = []
    for c in cands:
        rec = c.record
        words = n_words(rec.query)
        if not rec.query.strip():
            removed.append(Removal(c, "empty"))
        elif rec.flags:
            removed.append(Removal(c, "flagged:" + "+".join(rec.flags)))
        elif words < min_words:
            removed.append(Removal(c, "too_short", {"words": words}))
        elif words > max_words:
            removed.append(Removal(c, "too_long", {"words": words}))
        elif copies_document(rec.query, docs[rec.doc_id].full_text, copy_threshold):
            removed.append(Removal(c, "copies_document"))
        else:
            passed.append(c)
    # Duplicates: keep the highest mean log-probability of each normalised query (first on ties).
    best: dict[str, Candidate] = {}
    for c in passed:
        key = normalize_query(c.record.query)
        cur = best.get(key)
        if cur is None or c.record.mean_log_prob > cur.record.mean_log_prob:
            best[key] = c
    kept: list[Candidate] = []
    for c in passed:
        winner = best[normalize_query(c.record.query)]
        if winner is c:
            kept.append(c)
        else:
            removed.append(Removal(c, "duplicate", {"kept_doc_id": winner.record.doc_id}))
    return kept, removed
