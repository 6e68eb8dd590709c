"""The generation stage: an LLM writes synthetic queries for a seeded sample of documents.

::

    >>> from inpars.generate import generate_queries, read_generated
    >>> summary = generate_queries("scifact", "queries.jsonl", n_docs=200, seed=1)   # doctest: +SKIP
    >>> summary.n_queries, summary.n_generated                                         # doctest: +SKIP
    (200, 200)
    >>> read_generated("queries.jsonl")[0].query                                      # doctest: +SKIP
    'Does vitamin D supplementation reduce the incidence of respiratory infections?'

Output: one JSON line per (document, query index), with the field names of the original InPars toolkit's
``generate.py`` output (``doc_id``, ``text`` (the document), ``query``, ``log_probs``, ``prompt_text``,
``fewshot_examples``) plus ``query_index``, ``backend``, ``model``, ``finish_reason``, ``n_tokens``,
``prompt_tokens``, ``cached_tokens``, ``seconds`` (generation time of the batch divided by its queries) and
``flags``. Files written by the original toolkit load unchanged with :func:`read_generated`.

Flags (:mod:`inpars.generation.flags`: ``empty``, ``repeats_prompt``, ``copies_document``, ``truncated``):
a generation is flagged, never silently dropped or kept; the filtering stage decides.

Seeds: with ``temperature > 0`` each query is sampled on its own with the seed
:func:`~inpars.fingerprint.item_seed` ``(seed, doc_id, query_index)``, so neither the batch size nor an
interruption changes what is sampled (the backends take one seed per prompt). Greedy decoding computes a
document's generation once and repeats it for its ``queries_per_doc`` indices, unless the prompt varies with
the query index (``inpars-forms``: :attr:`~inpars.prompts.Prompt.varies_with_index`), which is sent once per
index.

Resumable: records are appended after each batch (:class:`~inpars.io.JsonlAppender`); a second run with the
same arguments skips the (doc_id, query_index) pairs already in the file. The arguments are recorded in the
sidecar ``<out>.meta.json`` (:mod:`inpars.generation.meta`); a file made with different ones is refused
unless ``overwrite=True`` (runtime-only settings such as ``batch_size`` and ``backend_options.n_threads``
may differ).
Documents (``doc_selection: random``, the default) are the first ``n_docs`` of a seeded permutation of the
sorted ids, so running again with a larger ``n_docs`` extends a file; ``doc_selection: clusters`` (DUQGen)
draws them from k-means clusters of the collection instead (:mod:`inpars.generation.selection`; its choice
is kept in ``<out>.docs.json`` for a resume).
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from inpars.config import GenerateConfig, section_params
from inpars.datasets import Dataset, as_dataset
from inpars.errors import ConfigError, InputError
from inpars.executors import EXECUTORS
from inpars.fingerprint import RUNTIME_OPTIONS, fingerprint
from inpars.generation.base import Backend, SamplingParams, get_backend
from inpars.generation.batches import DEFAULT_BATCH_SIZE, PROMPT_MARGIN, run_batches
from inpars.generation.flags import (
    FLAG_COPIES_DOCUMENT,
    FLAG_EMPTY,
    FLAG_REPEATS_PROMPT,
    FLAG_TRUNCATED,
    FLAGS,
    flag_generation,
)
from inpars.generation.meta import META_VERSION, check_meta, meta_path, params_record
from inpars.generation.selection import check_selection, eligible_ids, select_documents, selection_path
from inpars.io import exclusive, read_jsonl, repair_jsonl
from inpars.prompts import PROMPTS
from inpars.records import Document, GeneratedQuery

__all__ = [
    "DEFAULT_BATCH_SIZE", "FLAGS", "FLAG_COPIES_DOCUMENT", "FLAG_EMPTY", "FLAG_REPEATS_PROMPT", "FLAG_TRUNCATED",
    "META_VERSION", "PROMPT_MARGIN", "RUNTIME_OPTIONS", "GenerateSummary", "flag_generation", "generate_queries",
    "meta_path", "read_generated", "sample_documents",
]

log = logging.getLogger(__name__)

@dataclass
class GenerateSummary:
    """What a :func:`generate_queries` call did.

    ``n_queries`` counts the records in the output file after the run, ``n_generated`` those written by
    this run and ``n_skipped_existing`` those found from an earlier run. ``seconds`` is this run's
    generation time; ``queries_per_second`` and ``tokens_per_second`` are this run's rates.
    """

    out: str
    n_docs: int
    n_queries: int
    n_generated: int
    n_skipped_existing: int
    n_flagged: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    queries_per_second: float = 0.0
    tokens_per_second: float = 0.0
    backend: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def sample_documents(
    dataset: Dataset, n_docs: int, seed: int = 1, min_doc_chars: int = 0
) -> list[Document]:
    """The documents to generate for: a seeded sample, independent of the backend.

    Documents whose ``full_text`` is shorter than ``min_doc_chars`` are left out; the remaining ids are
    sorted and permuted with ``random.Random(seed).sample``; the first ``n_docs`` (capped at the corpus
    size) are returned, so a larger ``n_docs`` extends a smaller one. (``doc_selection: random``; the
    other methods: :mod:`inpars.generation.selection`.)
    """
    return select_documents(dataset, n_docs, seed=seed, min_doc_chars=min_doc_chars)


def _existing(out: Path, ds: Dataset | None = None) -> tuple[set[tuple[str, int]], Counter[str]]:
    """(doc_id, query_index) pairs already in ``out`` (after cutting a torn last line), and their flags.

    With ``ds``, a record whose recorded document ``text`` differs from the corpus's text under the same
    id now is refused (ConfigError): its query was written for another text."""
    done: set[tuple[str, int]] = set()
    flags: Counter[str] = Counter()
    if not out.is_file():
        return done, flags
    repair_jsonl(out)
    docs = ds.docs() if ds is not None else None
    changed: dict[str, int] = {}
    for line, obj in read_jsonl(out, skip_truncated_tail=True):
        try:
            key = (str(obj["doc_id"]), int(obj.get("query_index", 0)))
        except (KeyError, TypeError, ValueError):
            raise InputError("expected 'doc_id' and an integer 'query_index'", out, line) from None
        if key in done:
            log.warning("%s:%d: duplicate record for %s; keeping both", out, line, key)
        done.add(key)
        flags.update(obj.get("flags") or [])
        doc = docs.get(key[0]) if docs is not None else None
        if doc is not None and isinstance(obj.get("text"), str) and obj["text"] != doc.full_text:
            changed.setdefault(key[0], line)
    if changed:
        doc_id, line = next(iter(changed.items()))
        raise ConfigError(
            f"{out}:{line}: the text of {len(changed)} document(s) changed in the corpus since their queries were "
            f"generated (first: '{doc_id}'); use another output file or --overwrite to start again")
    return done, flags


F = TypeVar("F", bound=Callable[..., Any])


def _one_writer(fn: F) -> F:
    """``fn(dataset, out, ...)`` holding the lock of ``out`` (:func:`inpars.io.exclusive`): two processes
    generating into one file would write every record twice."""

    @functools.wraps(fn)
    def locked(dataset: Any, out: str | Path, *args: Any, **kwargs: Any) -> Any:
        with exclusive(Path(out), f"the generation output {out}"):
            return fn(dataset, out, *args, **kwargs)

    return cast(F, locked)


@_one_writer
def generate_queries(
    dataset: Dataset | str | Path,
    out: str | Path,
    params: GenerateConfig | None = None,
    *,
    seed: int = 1,
    train_split: str | None = None,
    backend_instance: Backend | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    **fields: Any,
) -> GenerateSummary:
    """Generate ``queries_per_doc`` queries for each of ``n_docs`` sampled documents into JSONL ``out``.

    Args:
        dataset: a :class:`~inpars.datasets.Dataset`, or a name/path for :func:`~inpars.datasets.load_dataset`.
        out: the JSONL file; appended to and resumed (see the module docstring).
        params: the settings, a :class:`~inpars.config.GenerateConfig`, whose fields document them (prompt
            and template, backend, model and backend_options, n_docs, queries_per_doc, n_examples,
            max_doc_tokens, decoding (``temperature == 0`` is greedy), chat, doc_selection, batch_size (records
            are written after each batch), executor (``ray``: the same records in the same order, generated by
            actors on a Ray cluster; :mod:`inpars.generation.ray_engine`)). Or give its fields as keywords
            instead (``n_docs=200``), validated by that model with its defaults
            (:func:`~inpars.config.section_params`: an unknown keyword is a TypeError).
        seed: sampling of documents and examples, and decoding seed.
        train_split: split the prompt may take few-shot examples from (never the evaluation split).
        backend_instance: an open backend (not closed here), used instead of ``backend``, ``model`` and
            ``backend_options``; its name and model are recorded.
        overwrite: discard an existing ``out`` instead of resuming it.
        progress: show a tqdm bar (default: only on a terminal).

    Returns:
        a :class:`GenerateSummary`.
    """
    t_start = time.perf_counter()
    params = section_params(GenerateConfig, params, fields, "generate_queries")
    out = Path(out)
    ds = as_dataset(dataset)
    params, docs, one_each = _prepare(ds, out, params, seed=seed, train_split=train_split,
                                      backend_instance=backend_instance, overwrite=overwrite)
    done, flag_counts = _existing(out, ds)
    todo = _work_units(docs, done, params.queries_per_doc, one_each=one_each)
    n_todo = sum(len(m) for _, m in todo)
    total = len(docs) * params.queries_per_doc
    log.info(
        "generating %d queries for %d documents into %s (%d already there)",
        n_todo, len({d.doc_id for d, _ in todo}), out, total - n_todo,
    )
    backend, model, backend_options = params.backend, params.model, dict(params.backend_options)
    executor, executor_options = params.executor, params.executor_options
    own_backend = backend_instance is None
    be: Backend | None = backend_instance
    n_generated = n_tokens = 0
    gen_seconds = 0.0
    try:
        if todo:
            where = EXECUTORS.get(executor)
            if be is None and where.in_process:
                be = get_backend(backend, model, **backend_options)
            from inpars.generation.ray_engine import Runner, make_runner

            # an executor out of this process: no backend here, they live in its workers
            runner: Runner = run_batches if be is not None else make_runner(where, executor_options, backend, model, backend_options)
            n_generated, n_tokens, gen_seconds = runner(
                be, ds, todo, out, flag_counts, **_runner_options(params, seed, train_split, one_each, total, progress))
        described = be.describe() if be is not None else {"backend": backend, "model": model}
    finally:
        if own_backend and be is not None:
            be.close()
    return _summary(out, len(docs), len(done), (n_generated, n_tokens, gen_seconds), flag_counts, described, t_start)


def _prepare(
    ds: Dataset, out: Path, params: GenerateConfig, *, seed: int, train_split: str | None,
    backend_instance: Backend | None, overwrite: bool,
) -> tuple[GenerateConfig, list[Document], bool]:
    """The settings as the sidecar records them (the selection options completed; an open backend's name and
    model), checked against an existing ``out`` (:func:`~inpars.generation.meta.check_meta`); the documents
    to generate for; and whether each (document, query index) gets a prompt of its own (sampling, or a
    prompt that varies with the query index)."""
    update: dict[str, Any] = {"selection_options": check_selection(params.doc_selection, params.selection_options)}
    if backend_instance is not None:
        update |= {"backend": backend_instance.name, "model": backend_instance.model}
    params = params.model_copy(update=update)
    varies = bool(getattr(PROMPTS.get(params.prompt), "varies_with_index", False))
    if params.queries_per_doc > 1 and params.temperature == 0 and not varies:
        log.warning("queries_per_doc=%d with greedy decoding gives identical queries; set a temperature",
                    params.queries_per_doc)
    eligible = eligible_ids(ds, params.min_doc_chars)
    record = params_record(params, dataset=str(getattr(ds, "name", ds)), population_hash=eligible.fingerprint(),
                           seed=seed, train_split=train_split)
    if params.doc_selection != "random":  # only a random sample extends to a larger n_docs
        record["n_docs"] = params.n_docs
    check_meta(out, record, min(params.n_docs, len(eligible)), overwrite)
    if overwrite:
        selection_path(out).unlink(missing_ok=True)
    docs = select_documents(ds, params.n_docs, seed=seed, method=params.doc_selection,
                            options=params.selection_options, out=out, params_hash=fingerprint(record),
                            eligible=eligible)
    return params, docs, params.temperature > 0 or varies


def _runner_options(
    params: GenerateConfig, seed: int, train_split: str | None, one_each: bool, total: int, progress: bool | None
) -> dict[str, Any]:
    """The keyword arguments of :func:`~inpars.generation.batches.run_batches` (or of the Ray runner)."""
    return {
        "prompt": params.prompt,
        "prompt_options": {
            "max_doc_tokens": params.max_doc_tokens,
            "n_examples": params.n_examples,
            "seed": seed,
            "train_split": train_split,
            "template": params.template,
        },
        "params": SamplingParams(
            max_new_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            n=1 if one_each else params.queries_per_doc,
        ),
        "seed": seed,
        "model": params.model,
        "chat": params.chat,
        "batch_size": params.batch_size,
        "total": total,
        "progress": progress,
    }


def _summary(
    out: Path, n_docs: int, n_existing: int, generated: tuple[int, int, float], flag_counts: Counter[str],
    described: dict[str, Any], t_start: float,
) -> GenerateSummary:
    """The :class:`GenerateSummary` of a run (``generated``: this run's queries, tokens and seconds), logged."""
    n_generated, n_tokens, seconds = generated
    summary = GenerateSummary(
        out=str(out),
        n_docs=n_docs,
        n_queries=n_existing + n_generated,
        n_generated=n_generated,
        n_skipped_existing=n_existing,
        n_flagged=dict(sorted(flag_counts.items())),
        seconds=round(seconds, 3),
        queries_per_second=round(n_generated / seconds, 4) if seconds > 0 else 0.0,
        tokens_per_second=round(n_tokens / seconds, 2) if seconds > 0 else 0.0,
        backend=described,
    )
    log.info(
        "generation done in %.1f s (%.1f s total): %d new, %d existing, flagged %s",
        seconds, time.perf_counter() - t_start, n_generated, n_existing, summary.n_flagged,
    )
    return summary


def _work_units(
    docs: list[Document], done: set[tuple[str, int]], queries_per_doc: int, *, one_each: bool
) -> list[tuple[Document, list[int]]]:
    """The prompts still to send, as (document, query indices), in file order.

    ``one_each`` (sampling, or a prompt that varies with the query index): one prompt per missing (document,
    query index), each with its own seed. Otherwise (greedy decoding of one prompt per document): one unit per
    document with missing indices (its generation is the same for every index).
    """
    units: list[tuple[Document, list[int]]] = []
    for doc in docs:
        missing = [i for i in range(queries_per_doc) if (doc.doc_id, i) not in done]
        if one_each:
            units.extend((doc, [i]) for i in missing)
        elif missing:
            units.append((doc, missing))
    return units


def _check_list(obj: dict[str, Any], key: str, path: Path, line: int, number: bool = False) -> None:
    value = obj.get(key)
    if value is None:
        return
    if not isinstance(value, list):
        raise InputError(f"expected a list, got {type(value).__name__}", path, line, key)
    if number:
        for x in value:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise InputError(f"expected numbers, got {x!r}", path, line, key)


def read_generated(path: str | Path) -> list[GeneratedQuery]:
    """Read a generation file: ours, or one written by the original InPars toolkit (unchanged).

    Fields other than the toolkit's five are kept in ``GeneratedQuery.extra`` (e.g. ``text``, ``flags``,
    ``query_index``). A last line cut off by a killed writer is skipped with a warning; any other bad line
    raises :class:`~inpars.errors.InputError` naming the file, line and field.
    """
    path = Path(path)
    records: list[GeneratedQuery] = []
    for line, obj in read_jsonl(path, skip_truncated_tail=True):
        if "query" not in obj and "question" in obj:  # InPars v1's released files name it 'question'
            obj = {**obj, "query": obj["question"]}
        for key in ("doc_id", "query"):
            if key not in obj:
                raise InputError("required field is missing", path, line, key)
        if isinstance(obj["doc_id"], bool) or not isinstance(obj["doc_id"], (str, int)):
            raise InputError(f"expected a string, got {type(obj['doc_id']).__name__}", path, line, "doc_id")
        if obj["query"] is not None and not isinstance(obj["query"], str):
            raise InputError(f"expected a string, got {type(obj['query']).__name__}", path, line, "query")
        if obj["query"] is None:
            obj = {**obj, "query": ""}
        _check_list(obj, "log_probs", path, line, number=True)
        _check_list(obj, "fewshot_examples", path, line)
        _check_list(obj, "flags", path, line)
        if "query_index" in obj and (isinstance(obj["query_index"], bool) or not isinstance(obj["query_index"], int)):
            raise InputError(f"expected an integer, got {obj['query_index']!r}", path, line, "query_index")
        if obj.get("prompt_text") is not None and not isinstance(obj["prompt_text"], str):
            raise InputError("expected a string", path, line, "prompt_text")
        scores = obj.get("filter_scores")
        if scores is not None and not (isinstance(scores, dict) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in scores.values())):
            raise InputError(f"expected an object of numbers, got {scores!r:.60}", path, line, "filter_scores")
        records.append(GeneratedQuery.from_json(obj))
    return records


if __name__ == "__main__":  # python -m inpars.generate, the original toolkit's command
    from inpars.compat import module_main

    module_main("generate")
