"""What every filter is built from: declared options, candidates, the shared context, the base classes.

A filter is a :class:`Filter` subclass registered in :data:`FILTERS`. It declares the generic step fields it
uses (``FIELDS``: some of ``top_k``, ``top_fraction``, ``model``, ``depth``, with its defaults) and its own
options (``OPTIONS``); both are :class:`Option` values, from which the step is validated and
``inpars filter --help`` is written.
"""

from __future__ import annotations

import json
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from inpars.catalog import FILTERS as _FILTERS
from inpars.config import MAX_TOKENS, FilterStep
from inpars.corpus_view import same_text_groups
from inpars.datasets import Dataset
from inpars.errors import ConfigError, InputError
from inpars.executors import EXECUTORS
from inpars.records import Document, GeneratedQuery
from inpars.registry import Registry
from inpars.safety import check_device, check_range, check_threads

log = logging.getLogger(__name__)

STEP_FIELDS = ("top_k", "top_fraction", "model", "depth")
"""The generic fields of a :class:`~inpars.config.FilterStep`; any other key of a step is an option."""

_TYPE_NAMES: dict[type, str] = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


@dataclass(frozen=True, slots=True)
class Option:
    """A setting a filter declares: its name, its type (int, float, str or bool), default and description.

    ``default=None`` means "unset" (the filter, or the reranker it loads, decides). A value of None (null)
    given for an option also means unset.

    >>> Option("batch_size", int, None, "pairs per batch").check(16, "reranker")
    16
    >>> Option("min_score", float, None, "minimum").check(-2, "logprob")
    -2.0
    >>> Option("batch_size", int, None, "pairs per batch").check("many", "reranker")
    Traceback (most recent call last):
    ...
    inpars.errors.ConfigError: filter step 'reranker': option 'batch_size' must be an integer, got 'many'
    """

    name: str
    type: type
    default: Any
    description: str
    valid: Callable[[Any, str], object] | None = None
    """Checks a value of the right type (raises ConfigError naming the flag it is given)."""

    def check(self, value: Any, step: str) -> Any:
        """``value`` converted to the option's type (an int for a float option becomes a float)."""
        if value is None:
            return None
        ok = isinstance(value, self.type) and (self.type is bool or not isinstance(value, bool))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            ok = True
        if ok and self.type is float and not math.isfinite(value):
            ok = False
        if not ok:
            raise ConfigError(
                f"filter step '{step}': option '{self.name}' must be {_TYPE_NAMES.get(self.type, self.type.__name__)}, "
                f"got {value!r}"
            )
        if self.valid is not None:
            self.valid(value, f"filter step '{step}': option {self.name}")
        return value

    def usage(self) -> str:
        """``name=TYPE``, as in a ``--step``: ``batch_size=INT``."""
        return f"{self.name}={self.type.__name__.upper()}"

    def help(self) -> str:
        """The description, with the default when there is one."""
        return self.description + ("" if self.default is None else f" (default {self.default})")


TOP_K = Option("top_k", int, None, "keep at most this many, the best scored")
TOP_FRACTION = Option("top_fraction", float, None, "keep at most this share of the queries (rounded up)")
MIN_SCORE = Option("min_score", float, None, "also drop every query scoring below this")

SCORER_OPTIONS: tuple[Option, ...] = (
    Option("model_type", str, None, "model family, as for 'inpars rerank --model-type' (default: from the checkpoint)"),
    Option("batch_size", int, None, "pairs per scoring batch (default: the reranker's)",
           lambda v, flag: check_range(v, flag, 1)),
    Option("max_length", int, None, "tokens per (query, document) pair (default: the reranker's)",
           lambda v, flag: check_range(v, flag, 16, MAX_TOKENS)),
    Option("engine", str, None, "scoring engine, as for 'inpars rerank --engine' (default: the reranker's)"),
    Option("threads", int, None, "CPU threads (default: the reranker's)",
           lambda v, flag: check_threads(check_range(v, flag, 1), flag)),
    Option("device", str, None, "cpu, cuda, cuda:1, ... (default: the reranker's)",
           lambda v, flag: check_device(v, flag, present=False)),
)
"""Options of the steps that load a reranker, passed to :func:`inpars.rerank.load_scorer` when given."""


def scorer_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    """The options of a step meant for :func:`inpars.rerank.load_scorer` (only those given)."""
    return {o.name: options[o.name] for o in SCORER_OPTIONS if options.get(o.name) is not None}


def executor_kwargs(step: FilterStep) -> dict[str, Any]:
    """A step's ``executor`` and ``executor_options`` for :func:`inpars.rerank.load_scorer`; none for an
    executor that runs in this process (:data:`~inpars.executors.EXECUTORS`), so that its steps share the
    scorer they load (:meth:`FilterContext.scorer`)."""
    if EXECUTORS.get(step.executor).in_process:
        return {}
    return {"executor": step.executor, "executor_options": dict(step.executor_options)}


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


def resolve_bm25_params(index_dir: str | Path | None, bm25: dict[str, Any] | None) -> dict[str, Any]:
    """BM25 parameters: ``bm25`` when given, else those of the index already in ``index_dir``, else the
    defaults of :class:`~inpars.config.RetrieveConfig` (the one place they are written).

    Reading them from the index's manifest keeps a later stage from rebuilding (and overwriting) the
    index that the retrieve stage built with other parameters.
    """
    from inpars.config import RetrieveConfig

    defaults = RetrieveConfig().index_params()
    if bm25:
        return {**defaults, **bm25}
    if index_dir is not None:
        from inpars.retrieval import read_manifest

        manifest = read_manifest(index_dir)
        if manifest and isinstance(manifest.get("params"), dict):
            p = manifest["params"]
            return {k: p.get(k, v) for k, v in defaults.items()}
    return defaults


