"""Filtering synthetic queries: always-on sanity checks, then a sequence of configurable filters.

An LLM writes many poor queries; keeping the best ones matters more than writing more (InPars v1 keeps the
top 10k of 100k by the mean token log-probability, InPars v2 by a monoT5 score, Promptagator keeps a query
only when a retriever finds its source document again). Here a filter is one class in the :data:`FILTERS`
registry (one module each: :mod:`~inpars.filter.logprob`, :mod:`~inpars.filter.reranker`,
:mod:`~inpars.filter.consistency`, :mod:`~inpars.filter.per_doc`, :mod:`~inpars.filter.random_subset`), and
filters run one after the other, each on what the previous one kept::

    >>> from inpars.config import FilterStep
    >>> report = filter_queries(                                            # doctest: +SKIP
    ...     "queries.jsonl", "filtered.jsonl", dataset="scifact",
    ...     steps=[FilterStep(name="logprob", top_fraction=0.5),
    ...            FilterStep(name="consistency", top_k=3)])
    >>> report.report_path                                                  # doctest: +SKIP
    'filtered.report.json'

The always-on checks (:mod:`inpars.filter.checks`) run first: ``empty``, ``flagged:<flags>``,
``too_short``/``too_long``, ``copies_document``, ``duplicate``.

Each filter declares the generic step fields it uses (``top_k``, ``top_fraction``, ``model``, ``depth``)
and its own options (:class:`~inpars.filter.base.Option`); a step naming anything else, or giving a value
of the wrong type, is a :class:`~inpars.errors.ConfigError` naming the step and the option
(:func:`make_filter`, :func:`parse_step`); :func:`filters_help` lists them all. Score filters
(``logprob``, ``reranker``, ``random``) keep ``min(top_k, ceil(top_fraction * n))`` of the ``n`` queries
they receive (either may be omitted), ordered by score with ties broken by input order; the option
``min_score`` also drops every query scoring below it.

Output: the kept records in input order, in the same JSONL format (original field names), each with a
``filter_scores`` field holding the finite scores the steps gave it (a query without log-probabilities has
no ``logprob`` score); and a report beside the output (``filtered.jsonl`` -> ``filtered.report.json``) with
counts per step and reason and a few examples of removed queries per reason.
"""

from __future__ import annotations

import logging
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inpars.catalog import build_filters
from inpars.config import FilterConfig, FilterStep, section_params
from inpars.datasets import Dataset, as_dataset
from inpars.errors import ConfigError
from inpars.filter import consistency, logprob, per_doc, random_subset, reranker  # noqa: F401  (register the filters)
from inpars.filter.base import (
    FILTERS,
    SCORER_OPTIONS,
    STEP_FIELDS,
    Candidate,
    Filter,
    FilterContext,
    Option,
    Removal,
    ScoreFilter,
    keep_count,
    load_records,
    read_queries,
    resolve_bm25_params,
)
from inpars.filter.checks import always_on_checks
from inpars.filter.consistency import source_rank
from inpars.filter.report import FilterReport, StepReport, report_path_for, step_report
from inpars.io import write_json, write_jsonl
from inpars.records import GeneratedQuery

__all__ = [
    "FILTERS",
    "SCORER_OPTIONS",
    "Candidate",
    "Filter",
    "FilterContext",
    "FilterReport",
    "Option",
    "Removal",
    "ScoreFilter",
    "StepReport",
    "always_on_checks",
    "as_dataset",
    "filter_queries",
    "filters_help",
    "keep_count",
    "load_records",
    "make_filter",
    "make_filters",
    "parse_step",
    "read_queries",
    "report_path_for",
    "resolve_bm25_params",
    "source_rank",
]

log = logging.getLogger(__name__)


def make_filter(step: FilterStep | dict[str, Any]) -> Filter:
    """Instantiate the filter a step names (a FilterStep or its dict form), checking its fields and options.

    >>> make_filter({"name": "logprob", "top_k": 10, "options": {"min_score": -3}}).step.options
    {'min_score': -3.0}
    >>> make_filter({"name": "logprob", "top_k": 10, "options": {"min_scor": -3}})
    Traceback (most recent call last):
    ...
    inpars.errors.ConfigError: filter step 'logprob': unknown option 'min_scor'; valid options: min_score
    """
    step = _as_step(step)
    return FILTERS.get(step.name)(step)


