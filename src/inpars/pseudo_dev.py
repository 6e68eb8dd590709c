"""The pseudo-dev set: the tuning set of a label-free run (the ``pseudo-dev`` stage of ``inpars run``).

A label-free run has no judged queries to choose its fusion weight (and its model) on. It holds out the
documents of a few of its synthetic queries instead: :func:`holdout_docs` draws them (a seeded choice per
document id, never more than a share of the documents queries were written for, the rest being trained on),
:func:`write_pseudo_dev` keeps their queries that pass the always-on checks (length, copy of the document:
:func:`inpars.filter.filter_queries` without filter steps, so that the set is the same whatever the steps)
and runs BM25 for them, and :func:`load_pseudo_dev` reads the result back as a
:class:`~inpars.fusion.TuneSet`: each query judged by its source document alone.

Query ids are ``<doc_id>-<query_index>``. A query BM25 finds nothing for (only stopwords) scores 0 for every
candidate, which is no evidence: it is left out of the run, and so out of the set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from inpars.config import RetrieveConfig
from inpars.datasets import Dataset, read_run_dict, write_run
from inpars.filter import filter_queries, load_records
from inpars.fingerprint import item_seed
from inpars.fusion import TuneSet
from inpars.io import atomic_write
from inpars.records import GeneratedQuery
from inpars.retrieval import retrieve

log = logging.getLogger(__name__)

#: The name of the set, in file names and records (``tuned_on``).
PSEUDO_DEV = "pseudo-dev"


def holdout_docs(doc_ids: Iterable[str], n_docs: int, seed: int, share: float = 0.25) -> set[str]:
    """``n_docs`` of ``doc_ids`` (a seeded choice per document id, independent of their order), but never
    more than ``share`` of them (a quarter: the rest are trained on): the documents whose queries form the
    pseudo-dev set.

    >>> held = holdout_docs(set("abcdefgh"), 5, seed=1)
    >>> len(held), held <= set("abcdefgh"), held == holdout_docs(set("hgfedcba"), 5, seed=1)
    (2, True, True)
    """
    docs = sorted(set(doc_ids), key=lambda d: (item_seed(seed, "pseudo-dev", d), d))
    return set(docs[: min(n_docs, int(len(docs) * share))])


def query_id(record: GeneratedQuery) -> str:
    """The id of a synthetic query in the set: ``<doc_id>-<query_index>``."""
    return f"{record.doc_id}-{record.query_index}"


def write_pseudo_dev(
    generated: str | Path | Sequence[GeneratedQuery],
    ds: Dataset,
    out: Mapping[str, Path],
    *,
    n_docs: int,
    share: float,
    seed: int,
    checks: Mapping[str, Any],
    first_stage: RetrieveConfig,
    index_dir: str | Path,
) -> dict[str, Any]:
    """Hold out ``n_docs`` of the documents queries were generated for (at most ``share`` of them) and write
    the set: ``out["docs"]`` (the held-out document ids, one per line, sorted), ``out["queries"]`` (their
    queries that pass the always-on checks; ``checks``: ``min_words``, ``max_words``, ``copy_threshold``)
    and ``out["run"]`` (their BM25 run with ``first_stage``'s settings, searched in ``index_dir``). Returns a summary: documents, queries kept, queries BM25 finds something for."""
    records = load_records(generated, ds)
    held = holdout_docs({r.doc_id for r in records}, n_docs, seed, share=share)
    with atomic_write(out["docs"]) as f:
        f.writelines(f"{d}\n" for d in sorted(held))
    kept = filter_queries([r for r in records if r.doc_id in held], out["queries"], dataset=ds, steps=[], seed=seed,
                          index_dir=index_dir, **checks).n_kept
    tune = synthetic_tune_set(ds, out["queries"], index_dir, first_stage)
    write_run(out["run"], tune.first, tag="bm25")
    return {"documents": len(held), "queries": kept, "searchable": len(tune.first)}


def synthetic_tune_set(ds: Dataset, queries: str | Path, index_dir: str | Path,
                       first_stage: RetrieveConfig | Mapping[str, Any]) -> TuneSet:
    """The :class:`~inpars.fusion.TuneSet` of the synthetic queries in ``queries``, searched now with BM25
    (``first_stage``: the retrieve settings, or their dump; in ``index_dir``)."""
    records = load_records(queries, ds)
    params = first_stage if isinstance(first_stage, RetrieveConfig) else RetrieveConfig(**first_stage)
    first = retrieve(ds, params, queries={query_id(r): r.query for r in records}, index_dir=index_dir)
    tune = _tune_set(records, first)
    if len(tune.queries) < len(records):
        log.info("%d synthetic tuning queries without an indexable term left out", len(records) - len(tune.queries))
    return tune


def held_docs(path: str | Path) -> set[str]:
    """The held-out document ids :func:`write_pseudo_dev` wrote (``out["docs"]``)."""
    return set(Path(path).read_text(encoding="utf-8").splitlines())


def load_pseudo_dev(ds: Dataset, queries: str | Path, run: str | Path) -> TuneSet:
    """The :class:`~inpars.fusion.TuneSet` :func:`write_pseudo_dev` wrote."""
    return _tune_set(load_records(queries, ds), read_run_dict(run))


def _tune_set(records: Sequence[GeneratedQuery], first: Mapping[str, Mapping[str, float]]) -> TuneSet:
    """The queries of ``records`` that ``first`` found something for (in the records' order), their texts,
    and each judged by its source document."""
    kept = [r for r in records if first.get(query_id(r))]
    return TuneSet(first={query_id(r): dict(first[query_id(r)]) for r in kept},
                   queries={query_id(r): r.query for r in kept},
                   qrels={query_id(r): {r.doc_id: 1} for r in kept})