# ----------------------------------------------------------------------------------------------- context


@dataclass(slots=True)
class Candidate:
    """A generated query going through the filters: its input position, the record, its scores."""

    index: int
    record: GeneratedQuery
    scores: dict[str, float | None] = field(default_factory=dict)


@dataclass(slots=True)
class Removal:
    """A candidate a check or a filter removed, the reason (a short word) and details for the report."""

    candidate: Candidate
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


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

    def docs(self) -> Mapping[str, Document]:
        return self.dataset.docs()

    def doc_text(self, doc_id: str) -> str:
        return self.docs()[doc_id].full_text

    def same_text(self, doc_id: str) -> frozenset[str]:
        """The ids of the documents whose text equals ``doc_id``'s (itself included)."""
        if self._groups is None:
            self._groups = same_text_groups(self.docs())
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
        key = (model, model_type, json.dumps(kwargs, sort_keys=True, default=str))
        if key not in self._scorers:
            from inpars.rerank import load_scorer

            log.info("loading reranker %s", model)
            self._scorers[key] = load_scorer(model, model_type, **kwargs)
        return self._scorers[key]


# ------------------------------------------------------------------------------------------------ filters


class Filter(ABC):
    """One filtering step. Subclasses set ``name``, ``summary``, ``FIELDS`` and ``OPTIONS`` and implement
    :meth:`apply`.

    ``FIELDS`` are the generic step fields the filter uses (with its defaults), ``OPTIONS`` its own options;
    the constructor rejects any other field or option and checks the options' types (:meth:`check_step`).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    """One line for ``inpars filter --help``."""
    FIELDS: ClassVar[tuple[Option, ...]] = (TOP_K, TOP_FRACTION)
    OPTIONS: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, step: FilterStep) -> None:
        self.step = self.check_step(step)

    @classmethod
    def check_step(cls, step: FilterStep) -> FilterStep:
        """``step`` with its options checked and converted; raises ConfigError naming the step and option.

        An option set to None is dropped (unset).
        """
        known = {o.name: o for o in cls.OPTIONS}
        unknown = sorted(set(step.options) - set(known))
        if unknown:
            valid = ", ".join(known) or "none"
            s = "s" if len(unknown) > 1 else ""
            raise ConfigError(
                f"filter step '{cls.name}': unknown option{s} {', '.join(repr(u) for u in unknown)}; "
                f"valid options: {valid}"
            )
        options = {}
        for key, value in step.options.items():
            checked = known[key].check(value, cls.name)
            if checked is not None:
                options[key] = checked
        if not EXECUTORS.get(step.executor).in_process and SCORER_OPTIONS[0] not in cls.OPTIONS:
            raise ConfigError(f"filter '{cls.name}' loads no reranker: executor '{step.executor}' does not apply")
        given = {k for k in STEP_FIELDS if getattr(step, k) is not None}
        unused = [k for k in STEP_FIELDS if k in given - {f.name for f in cls.FIELDS}]
        if unused:
            raise ConfigError(
                f"filter '{cls.name}' does not use {', '.join(unused)} "
                f"(its fields: {', '.join(f.name for f in cls.FIELDS) or 'none'})"
            )
        return step.model_copy(update={"options": options})

    def field(self, name: str) -> Any:
        """The step's value of a generic field, or the filter's declared default."""
        value = getattr(self.step, name)
        if value is not None:
            return value
        return next((f.default for f in self.FIELDS if f.name == name), None)

    def score_names(self) -> tuple[str, ...]:
        """The keys this filter writes into each candidate's ``scores`` (none by default)."""
        return ()

    def check_after(self, earlier_scores: Sequence[str]) -> None:
        """Check the step against the score names the steps before it write (nothing by default); raises
        ConfigError. Called by :func:`inpars.filter.make_filters` before any query is read."""
        return None

    def params(self) -> dict[str, Any]:
        """The step's parameters with the filter's defaults, as recorded in the report."""
        # where the scoring ran (executor) never changes the result: not a parameter of the step
        out = self.step.model_dump(exclude_none=True, exclude_defaults=False, exclude={"executor", "executor_options"})
        for f in self.FIELDS:
            if f.default is not None:
                out.setdefault(f.name, f.default)
        return out

    @abstractmethod
    def apply(self, cands: list[Candidate], ctx: FilterContext) -> tuple[list[Candidate], list[Removal]]:
        """Return (kept, removed); ``kept`` keeps the input order."""


FILTERS: Registry[type[Filter]] = _FILTERS
"""The filters by name (:data:`inpars.catalog.FILTERS`, where the configuration checks a step's name): each
filter module registers its class; the catalog names the module of every built-in filter, imported on
first use, and :mod:`inpars.filter` imports them all."""


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
    """Score every candidate, then keep the best ``top_k``/``top_fraction`` (and those >= ``min_score``).

    Ties are broken by input order; a NaN score counts as -inf. The kept candidates stay in input order.
    """

    OPTIONS: ClassVar[tuple[Option, ...]] = (MIN_SCORE,)

    def __init__(self, step: FilterStep) -> None:
        super().__init__(step)
        if self.step.top_k is None and self.step.top_fraction is None and "min_score" not in self.step.options:
            raise ConfigError(f"filter '{self.name}' needs top_k, top_fraction or the option min_score")

    @abstractmethod
    def score(self, cands: list[Candidate], ctx: FilterContext) -> list[float]:
        """One score per candidate; higher is better."""

    def score_names(self) -> tuple[str, ...]:
        return (self.name,)

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