def _as_step(step: FilterStep | dict[str, Any]) -> FilterStep:
    """A step's FilterStep (its dict form validated); ConfigError naming the step otherwise."""
    if not isinstance(step, FilterStep):
        from pydantic import ValidationError

        try:
            step = FilterStep.model_validate(step)
        except ValidationError as exc:
            where = step.get("name", "?") if isinstance(step, dict) else "?"
            msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"filter step '{where}': {msgs}") from None
    return step


def make_filters(steps: Sequence[FilterStep | dict[str, Any]]) -> list[Filter]:
    """The filters of a sequence of steps (:func:`make_filter` each), each also checked against the score
    names the steps before it write (a ``per_doc`` step ordering by a score no earlier step gives).

    >>> [f.name for f in make_filters([{"name": "consistency"}, {"name": "per_doc", "options": {"by": "consistency_rank"}}])]
    ['consistency', 'per_doc']
    >>> make_filters([{"name": "logprob", "top_k": 9}, {"name": "per_doc", "options": {"by": "consistency_rank"}}])
    Traceback (most recent call last):
    ...
    inpars.errors.ConfigError: filter step 'per_doc': option by='consistency_rank' names no score of an earlier step (their scores: logprob)
    """
    # the check the configuration runs when it loads (inpars.config), each step validated when it is reached
    return build_filters(_as_step(step) for step in steps)


def parse_step(spec: str) -> FilterStep:
    """Parse and check the command-line form ``NAME[:key=value[,key=value...]]`` of a step.

    Keys ``top_k``, ``top_fraction``, ``model`` and ``depth`` are the step's fields; other keys go into
    ``options``. Values are read as YAML scalars (numbers, true/false, null, else strings), except that a
    string option or field keeps the text as written. The step is checked as :func:`make_filter` does.

    >>> s = parse_step("logprob:top_fraction=0.5")
    >>> (s.name, s.top_k, s.top_fraction, s.model, s.depth, s.options)
    ('logprob', None, 0.5, None, None, {})
    >>> s = parse_step("consistency:top_k=1,depth=50,model=my/ce,batch_size=64")
    >>> (s.top_k, s.depth, s.model, s.options)
    (1, 50, 'my/ce', {'batch_size': 64})
    """
    import yaml
    from pydantic import ValidationError

    name, _, rest = spec.strip().partition(":")
    if not name:
        raise ConfigError(f"bad filter step '{spec}': expected NAME[:key=value,...]")
    items: list[tuple[str, str]] = []
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise ConfigError(f"bad filter step '{spec}': '{item}' is not key=value")
        items.append((key, raw.strip()))
    cls = FILTERS.get(name)  # raises, listing the known filters
    declared = {o.name: o for o in (*cls.FIELDS, *cls.OPTIONS)}
    fields: dict[str, Any] = {"name": name}
    options: dict[str, Any] = {}
    for key, raw in items:
        try:
            value = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError:
            value = raw
        opt = declared.get(key)
        if opt is not None and opt.type is str and value is not None and not isinstance(value, str):
            value = raw
        (fields if key in STEP_FIELDS else options)[key] = value
    try:
        step = FilterStep(**fields, options=options)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"bad filter step '{spec}': {msgs}") from None
    return cls(step).step


def filters_help(width: int = 100) -> str:
    """The filters, their fields and their options, from the registry (the ``inpars filter --help`` text)."""
    lines: list[str] = []

    def option_lines(opts: Sequence[Option], col: int) -> None:
        for o in opts:
            head = f"      {o.usage():<{col}}"
            lines.extend(
                textwrap.wrap(o.help(), width, initial_indent=head, subsequent_indent=" " * len(head))
            )

    for name in FILTERS.names():
        cls = FILTERS.get(name)
        lines.extend(textwrap.wrap(f"{name}: {cls.summary}", width, initial_indent="  ", subsequent_indent="    "))
        col = max((len(o.usage()) for o in (*cls.FIELDS, *cls.OPTIONS)), default=0) + 2
        if cls.FIELDS:
            lines.append("    fields:")
            option_lines(cls.FIELDS, col)
        if cls.OPTIONS:
            lines.append("    options:")
            option_lines(cls.OPTIONS, col)
    return "\n".join(lines)


