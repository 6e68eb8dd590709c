"""Hard negatives: for each kept query, documents sampled from its BM25 ranking that are not its positive.

As in InPars, the negatives of a query are drawn uniformly at random from the BM25 top ``depth`` (1000) of
that query, one per query by default::

    >>> summary = mine_negatives("filtered.jsonl", "train.jsonl", dataset="scifact")   # doctest: +SKIP
    >>> summary.n_examples, summary.n_fallback                                        # doctest: +SKIP
    (1000, 0)

Rules (each is tested):

- A negative is never a document known to be positive for the query: its source ``doc_id``; any document
  whose text is exactly that of a positive (corpora hold duplicates); and, when the query is a real query of
  the dataset's ``qrels_split`` (opt-in, default none: label-free; matched by its id in the record's ``query_id`` field or by its
  normalised text, e.g. a few-shot example the LLM copied), every document judged relevant to it. The
  original toolkit's ``generate_triples.py`` samples from the BM25 hits without removing the positive, so the
  query's own document, usually ranked first, is drawn as a "negative" about once per ``depth`` draws.
- Candidates are the hits ranked ``skip_top + 1`` to ``depth`` (``skip_top`` skips the top hits, which are
  often unlabelled positives) that share at least one term with the query; two negatives of a query never
  have the same text.
- Each query draws from its own generator, seeded from ``seed``, its query id, document id and text, so the
  result does not depend on the order of the queries or on how the work is split.
- When BM25 has fewer candidates than ``n_negatives``, the rest are drawn at random from the corpus (with
  the same exclusions); ``n_fallback`` counts those queries and a warning is logged. ``method="random"``
  draws every negative at random from the corpus.
- ``method="dense"``: the BM25 top ``depth`` is reordered by the zero-shot bi-encoder ``model`` before
  ``skip_top`` and the draw (GPL mines with a dense model, since BM25's top hits are often unlabelled
  positives of a synthetic query).
- ``teacher="fused"`` pseudo-labels each example (GPL-style distillation targets, ``scores``: positive
  first): ``(1 - teacher_weight) * minmax(BM25) + teacher_weight * minmax(dense)``, each min-max taken
  over the query's candidates (its BM25 top ``depth``, its positive and its negatives; a document outside
  the BM25 hits gets the BM25 minimum). Nothing but the collection and the synthetic queries is read.

Output: one :class:`~inpars.records.TrainingExample` JSON line per query (``query_id`` =
``<doc_id>-<query_index>``, ``query``, ``pos_doc_id``, ``positive`` = the document's ``full_text``,
``neg_doc_ids``, ``negatives``), written atomically.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, get_args

from inpars.config import NegativesConfig, section_params
from inpars.corpus_view import text_columns
from inpars.datasets import PROTECTED_SPLITS, Dataset, as_dataset, ranked
from inpars.errors import ConfigError
from inpars.filter.base import load_records, resolve_bm25_params
from inpars.fusion import minmax
from inpars.io import write_jsonl
from inpars.quiet import bar
from inpars.records import Document, GeneratedQuery, TrainingExample
from inpars.registry import Registry
from inpars.rerank import load_scorer
from inpars.retrieval import get_index
from inpars.text import normalize_query

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = get_args(NegativesConfig.model_fields["method"].annotation)
"""The negatives methods (those :class:`~inpars.config.NegativesConfig` accepts)."""
_SEARCH_BATCH = 1000  # queries per BM25 search call (bounds the memory of a depth-1000 run)


@dataclass
class NegativesSummary:
    """What :func:`mine_negatives` did.

    ``n_fallback``: queries for which BM25 gave fewer candidates than needed, topped up at random;
    ``n_short``: queries that got fewer than ``n_negatives`` even so (tiny corpus); ``n_positives_excluded``:
    positives (the source document, a duplicate of it, or a judged document) found among the BM25 candidates
    and kept out of the draw; ``n_skipped_empty``: records with an empty query (no example written).
    """

    input: str
    output: str
    method: str
    n_queries: int
    n_examples: int
    n_negatives: int
    n_fallback: int = 0
    n_short: int = 0
    n_positives_excluded: int = 0
    n_skipped_empty: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        return out

    def summary(self) -> str:
        """A few lines for humans."""
        lines = [
            f"wrote {self.n_examples} training examples ({self.n_negatives} {self.method} negatives) -> {self.output}"
        ]
        if self.n_fallback:
            lines.append(f"  {self.n_fallback} queries had too few BM25 candidates: topped up with random documents")
        if self.n_short:
            lines.append(f"  {self.n_short} queries got fewer negatives than asked (corpus too small)")
        if self.n_skipped_empty:
            lines.append(f"  {self.n_skipped_empty} records with an empty query were skipped")
        lines.append(f"  {self.n_positives_excluded} positive hits were kept out of the negatives")
        return "\n".join(lines)


def query_rng(seed: int, query_id: str, doc_id: str, query: str) -> random.Random:
    """The generator of one query: a function of the seed and the query alone, not of the run's order.

    >>> query_rng(1, "d1-0", "d1", "q").random() == query_rng(1, "d1-0", "d1", "q").random()
    True
    """
    digest = hashlib.sha256(f"{seed}\0{query_id}\0{doc_id}\0{query}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def assign_query_ids(records: Sequence[GeneratedQuery]) -> list[str]:
    """``<doc_id>-<query_index>`` per record (:attr:`GeneratedQuery.query_index`, 0 for a file that has
    none); a repeated id gets a ``~N`` suffix.

    >>> recs = [GeneratedQuery("d1", "a", query_index=0), GeneratedQuery("d1", "b", query_index=1),
    ...         GeneratedQuery("d2", "c"), GeneratedQuery("d1", "e", query_index=0)]
    >>> assign_query_ids(recs)
    ['d1-0', 'd1-1', 'd2-0', 'd1-0~1']
    """
    seen: dict[str, int] = {}
    out: list[str] = []
    for rec in records:
        qid = f"{rec.doc_id}-{rec.query_index}"
        if qid in seen:
            seen[qid] += 1
            qid = f"{qid}~{seen[qid]}"
        else:
            seen[qid] = 0
        out.append(qid)
    return out


class _Corpus:
    """Documents in corpus order, with text keys, for exclusion by id or by identical text (the corpus's
    :class:`~inpars.corpus_view.TextColumns`: no per-document Python object for a large corpus)."""

    def __init__(self, docs: Mapping[str, Document]) -> None:
        self.docs = docs
        self.columns = text_columns(docs)
        self.ids = self.columns.ids
        # only texts shared by several documents get a group (memory: one set per duplicated text)
        self.by_key: dict[int, set[str]] = {
            int(self.columns.keys[rows[0]]): {self.ids[r] for r in rows}
            for rows in self.columns.duplicate_groups(blank=True)
        }

    def key(self, doc_id: str) -> int:
        """The text key of a document of the corpus."""
        k = self.columns.key(doc_id)
        if k is None:
            raise KeyError(doc_id)
        return k

    def with_duplicates(self, ids: set[str]) -> set[str]:
        """``ids`` plus every document whose text equals one of theirs."""
        out = set(ids)
        for d in ids:
            k = self.columns.key(d)
            if k is not None:
                out |= self.by_key.get(k, set())
        return out


def _known_positives(ds: Dataset, split: str | None) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Judged-relevant documents of ``split``'s real queries, by query id and by normalised query text."""
    if not split or split in PROTECTED_SPLITS or not ds.has_split(split):
        if split in PROTECTED_SPLITS:
            log.warning("not reading the protected '%s' judgements for negatives", split)
        return {}, {}
    qrels = ds.qrels_dict(split)
    by_id = {q: {d for d, rel in docs.items() if rel > 0} for q, docs in qrels.items()}
    by_text: dict[str, set[str]] = {}
    for qid, text in ds.queries(split).items():
        if by_id.get(qid):
            by_text.setdefault(normalize_query(text), set()).update(by_id[qid])
    return by_id, by_text


