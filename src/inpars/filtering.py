"""Filtering synthetic queries: always-on sanity checks, then a sequence of configurable filters.

An LLM writes many poor queries; keeping the best ones matters more than writing more (InPars v1 keeps the
top 10k of 100k by the mean token log-probability, InPars v2 by a monoT5 score, Promptagator keeps a query
only when a retriever finds its source document again). Here a filter is one class in the :data:`FILTERS`
registry, and filters run one after the other, each on what the previous one kept::

    >>> from inpars.config import FilterStep
    >>> report = filter_queries(                                            # doctest: +SKIP
    ...     "queries.jsonl", "filtered.jsonl", dataset="scifact",
    ...     steps=[FilterStep(name="logprob", top_fraction=0.5),
    ...            FilterStep(name="consistency", top_k=3)])
    >>> report.n_kept, report.report_path                                   # doctest: +SKIP
    (431, 'filtered.report.json')

Always-on checks (before the steps; each removed record gets the first reason that applies):

``empty``
    the query is blank.
``flagged:<flags>``
    the generator flagged the record (``flags`` field, e.g. ``repeats_prompt``, ``too_long``).
``too_short`` / ``too_long``
    fewer than ``min_words`` or more than ``max_words`` words (whitespace-separated).
``copies_document``
    the query copies its document: with the query and the document lowercased and cut into word tokens
    (``\\w+``), some run of consecutive query tokens covering at least ``copy_threshold`` (0.9) of the
    query's tokens occurs verbatim, consecutively, in the document. With 1.0 (or for queries of up to 9
    tokens, where 90% rounds up to all of them) this is "the query is a substring of the document", the
    check of the original toolkit; ``copy_threshold=None`` turns the check off.
``duplicate``
    the same normalised query (lowercase word tokens) was already kept; of a set of duplicates the one
    with the highest mean log-probability is kept (the first one on ties), whatever document it was
    written for, since one query with two different positives teaches contradictory things.

Filters (``steps``; each a :class:`~inpars.config.FilterStep`):

``logprob``
    keep the ``top_k`` (or ``top_fraction``) queries by mean token log-probability (InPars v1).
``reranker``
    score (query, source document) with a reranker (:func:`inpars.rerank.load_scorer`; any cross-encoder,
    monoT5 or bi-encoder checkpoint in ``model``; options ``model_type``, ``batch_size``, ``max_length``,
    ``engine``, ``threads``, ``device``) and keep the
    best (InPars v2 keeps the top 10k of 100k by monoT5-3B). The default model is the packaged
    ``minilm-l6`` (all-MiniLM-L6-v2), detected as a *bi-encoder*: the score is the cosine of query and
    document embeddings (zero-shot). A trained cross-encoder (a checkpoint from ``inpars train`` or
    ``cross-encoder/ms-marco-MiniLM-L-6-v2``) is the InPars v2 set-up; ``model_type: cross-encoder``
    forces the packaged model through a seeded, untrained head (engine checks only).
``consistency``
    round-trip check (Promptagator; InPars-light): retrieve with the query and keep it only when its
    source document ranks within the ``top_k`` (default 3). Retrieval is BM25 (top ``depth``, default
    100), or, with ``model``, that reranker over the BM25 top ``depth``. The rank is 1 + the number of
    documents scoring strictly higher than the source document (ties count in its favour; documents with
    exactly the same text as the source count as the source); a source document outside the BM25 top
    ``depth`` (or sharing no term with the query) is ``not_retrieved``.
``random``
    keep a random ``top_k``/``top_fraction`` (seeded): the baseline a real filter must beat.

``logprob``, ``reranker`` and ``random`` keep ``min(top_k, ceil(top_fraction * n))`` of the ``n``
queries they receive (either may be omitted), ordered by score with ties broken by input order; the
option ``min_score`` also drops every query scoring below it.

Output: the kept records in input order, in the same JSONL format (original field names), each with a
``filter_scores`` field holding the scores the steps gave it; and a report beside the output
(``filtered.jsonl`` -> ``filtered.report.json``) with counts per step and reason and a few examples of
removed queries per reason.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import re
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from inpars.config import FilterStep
from inpars.datasets import Dataset, load_dataset, ranked
from inpars.errors import ConfigError, InputError
from inpars.io import write_json, write_jsonl
from inpars.records import Document, GeneratedQuery
from inpars.registry import Registry

log = logging.getLogger(__name__)

N_EXAMPLES = 3
"""Examples of removed queries kept in the report per reason."""

_TOKEN = re.compile(r"\w+")


# ------------------------------------------------------------------------------------------- text helpers


def tokens(text: str) -> list[str]:
    """Lowercase word tokens (``\\w+``) of a text.

    >>> tokens("Does Vitamin-D reduce COVID-19?")
    ['does', 'vitamin', 'd', 'reduce', 'covid', '19']
    """
    return _TOKEN.findall(text.lower())


def normalize_query(text: str) -> str:
    """The form under which two queries are duplicates: lowercase word tokens joined by spaces.

    >>> normalize_query("What is  p53?") == normalize_query("what is p53")
    True
    """
    return " ".join(tokens(text))


def n_words(text: str) -> int:
    """Whitespace-separated words, the unit of ``min_words``/``max_words``."""
    return len(text.split())


def copies_document(query: str, document: str, threshold: float | None = 0.9) -> bool:
    """Whether ``query`` copies ``document`` (see the module docstring for the rule).

    >>> doc = "Vitamin D supplementation reduces respiratory infections in adults."
    >>> copies_document("vitamin D supplementation reduces respiratory infections", doc)
    True
    >>> copies_document("does vitamin d reduce infections", doc)
    False
    >>> long_q = "vitamin d supplementation reduces respiratory infections in adults and in children"
    >>> copies_document(long_q, doc, 0.9), copies_document(long_q, doc, 0.6)
    (False, True)
    """
    if threshold is None:
        return False
    q = tokens(query)
    if not q:
        return False
    need = min(len(q), max(1, math.ceil(threshold * len(q) - 1e-9)))
    haystack = " " + " ".join(tokens(document)) + " "
    return any(" " + " ".join(q[i : i + need]) + " " in haystack for i in range(len(q) - need + 1))


def text_key(text: str) -> str:
    """A hash of a text with its whitespace normalised: documents with equal keys are duplicates."""
    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()


def same_text_groups(docs: Iterable[Document]) -> dict[str, frozenset[str]]:
    """For every document that has exact duplicates (same ``full_text`` up to whitespace), all their ids.

    Documents without duplicates and empty documents are left out.

    >>> docs = [Document("a", "x y"), Document("b", "x  y"), Document("c", "z")]
    >>> sorted(same_text_groups(docs)["a"])
    ['a', 'b']
    >>> "c" in same_text_groups(docs)
    False
    """
    by_key: dict[str, list[str]] = {}
    for d in docs:
        text = d.full_text
        if text.strip():
            by_key.setdefault(text_key(text), []).append(d.doc_id)
    out: dict[str, frozenset[str]] = {}
    for ids in by_key.values():
        if len(ids) > 1:
            group = frozenset(ids)
            for i in ids:
                out[i] = group
    return out


# ------------------------------------------------------------------------------------------------ records


def read_queries(path: str | Path) -> list[GeneratedQuery]:
    """Read generated queries (:func:`inpars.generate.read_generated`: ours or the original toolkit's)."""
    from inpars.generate import read_generated

    return read_generated(path)


def load_records(queries: str | Path | Sequence[GeneratedQuery], ds: Dataset) -> list[GeneratedQuery]:
    """Generated queries from a JSONL file (or a list), each checked to belong to ``ds``'s corpus."""
    source = str(queries) if isinstance(queries, (str, Path)) else "<records>"
    records = read_queries(queries) if isinstance(queries, (str, Path)) else list(queries)
    docs = ds.docs()
    for i, rec in enumerate(records, start=1):
        if rec.doc_id not in docs:
            raise InputError(
                f"record {i}: document '{rec.doc_id}' is not in the corpus of dataset '{ds.name}' "
                "(queries generated for another dataset?)",
                path=source,
                field="doc_id",
            )
    return records


def as_dataset(dataset: Dataset | str | Path) -> Dataset:
    return dataset if isinstance(dataset, Dataset) else load_dataset(dataset)


@dataclass(slots=True)
class Candidate:
    """A generated query going through the filters: its input position, the record, its scores."""

    index: int
    record: GeneratedQuery
    scores: dict[str, float | None] = field(default_factory=dict)


@dataclass(slots=True)
class Removal:
    candidate: Candidate
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


def resolve_bm25_params(index_dir: str | Path | None, bm25: dict[str, Any] | None) -> dict[str, Any]:
    """BM25 parameters: ``bm25`` when given, else those of the index already in ``index_dir``, else {}.

    Reading them from the index's manifest keeps a later stage from rebuilding (and overwriting) the
    index that the retrieve stage built with other parameters.
    """
    if bm25:
        return dict(bm25)
    if index_dir is not None:
        from inpars.retrieval import read_manifest

        manifest = read_manifest(index_dir)
        if manifest and isinstance(manifest.get("params"), dict):
            p = manifest["params"]
            return {k: p[k] for k in ("k1", "b", "stopwords", "stemmer") if k in p}
    return {}


class FilterContext:
    """What filters share: the dataset, its documents, the seed, and lazily loaded BM25 and rerankers."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        seed: int = 1,
        index_dir: str | Path | None = None,
        bm25: dict[str, Any] | None = None,
    ) -> None:
        self.dataset = dataset
        self.seed = seed
        self.index_dir = index_dir
        self.bm25_params = bm25
        self._index: Any = None
        self._scorers: dict[tuple[Any, ...], Any] = {}
        self._groups: dict[str, frozenset[str]] | None = None

    def docs(self) -> dict[str, Document]:
        return self.dataset.docs()

    def doc_text(self, doc_id: str) -> str:
        return self.docs()[doc_id].full_text

    def same_text(self, doc_id: str) -> frozenset[str]:
        """The ids of the documents whose text equals ``doc_id``'s (itself included)."""
        if self._groups is None:
            self._groups = same_text_groups(self.docs().values())
        return self._groups.get(doc_id, frozenset((doc_id,)))

    def bm25(self) -> Any:
        """The dataset's BM25 index (:func:`inpars.retrieval.get_index`), loaded once."""
        if self._index is None:
            from inpars.retrieval import get_index

            params = resolve_bm25_params(self.index_dir, self.bm25_params)
            self._index = get_index(self.dataset, self.index_dir, **params)
        return self._index

    def scorer(self, model: str, model_type: str | None = None, **kwargs: Any) -> Any:
        """A reranker (:func:`inpars.rerank.load_scorer`), loaded once per set of arguments."""
        key = (model, model_type, tuple(sorted(kwargs.items())))
        if key not in self._scorers:
            from inpars.rerank import load_scorer

            log.info("loading reranker %s", model)
            self._scorers[key] = load_scorer(model, model_type, **kwargs)
        return self._scorers[key]


# ------------------------------------------------------------------------------------------------ filters


class Filter(ABC):
    """One filtering step. Subclasses set ``name`` and ``options`` and implement :meth:`apply`.

    ``step`` holds the generic parameters (``top_k``, ``top_fraction``, ``model``, ``depth``) and the
    filter-specific ``options``; the constructor rejects options the filter does not know.
    """

    name: ClassVar[str] = ""
    options: ClassVar[frozenset[str]] = frozenset()
    uses: ClassVar[frozenset[str]] = frozenset({"top_k", "top_fraction"})

    def __init__(self, step: FilterStep) -> None:
        self.step = step
        unknown = sorted(set(step.options) - self.options)
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise ConfigError(f"filter '{self.name}': unknown option(s) {', '.join(unknown)} (known: {known})")
        given = {k for k in ("top_k", "top_fraction", "model", "depth") if getattr(step, k) is not None}
        unused = sorted(given - self.uses)
        if unused:
            raise ConfigError(f"filter '{self.name}' does not use {', '.join(unused)}")

    def params(self) -> dict[str, Any]:
        """The step's parameters, as recorded in the report."""
        return self.step.model_dump(exclude_none=True, exclude_defaults=False)

    @abstractmethod
    def apply(self, cands: list[Candidate], ctx: FilterContext) -> tuple[list[Candidate], list[Removal]]:
        """Return (kept, removed); ``kept`` keeps the input order."""


FILTERS: Registry[type[Filter]] = Registry("filter")


def keep_count(n: int, top_k: int | None, top_fraction: float | None) -> int:
    """How many of ``n`` a top-k / top-fraction step keeps: ``min(top_k, ceil(top_fraction * n))``.

    >>> keep_count(10, None, 0.3), keep_count(10, 2, 0.5), keep_count(7, None, 0.5), keep_count(3, 5, None)
    (3, 2, 4, 3)
    """
    k = n
    if top_k is not None:
        k = min(k, top_k)
    if top_fraction is not None:
        k = min(k, math.ceil(top_fraction * n - 1e-9))
    return max(0, k)


class ScoreFilter(Filter):
    """Score every candidate, then keep the best ``top_k``/``top_fraction`` (and those >= ``min_score``)."""

    options: ClassVar[frozenset[str]] = frozenset({"min_score"})

    def __init__(self, step: FilterStep) -> None:
        super().__init__(step)
        if step.top_k is None and step.top_fraction is None and "min_score" not in step.options:
            raise ConfigError(f"filter '{self.name}' needs top_k, top_fraction or the option min_score")

    @abstractmethod
    def score(self, cands: list[Candidate], ctx: FilterContext) -> list[float]:
        """One score per candidate; higher is better."""

    def apply(self, cands: list[Candidate], ctx: FilterContext) -> tuple[list[Candidate], list[Removal]]:
        scores = [float(s) for s in self.score(cands, ctx)] if cands else []
        if len(scores) != len(cands):
            raise RuntimeError(f"filter '{self.name}' returned {len(scores)} scores for {len(cands)} queries")
        scores = [-math.inf if math.isnan(s) else s for s in scores]
        for c, s in zip(cands, scores, strict=True):
            c.scores[self.name] = s if math.isfinite(s) else None
        order = sorted(range(len(cands)), key=lambda i: (-scores[i], cands[i].index))
        k = keep_count(len(cands), self.step.top_k, self.step.top_fraction)
        min_score = self.step.options.get("min_score")
        keep: set[int] = set()
        removed: list[Removal] = []
        for rank, i in enumerate(order, start=1):
            detail = {"score": scores[i], "rank": rank}
            if rank > k:
                removed.append(Removal(cands[i], "low_score", detail))
            elif min_score is not None and scores[i] < float(min_score):
                removed.append(Removal(cands[i], "below_min_score", detail))
            else:
                keep.add(i)
        return [c for i, c in enumerate(cands) if i in keep], removed


@FILTERS.register("logprob")
class LogProbFilter(ScoreFilter):
    """Mean token log-probability of the query under the generator (InPars v1)."""

    name = "logprob"

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


@FILTERS.register("random")
class RandomFilter(ScoreFilter):
    """A seeded random score per record (independent of input order): the baseline for other filters."""

    name = "random"

    def score(self, cands: list[Candidate], ctx: FilterContext) -> list[float]:
        return [
            random.Random(f"{ctx.seed}\0{c.record.doc_id}\0{c.record.query}").random() for c in cands
        ]


SCORER_OPTIONS = frozenset({"model_type", "batch_size", "max_length", "engine", "threads", "device"})
"""Options of the ``reranker`` and ``consistency`` steps passed to :func:`inpars.rerank.load_scorer`."""


@FILTERS.register("reranker")
class RerankerFilter(ScoreFilter):
    """Reranker score of (query, source document) (InPars v2 uses monoT5-3B; default: packaged MiniLM)."""

    name = "reranker"
    options = frozenset({"min_score"}) | SCORER_OPTIONS
    uses = frozenset({"top_k", "top_fraction", "model"})
    default_model = "minilm-l6"

    def score(self, cands: list[Candidate], ctx: FilterContext) -> list[float]:
        model = self.step.model or self.default_model
        if model == "minilm-l6":
            log.warning(
                "filter 'reranker' with the packaged all-MiniLM-L6-v2: a bi-encoder whose cross-encoder head "
                "is untrained; pass a trained cross-encoder (model=...) for a meaningful filter"
            )
        scorer = ctx.scorer(model, **_scorer_kwargs(self.step.options))
        pairs = [(c.record.query, ctx.doc_text(c.record.doc_id)) for c in cands]
        return list(scorer.score(pairs, show_progress=None))  # a bar on a terminal


def _scorer_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    return {k: options[k] for k in SCORER_OPTIONS if k in options}


@FILTERS.register("consistency")
class ConsistencyFilter(Filter):
    """Keep a query when retrieval with it ranks its source document within ``top_k`` (round trip)."""

    name = "consistency"
    options = SCORER_OPTIONS
    uses = frozenset({"top_k", "model", "depth"})
    default_top_k = 3
    default_depth = 100
    _chunk = 1024

    def __init__(self, step: FilterStep) -> None:
        super().__init__(step)
        self.top_k = step.top_k or self.default_top_k
        self.depth = step.depth or self.default_depth
        if self.depth < self.top_k:
            raise ConfigError(f"filter 'consistency': depth ({self.depth}) must be >= top_k ({self.top_k})")

    def params(self) -> dict[str, Any]:
        out = super().params()
        out.setdefault("top_k", self.top_k)
        out.setdefault("depth", self.depth)
        return out

    def apply(self, cands: list[Candidate], ctx: FilterContext) -> tuple[list[Candidate], list[Removal]]:
        from tqdm.auto import tqdm

        kept: list[Candidate] = []
        removed: list[Removal] = []
        if not cands:
            return kept, removed
        index = ctx.bm25()
        scorer = ctx.scorer(self.step.model, **_scorer_kwargs(self.step.options)) if self.step.model else None
        chunk = self._chunk if scorer is None else 32
        starts = range(0, len(cands), chunk)
        for start in tqdm(starts, desc="consistency", unit="chunk", disable=len(starts) < 2):
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


# ----------------------------------------------------------------------------------------------- report


@dataclass
class StepReport:
    """What one step (or the always-on checks) removed, and why."""

    name: str
    params: dict[str, Any]
    n_in: int
    n_out: int
    removed: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "n_removed": self.n_in - self.n_out,
            "removed": self.removed,
            "examples": self.examples,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class FilterReport:
    """Result of :func:`filter_queries`; saved as JSON beside the output."""

    input: str
    output: str
    report_path: str
    n_input: int
    n_kept: int
    steps: list[StepReport]
    seconds: float = 0.0

    @property
    def n_removed(self) -> int:
        return self.n_input - self.n_kept

    def removed_by_reason(self) -> dict[str, int]:
        """``{"<step>:<reason>": count}`` over all steps."""
        return {f"{s.name}:{r}": n for s in self.steps for r, n in s.removed.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "report": self.report_path,
            "n_input": self.n_input,
            "n_kept": self.n_kept,
            "n_removed": self.n_removed,
            "steps": [s.to_json() for s in self.steps],
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """A few lines for humans."""
        lines = [f"kept {self.n_kept} of {self.n_input} queries -> {self.output}"]
        for s in self.steps:
            why = ", ".join(f"{r} {n}" for r, n in sorted(s.removed.items(), key=lambda kv: -kv[1])) or "-"
            lines.append(f"  {s.name}: {s.n_in} -> {s.n_out} (removed: {why})")
        lines.append(f"report: {self.report_path}")
        return "\n".join(lines)


def _step_report(
    name: str, params: dict[str, Any], n_in: int, removed: list[Removal], seconds: float
) -> StepReport:
    counts = Counter(r.reason for r in removed)
    examples: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(removed, key=lambda r: r.candidate.index):
        ex = examples.setdefault(r.reason, [])
        if len(ex) < N_EXAMPLES:
            ex.append({"doc_id": r.candidate.record.doc_id, "query": r.candidate.record.query, **r.detail})
    return StepReport(
        name=name,
        params=params,
        n_in=n_in,
        n_out=n_in - len(removed),
        removed=dict(sorted(counts.items())),
        examples=examples,
        seconds=seconds,
    )


def report_path_for(out: str | Path) -> Path:
    """Where the report of output ``out`` goes: ``filtered.jsonl`` -> ``filtered.report.json``."""
    out = Path(out)
    return out.with_name(out.stem + ".report.json") if out.suffix else out.with_name(out.name + ".report.json")


# ----------------------------------------------------------------------------------------------- checks


def always_on_checks(
    cands: list[Candidate],
    docs: dict[str, Document],
    *,
    min_words: int = 2,
    max_words: int = 64,
    copy_threshold: float | None = 0.9,
) -> tuple[list[Candidate], list[Removal]]:
    """The checks that always run: empty, flagged, length, copies the document, duplicate."""
    passed: list[Candidate] = []
    removed: list[Removal] = []
    for c in cands:
        rec = c.record
        flags = rec.extra.get("flags") or []
        if isinstance(flags, str):
            flags = [flags]
        words = n_words(rec.query)
        if not rec.query.strip():
            removed.append(Removal(c, "empty"))
        elif flags:
            removed.append(Removal(c, "flagged:" + "+".join(str(f) for f in flags)))
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


# ------------------------------------------------------------------------------------------------- main


def make_filter(step: FilterStep | dict[str, Any]) -> Filter:
    """Instantiate the filter a step names (a FilterStep or its dict form)."""
    if not isinstance(step, FilterStep):
        step = FilterStep.model_validate(step)
    return FILTERS.get(step.name)(step)


def parse_step(spec: str) -> FilterStep:
    """Parse the command-line form ``NAME[:key=value[,key=value...]]`` of a step.

    Keys ``top_k``, ``top_fraction``, ``model`` and ``depth`` are the step's fields; other keys go into
    ``options``. Values are read as YAML scalars (numbers, true/false, null, else strings).

    >>> parse_step("logprob:top_fraction=0.5")
    FilterStep(name='logprob', top_k=None, top_fraction=0.5, model=None, depth=None, options={})
    >>> s = parse_step("consistency:top_k=1,depth=50,model=my/ce,batch_size=64")
    >>> (s.top_k, s.depth, s.model, s.options)
    (1, 50, 'my/ce', {'batch_size': 64})
    """
    import yaml
    from pydantic import ValidationError

    name, _, rest = spec.strip().partition(":")
    if not name:
        raise ConfigError(f"bad filter step '{spec}': expected NAME[:key=value,...]")
    fields: dict[str, Any] = {"name": name}
    options: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise ConfigError(f"bad filter step '{spec}': '{item}' is not key=value")
        try:
            value = yaml.safe_load(raw.strip()) if raw.strip() else None
        except yaml.YAMLError:
            value = raw.strip()
        (fields if key in {"top_k", "top_fraction", "model", "depth"} else options)[key] = value
    if name not in FILTERS:
        FILTERS.get(name)  # raises, listing the known filters
    try:
        return FilterStep(**fields, options=options)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"bad filter step '{spec}': {msgs}") from None


def filter_queries(
    queries: str | Path | Sequence[GeneratedQuery],
    out: str | Path,
    *,
    dataset: Dataset | str | Path,
    steps: Sequence[FilterStep | dict[str, Any]] | None = None,
    min_words: int = 2,
    max_words: int = 64,
    copy_threshold: float | None = 0.9,
    seed: int = 1,
    index_dir: str | Path | None = None,
    bm25: dict[str, Any] | None = None,
) -> FilterReport:
    """Filter generated queries and write the kept ones to ``out`` (JSONL, atomically) with a report.

    ``queries`` is a generation JSONL file or a list of records; ``steps`` the filters to run in order
    after the always-on checks (None: none). ``index_dir`` is the BM25 index folder (see
    :func:`inpars.retrieval.get_index`) and ``bm25`` its parameters (default: those of the index already in
    ``index_dir``, else the retrieval defaults). Returns the :class:`FilterReport`, also written to
    :func:`report_path_for` ``(out)``.

    >>> rep = filter_queries("queries.jsonl", "filtered.jsonl", dataset="scifact",   # doctest: +SKIP
    ...                      steps=[{"name": "logprob", "top_k": 1000}])
    >>> print(rep.summary())                                                        # doctest: +SKIP
    kept 1000 of 4889 queries -> filtered.jsonl
      always_on: 5000 -> 4889 (removed: duplicate 71, flagged:repeats_prompt 23, ...)
      logprob: 4889 -> 1000 (removed: low_score 3889)
    report: filtered.report.json
    """
    t0 = time.perf_counter()
    if max_words < min_words:
        raise ConfigError(f"max_words ({max_words}) is smaller than min_words ({min_words})")
    filters = [make_filter(s) for s in (steps or [])]
    ds = as_dataset(dataset)
    source = str(queries) if isinstance(queries, (str, Path)) else "<records>"
    records = load_records(queries, ds)
    docs = ds.docs()
    ctx = FilterContext(ds, seed=seed, index_dir=index_dir, bm25=bm25)
    cands = [Candidate(i, rec) for i, rec in enumerate(records)]
    reports: list[StepReport] = []

    t = time.perf_counter()
    n_in = len(cands)
    cands, removed = always_on_checks(
        cands, docs, min_words=min_words, max_words=max_words, copy_threshold=copy_threshold
    )
    params = {"min_words": min_words, "max_words": max_words, "copy_threshold": copy_threshold}
    reports.append(_step_report("always_on", params, n_in, removed, time.perf_counter() - t))
    log.info("always-on checks: %d -> %d queries", n_in, len(cands))

    for flt in filters:
        t = time.perf_counter()
        n_in = len(cands)
        cands, removed = flt.apply(cands, ctx)
        reports.append(_step_report(flt.name, flt.params(), n_in, removed, time.perf_counter() - t))
        log.info("filter %s: %d -> %d queries", flt.name, n_in, len(cands))

    cands.sort(key=lambda c: c.index)
    out = Path(out)
    write_jsonl(out, (_output_record(c) for c in cands))
    rpath = report_path_for(out)
    report = FilterReport(
        input=source,
        output=str(out),
        report_path=str(rpath),
        n_input=len(records),
        n_kept=len(cands),
        steps=reports,
        seconds=time.perf_counter() - t0,
    )
    write_json(rpath, report.to_json())
    return report


def _output_record(c: Candidate) -> dict[str, Any]:
    obj = c.record.to_json()
    if c.scores:
        previous = obj.get("filter_scores")
        obj["filter_scores"] = {**(previous if isinstance(previous, dict) else {}), **c.scores}
    return obj