def filter_queries(
    queries: str | Path | Sequence[GeneratedQuery],
    out: str | Path,
    params: FilterConfig | None = None,
    *,
    dataset: Dataset | str | Path,
    seed: int = 1,
    index_dir: str | Path | None = None,
    bm25: dict[str, Any] | None = None,
    **fields: Any,
) -> FilterReport:
    """Filter generated queries and write the kept ones to ``out`` (JSONL, atomically) with a report.

    ``queries`` is a generation JSONL file or a list of records. ``params`` is a
    :class:`~inpars.config.FilterConfig`: ``steps``, the filters to run in order after the always-on checks
    (every step is checked before anything is read), and the always-on checks' ``min_words``, ``max_words``
    and ``copy_threshold``. Or give its fields as keywords instead, validated by that model with its
    defaults (:func:`~inpars.config.section_params`), except that ``steps`` left out (or None) runs no step
    here: the default step list is the pipeline's. ``index_dir`` is the BM25 index folder (see
    :func:`inpars.retrieval.get_index`) and ``bm25`` its parameters (default: those of the index already in
    ``index_dir``, else the retrieval defaults). Returns the :class:`FilterReport`, also written to
    :func:`report_path_for` ``(out)``.

    >>> rep = filter_queries("queries.jsonl", "filtered.jsonl", dataset="scifact",   # doctest: +SKIP
    ...                      steps=[{"name": "logprob", "top_k": 1000}])
    >>> print(rep.summary())                                                        # doctest: +SKIP
    kept 1000 of ... queries -> filtered.jsonl
      always_on: ... (removed: duplicate ..., flagged:repeats_prompt ..., ...)
      logprob: ... -> 1000 (removed: low_score ...)
    report: filtered.report.json
    """
    t0 = time.perf_counter()
    if params is None and fields.get("steps") is None:
        fields = {**fields, "steps": []}
    params = section_params(FilterConfig, params, fields, "filter_queries")
    if params.max_words < params.min_words:
        raise ConfigError(f"max_words ({params.max_words}) is smaller than min_words ({params.min_words})")
    filters = make_filters(params.steps)
    ds = as_dataset(dataset)
    source = str(queries) if isinstance(queries, (str, Path)) else "<records>"
    records = load_records(queries, ds)
    docs = ds.docs()
    ctx = FilterContext(ds, seed=seed, index_dir=index_dir, bm25=bm25)
    cands = [Candidate(i, rec) for i, rec in enumerate(records)]
    reports: list[StepReport] = []

    t = time.perf_counter()
    n_in = len(cands)
    checks: dict[str, Any] = {"min_words": params.min_words, "max_words": params.max_words,
                              "copy_threshold": params.copy_threshold}
    cands, removed = always_on_checks(cands, docs, **checks)
    reports.append(step_report("always_on", checks, n_in, removed, time.perf_counter() - t))
    log.info("always-on checks: %d -> %d queries", n_in, len(cands))

    for flt in filters:
        t = time.perf_counter()
        n_in = len(cands)
        cands, removed = flt.apply(cands, ctx)
        reports.append(step_report(flt.name, flt.params(), n_in, removed, time.perf_counter() - t))
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
    """The record as read, with the finite scores of this run merged into ``filter_scores``.

    A non-finite score (None: e.g. ``logprob`` of a record without log-probabilities) is left out, since
    ``filter_scores`` holds numbers only and the next stage reads the file back.
    """
    obj = c.record.to_json()
    scores = {k: v for k, v in c.scores.items() if v is not None}
    if scores:
        obj["filter_scores"] = {**c.record.filter_scores, **scores}
    return obj