def _draw(
    rng: random.Random,
    pool: list[str],
    n: int,
    excluded: set[str],
    corpus: _Corpus,
    taken: list[str],
    taken_keys: set[int],
) -> None:
    """Draw up to ``n`` documents from ``pool`` without replacement (partial Fisher-Yates), skipping the
    ``excluded`` ids and texts already taken; appends to ``taken``."""
    pool = list(pool)
    for i in range(len(pool)):
        if len(taken) >= n:
            break
        j = rng.randrange(i, len(pool))
        pool[i], pool[j] = pool[j], pool[i]
        d = pool[i]
        if d in excluded or corpus.key(d) in taken_keys:
            continue
        taken.append(d)
        taken_keys.add(corpus.key(d))


def _draw_random(
    rng: random.Random, n: int, excluded: set[str], corpus: _Corpus, taken: list[str], taken_keys: set[int]
) -> None:
    """Top ``taken`` up to ``n`` with documents drawn uniformly from the whole corpus (same exclusions)."""
    ids = corpus.ids
    attempts = 0
    while len(taken) < n and attempts < 20 * n + 20:
        attempts += 1
        d = ids[rng.randrange(len(ids))]
        if d in excluded or d in taken or corpus.key(d) in taken_keys:
            continue
        taken.append(d)
        taken_keys.add(corpus.key(d))
    if len(taken) < n:  # a tiny or highly excluded corpus: scan it from a random offset
        start = rng.randrange(len(ids))
        for k in range(len(ids)):
            d = ids[(start + k) % len(ids)]
            if len(taken) >= n:
                break
            if d in excluded or d in taken or corpus.key(d) in taken_keys:
                continue
            taken.append(d)
            taken_keys.add(corpus.key(d))


