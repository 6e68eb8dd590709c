"""Typed records passed between the stages.

Field names of :class:`GeneratedQuery` follow the JSONL written by the original InPars toolkit
(``doc_id``, ``query``, ``log_probs``, ``prompt_text``, ``fewshot_examples``), so its files load here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypeAlias

#: A ranking: query id -> document id -> score (what a TREC run file holds).
Run: TypeAlias = dict[str, dict[str, float]]
#: Relevance judgements: query id -> document id -> grade.
Qrels: TypeAlias = dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class Document:
    """One document of a corpus."""

    doc_id: str
    text: str
    title: str = ""

    @property
    def full_text(self) -> str:
        """``title + " " + text``, as BEIR's BM25 "flat" baseline indexes it."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


@dataclass(frozen=True, slots=True)
class Query:
    """A query. Deliberately carries no metadata: BEIR's metadata can hold relevance labels."""

    query_id: str
    text: str


@dataclass(frozen=True, slots=True)
class Qrel:
    """One relevance judgement."""

    query_id: str
    doc_id: str
    relevance: int


@dataclass(frozen=True, slots=True)
class ScoredDoc:
    """One line of a run: a document retrieved for a query, with its score."""

    query_id: str
    doc_id: str
    score: float


@dataclass(slots=True)
class GeneratedQuery:
    """A synthetic query written by an LLM for a document (one line of the generation JSONL).

    The original toolkit's five fields come first; ``query_index`` (which of a document's queries this is),
    ``flags`` (problems found at generation) and ``filter_scores`` (scores the filter steps gave it) are
    fields every later stage relies on; anything else is kept in ``extra`` and written back unchanged.
    InPars-v1's published files name the query ``question``: it is read as ``query``.

    >>> q = GeneratedQuery.from_json({"doc_id": "d1", "query": "why?", "query_index": 2, "flags": ["empty"],
    ...                               "backend": "llamacpp"})
    >>> (q.query_index, q.flags, q.extra)
    (2, ['empty'], {'backend': 'llamacpp'})
    >>> GeneratedQuery.from_json(q.to_json()) == q
    True
    """

    doc_id: str
    query: str
    log_probs: list[float] = field(default_factory=list)
    prompt_text: str = ""
    fewshot_examples: list[Any] = field(default_factory=list)
    query_index: int = 0
    flags: list[str] = field(default_factory=list)
    filter_scores: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_log_prob(self) -> float:
        """Mean per-token log-probability (InPars v1's filtering score); -inf when there are none."""
        return sum(self.log_probs) / len(self.log_probs) if self.log_probs else -math.inf

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "doc_id": self.doc_id,
            "query": self.query,
            "log_probs": self.log_probs,
            "prompt_text": self.prompt_text,
            "fewshot_examples": self.fewshot_examples,
            "query_index": self.query_index,
            "flags": self.flags,
        }
        if self.filter_scores:
            out["filter_scores"] = self.filter_scores
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> GeneratedQuery:
        """Build from a JSON object; unknown fields are kept in ``extra``. Raises KeyError/TypeError/ValueError."""
        log_probs = obj.get("log_probs") or []
        qi = obj.get("query_index", 0)
        if isinstance(qi, bool) or not isinstance(qi, int):
            raise TypeError(f"query_index: expected an integer, got {qi!r}")
        scores = obj.get("filter_scores") or {}
        if not isinstance(scores, dict):
            raise TypeError(f"filter_scores: expected an object, got {scores!r}")
        # InPars-v1's published files name the query 'question' (generate_queries_openai.py)
        alias = "question" if "query" not in obj and "question" in obj else "query"
        return cls(
            doc_id=str(obj["doc_id"]),
            query=str(obj[alias]),
            log_probs=[float(x) for x in log_probs],
            prompt_text=str(obj.get("prompt_text") or ""),
            fewshot_examples=list(obj.get("fewshot_examples") or []),
            query_index=qi,
            flags=[str(f) for f in obj.get("flags") or []],
            filter_scores={str(k): float(v) for k, v in scores.items()},
            extra={k: v for k, v in obj.items() if k not in _GENERATED_FIELDS and k != alias},
        )


_GENERATED_FIELDS = frozenset(
    {"doc_id", "query", "log_probs", "prompt_text", "fewshot_examples", "query_index", "flags", "filter_scores"}
)


@dataclass(slots=True)
class TrainingExample:
    """A training group: a query, its positive document and its negatives (ids and texts)."""

    query: str
    pos_doc_id: str
    positive: str
    neg_doc_ids: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)
    query_id: str = ""
    #: teacher scores (pseudo-labels) of the positive then of each negative, for distillation; None: none
    scores: list[float] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "query_id": self.query_id,
            "query": self.query,
            "pos_doc_id": self.pos_doc_id,
            "positive": self.positive,
            "neg_doc_ids": self.neg_doc_ids,
            "negatives": self.negatives,
        }
        if self.scores is not None:
            out["scores"] = self.scores
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TrainingExample:
        return cls(
            query=str(obj["query"]),
            pos_doc_id=str(obj["pos_doc_id"]),
            positive=str(obj["positive"]),
            neg_doc_ids=[str(x) for x in obj.get("neg_doc_ids") or []],
            negatives=[str(x) for x in obj.get("negatives") or []],
            query_id=str(obj.get("query_id") or ""),
            scores=[float(x) for x in obj["scores"]] if obj.get("scores") is not None else None,
        )