class _DenseScores:
    """Cosine scores of (query, document id) pairs by a zero-shot bi-encoder, computed in bulk."""

    def __init__(self, model: str, max_length: int, docs: Mapping[str, Document]) -> None:
        self.docs = docs
        self.scorer = load_scorer(model, "bi-encoder", max_length=max_length)
        self.scores: dict[tuple[str, str], float] = {}

    def add(self, pairs: Iterator[tuple[str, str]] | Sequence[tuple[str, str]]) -> None:
        todo = list(dict.fromkeys(p for p in pairs if p not in self.scores))
        if todo:
            # no bar of its own: the mining's bar counts these queries
            values = self.scorer.score([(q, self.docs[d].full_text) for q, d in todo], show_progress=False)
            self.scores.update(zip(todo, (float(v) for v in values), strict=True))

    def get(self, query: str, doc_id: str) -> float:
        if (query, doc_id) not in self.scores:
            self.add([(query, doc_id)])
        return self.scores[(query, doc_id)]


def _fused_teacher(
    bm25_hits: dict[str, float], dense: _DenseScores, query: str, group: list[str], weight: float
) -> list[float]:
    """``(1 - weight) * minmax(BM25) + weight * minmax(dense)`` for each document of ``group``, the min-max
    of each taken over the BM25 hits and the group (a document outside the hits gets the BM25 minimum).

    Rounded to 6 decimals so that the training file is stable across platforms."""
    floor = min(bm25_hits.values(), default=0.0)
    cands = list(dict.fromkeys([*bm25_hits, *group]))
    lexical = minmax({d: bm25_hits.get(d, floor) for d in cands})
    semantic = minmax({d: dense.get(query, d) for d in cands})
    return [round((1 - weight) * lexical[d] + weight * semantic[d], 6) for d in group]


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True)
class _Method:
    """How a negatives method (:data:`NEGATIVE_METHODS`) finds a query's candidates: ``order`` ranks its BM25
    hits (``hits``, the query, the dense scores) for the draw, or is None when every negative is drawn at
    random from the corpus; ``dense``: it needs the zero-shot bi-encoder.

    >>> NEGATIVE_METHODS.names() == sorted(METHODS), NEGATIVE_METHODS.get("random").order is None
    (True, True)
    """

    order: Callable[[dict[str, float], str, _DenseScores | None], dict[str, float]] | None
    dense: bool = False


def _by_dense(hits: dict[str, float], query: str, dense: _DenseScores | None) -> dict[str, float]:
    assert dense is not None  # built whenever the method is 'dense'
    return {d: dense.get(query, d) for d in hits}


#: the negatives methods by name (``negatives.method``)
NEGATIVE_METHODS: Registry[_Method] = Registry("negatives method")
NEGATIVE_METHODS.register("bm25")(_Method(order=lambda hits, query, dense: hits))
NEGATIVE_METHODS.register("dense")(_Method(order=_by_dense, dense=True))
NEGATIVE_METHODS.register("random")(_Method(order=None))

#: the pseudo-labels of an example by ``negatives.teacher`` (None: none)
TEACHERS: dict[str, Callable[..., list[float]] | None] = {"none": None, "fused": _fused_teacher}


class _Miner:
    """One mining run: the corpus, the known positives, the BM25 index and the dense scores when the method
    or the teacher needs them, and the counts of the summary."""

    def __init__(self, ds: Dataset, params: NegativesConfig, method: _Method, *, seed: int,
                 qrels_split: str | None, index_dir: str | Path | None, bm25: dict[str, Any] | None,
                 n_items: int) -> None:
        self.params, self.method, self.seed = params, method, seed
        self.teacher = TEACHERS[params.teacher]
        self.docs = ds.docs()
        self.corpus = _Corpus(self.docs)
        self.by_id, self.by_text = _known_positives(ds, qrels_split)
        uses_bm25 = (self.method.order is not None or self.teacher is not None) and n_items > 0
        uses_dense = (self.method.dense or self.teacher is not None) and n_items > 0
        self.index = get_index(ds, index_dir, **resolve_bm25_params(index_dir, bm25)) if uses_bm25 else None
        self.dense = _DenseScores(params.model, params.max_length, self.docs) if uses_dense else None
        self.n_fallback = self.n_short = self.n_excluded = 0

    def batch(self, batch: list[tuple[str, GeneratedQuery]]) -> list[TrainingExample]:
        """The examples of a batch of (query id, record), searched together."""
        index = self.index
        run = index.search({qid: rec.query for qid, rec in batch}, k=self.params.depth) if index is not None else {}
        if self.dense is not None:
            self.dense.add(((rec.query, d) for qid, rec in batch for d in [rec.doc_id, *run.get(qid, {})]))
        return [self.example(qid, rec, run.get(qid, {})) for qid, rec in batch]

    def example(self, qid: str, rec: GeneratedQuery, hits: dict[str, float]) -> TrainingExample:
        """One query's example: negatives drawn from its ordered hits, topped up from the corpus."""
        p = self.params
        positives = {rec.doc_id}
        real_qid = rec.extra.get("query_id")
        if isinstance(real_qid, str) and real_qid in self.by_id:
            positives |= self.by_id[real_qid]
        positives |= self.by_text.get(normalize_query(rec.query), set())
        excluded = self.corpus.with_duplicates(positives)
        rng = query_rng(self.seed, qid, rec.doc_id, rec.query)
        taken: list[str] = []
        taken_keys: set[int] = set()
        if self.index is not None and self.method.order is not None:
            pool = [d for d, _ in ranked(self.method.order(hits, rec.query, self.dense))[p.skip_top : p.depth]]
            self.n_excluded += sum(1 for d in pool if d in excluded)
            _draw(rng, pool, p.n_negatives, excluded, self.corpus, taken, taken_keys)
            if len(taken) < p.n_negatives:
                self.n_fallback += 1
        _draw_random(rng, p.n_negatives, excluded, self.corpus, taken, taken_keys)
        if len(taken) < p.n_negatives:
            self.n_short += 1
        scores = None
        if self.teacher is not None and self.dense is not None:
            scores = self.teacher(hits, self.dense, rec.query, [rec.doc_id, *taken], p.teacher_weight)
        return TrainingExample(query=rec.query, pos_doc_id=rec.doc_id, positive=self.docs[rec.doc_id].full_text,
                               neg_doc_ids=taken, negatives=[self.docs[d].full_text for d in taken], query_id=qid,
                               scores=scores)

    def warn(self, n_items: int) -> None:
        """The warnings of a run that topped up or fell short."""
        p = self.params
        if self.n_fallback:
            log.warning(
                "%d of %d queries had fewer than %d BM25 candidates in ranks %d-%d; topped up with random documents",
                self.n_fallback, n_items, p.n_negatives, p.skip_top + 1, p.depth,
            )  # fmt: skip
        if self.n_short:
            log.warning("%d queries got fewer than %d negatives (the corpus is too small)", self.n_short, p.n_negatives)


def mine_negatives(
    queries: str | Path | Sequence[GeneratedQuery],
    out: str | Path,
    params: NegativesConfig | None = None,
    *,
    dataset: Dataset | str | Path,
    seed: int = 1,
    index_dir: str | Path | None = None,
    bm25: dict[str, Any] | None = None,
    qrels_split: str | None = None,
    **fields: Any,
) -> NegativesSummary:
    """Write one training example per query with ``n_negatives`` negatives (see the module docstring).

    ``queries``: a filtered (or generated) JSONL file or a list of records. ``params``: a
    :class:`~inpars.config.NegativesConfig` (``method``: ``bm25``, sampled from hits ``skip_top + 1`` ..
    ``depth``, ``dense`` or ``random``; ``n_negatives``; ``teacher``/``teacher_weight``/``model``/
    ``max_length``: the dense model and the pseudo-labels, module docstring); or give its fields as keywords
    instead, validated by that model with its defaults (:func:`~inpars.config.section_params`).
    ``index_dir``/``bm25``: the BM25 index folder and its parameters (default: those of the index already in
    ``index_dir``). ``qrels_split``: the split whose judgements mark known positives of real queries (never a
    protected split; None: none).
    """
    t0 = time.perf_counter()
    params = section_params(NegativesConfig, params, fields, "mine_negatives")
    method = NEGATIVE_METHODS.get(params.method)
    if method.order is not None and params.skip_top >= params.depth:
        raise ConfigError(f"skip_top ({params.skip_top}) must be smaller than depth ({params.depth})")
    ds = as_dataset(dataset)
    records = load_records(queries, ds)
    items = [(qid, rec) for qid, rec in zip(assign_query_ids(records), records, strict=True) if rec.query.strip()]
    n_empty = len(records) - len(items)
    if n_empty:
        log.warning("%d records have an empty query; skipped", n_empty)
    miner = _Miner(ds, params, method, seed=seed, qrels_split=qrels_split, index_dir=index_dir, bm25=bm25,
                   n_items=len(items))
    examples: list[TrainingExample] = []
    shown = bar(total=len(items), desc="negatives", unit="query", show=None if len(items) >= 1000 else False)
    for batch in _batches(items, _SEARCH_BATCH):
        examples += miner.batch(batch)
        shown.update(len(batch))
    shown.close()
    miner.warn(len(items))
    write_jsonl(out, (ex.to_json() for ex in examples))
    summary = NegativesSummary(
        input=str(queries) if isinstance(queries, (str, Path)) else "<records>",
        output=str(out),
        method=params.method,
        n_queries=len(records),
        n_examples=len(examples),
        n_negatives=sum(len(ex.neg_doc_ids) for ex in examples),
        n_fallback=miner.n_fallback,
        n_short=miner.n_short,
        n_positives_excluded=miner.n_excluded,
        n_skipped_empty=n_empty,
        seconds=time.perf_counter() - t0,
    )
    log.info("negatives: %d examples, %d negatives in %.1fs", summary.n_examples, summary.n_negatives, summary.seconds)
    return summary
