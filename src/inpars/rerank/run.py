"""Reranking a first-stage run: score each query's top ``depth`` documents, with a resumable score cache.

Query texts are given as a dict (``{query_id: text}``); nothing here reads relevance judgements.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from inpars.datasets import Dataset, as_dataset, ranked, read_run_dict, write_run
from inpars.errors import ConfigError, InputError
from inpars.fingerprint import dataset_fingerprint, fingerprint, model_fingerprint, versioned
from inpars.io import JsonlAppender, read_jsonl, repair_jsonl
from inpars.quiet import bar
from inpars.records import Document
from inpars.rerank.load import load_scorer
from inpars.scoring.base import RunDict, Scorer, release

log = logging.getLogger(__name__)


def top_depth(run: RunDict, depth: int) -> RunDict:
    """Each query's first ``depth`` documents in trec_eval order (score desc, doc id desc)."""
    return {qid: dict(ranked(docs)[:depth]) for qid, docs in run.items()}


def as_run(run: str | Path | RunDict) -> RunDict:
    """A run given as a TREC file or as ``{query_id: {doc_id: score}}``."""
    return read_run_dict(run) if isinstance(run, (str, Path)) else run


def score_cache_key(scorer: Scorer, ds: Dataset) -> str:
    """``versioned("rerank-scores", ...)`` of what decides the scores: the model's content, family, engine
    and max_length, and the corpus. Threads, device and batch size do not change scores: not in the key."""
    described = scorer.describe()
    return versioned(
        "rerank-scores",
        _scoring_settings(scorer),
        {"model": model_fingerprint(str(described["model"])), "corpus": dataset_fingerprint(ds)},
    )


def _scoring_settings(scorer: Scorer) -> dict[str, Any]:
    described = scorer.describe()
    return {k: described.get(k) for k in ("model_type", "engine", "max_length")}


def _text_key(text: str) -> str:
    return fingerprint(text)[:16]


def rerank_run(
    dataset: str | Path | Dataset,
    run: str | Path | RunDict,
    out: str | Path | None = None,
    *,
    queries: dict[str, str] | None = None,
    scorer: Scorer | None = None,
    depth: int = 100,
    resume: bool = True,
    cache: str | Path | None = None,
    model: str | None = None,
    model_type: str | None = None,
    batch_size: int = 32,
    max_length: int | None = None,
    engine: str = "torch",
    threads: int | None = None,
    device: str | None = None,
    executor: str = "local",
    executor_options: dict[str, Any] | None = None,
    show_progress: bool | None = None,
    tag: str = "inpars-rerank",
) -> RunDict:
    """Rerank the top ``depth`` documents of each query of a first-stage run; returns the reranked top.

    ``queries`` maps query ids to texts (default: every query of the dataset, read without judgements);
    a run query without a text is skipped with a warning; a document missing from the corpus is an
    error. Documents are ``title + " " + text``. ``scorer`` reuses a loaded scorer (then ``model`` and the
    engine options are ignored), else one is loaded with :func:`inpars.rerank.load_scorer` (``executor:
    ray`` scores on a Ray cluster, :mod:`inpars.rerank.ray_scoring`; it is stopped before returning).

    ``cache`` (default ``<out>.scores.jsonl`` when ``out`` is given) keeps per-query scores as they are
    computed, so that a killed rerank resumes where it stopped; it is keyed by :func:`score_cache_key`,
    and a query is reused only when its text and document set are the ones asked for now. With ``out``
    the reranked top is written in TREC format.
    """
    if depth < 1:
        raise ConfigError(f"depth must be >= 1, got {depth}")
    ds = as_dataset(dataset)
    run_path = str(run) if isinstance(run, (str, Path)) else "<run>"
    first = top_depth(as_run(run), depth)
    if not first:
        raise InputError("the first-stage run is empty", path=run_path)
    texts = ds.queries() if queries is None else queries
    qids, docs = _queries_and_docs(ds, first, texts, run_path)

    own_scorer = scorer is None
    if scorer is None:
        if model is None:
            raise ConfigError("rerank_run needs a model (or a loaded scorer)")
        scorer = load_scorer(
            model, model_type, batch_size=batch_size, max_length=max_length, engine=engine,
            threads=threads, device=device, executor=executor, executor_options=executor_options,
        )
    cache_path = Path(cache) if cache is not None else Path(f"{out}.scores.jsonl") if out is not None else None
    # the key decides; the settings beside it are there for a reader of the file
    meta = {"key": score_cache_key(scorer, ds), **_scoring_settings(scorer)} if cache_path is not None else {}
    wanted = {q: _text_key(texts[q]) for q in qids}
    done = _load_cache(cache_path, meta, first, wanted) if (cache_path and resume) else {}
    todo = [q for q in qids if q not in done]
    if done:
        log.info("resuming: %d of %d queries already scored in %s", len(qids) - len(todo), len(qids), cache_path)

    appender = _open_cache(cache_path, done)
    try:
        if appender is not None and not done:
            appender.write({"meta": meta})
        _score_queries(scorer, todo, first, texts, docs, done, appender, wanted, depth, show_progress)
    finally:
        if appender is not None:
            appender.close()
        if own_scorer:
            release(scorer)

    result = {q: done[q] for q in qids}
    if out is not None:
        write_run(out, result, tag=tag)
        log.info("reranked %d queries x top %d -> %s", len(result), depth, out)
    return result


def _queries_and_docs(
    ds: Dataset, first: RunDict, texts: Mapping[str, str], run_path: str
) -> tuple[list[str], Mapping[str, Document]]:
    """The run's queries that have a text (the others skipped with a warning) and the corpus, which must hold
    every document of those queries."""
    missing = [q for q in first if q not in texts]
    if missing:
        log.warning(
            "%d of %d run queries have no text; skipped (e.g. %s)", len(missing), len(first), ", ".join(missing[:5])
        )
    qids = [q for q in first if q in texts]
    if not qids:
        raise InputError(f"no query of the run has a text in the queries given ({ds.name})", path=run_path)
    docs = ds.docs()
    for q in qids:
        for d in first[q]:
            if d not in docs:
                raise InputError(f"document '{d}' (query '{q}') is not in the corpus of {ds.name}", path=run_path)
    return qids, docs


def _open_cache(cache_path: Path | None, done: Mapping[str, Any]) -> JsonlAppender | None:
    """An appender to the score cache (``None`` without one), the file removed first unless it is resumed."""
    if cache_path is None:
        return None
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    if not done:
        cache_path.unlink(missing_ok=True)
    return JsonlAppender(cache_path)


def _score_queries(
    scorer: Scorer,
    todo: list[str],
    first: RunDict,
    texts: Mapping[str, str],
    docs: Mapping[str, Document],
    done: dict[str, dict[str, float]],
    appender: JsonlAppender | None,
    wanted: Mapping[str, str],
    depth: int,
    show_progress: bool | None,
) -> None:
    """Score the queries ``todo`` into ``done``; each chunk's scores are appended to the cache as it ends."""
    # A chunk of queries per scorer call: length sorting pays off across queries; the cache is
    # written after each chunk.
    per_call = max(1, 2048 // depth)
    shown = bar(total=len(todo), desc="rerank", unit="query", show=show_progress)
    for c in range(0, len(todo), per_call):
        chunk = todo[c : c + per_call]
        pairs, owners = [], []
        for q in chunk:
            for d in first[q]:
                pairs.append((texts[q], docs[d].full_text))
                owners.append((q, d))
        values = scorer.score(pairs)
        fresh: dict[str, dict[str, float]] = {q: {} for q in chunk}
        for (q, d), v in zip(owners, values, strict=True):
            fresh[q][d] = v
        for q in chunk:
            done[q] = fresh[q]
            if appender is not None:
                appender.write({"qid": q, "text": wanted[q], "scores": fresh[q]})
        shown.update(len(chunk))
    shown.close()


def _load_cache(
    path: Path, meta: dict[str, Any], first: RunDict, wanted: dict[str, str]
) -> dict[str, dict[str, float]]:
    """Scores of a previous, interrupted rerank with the same key (empty if none or different)."""
    if not path.is_file():
        return {}
    repair_jsonl(path)
    done: dict[str, dict[str, float]] = {}
    try:
        records = list(read_jsonl(path, skip_truncated_tail=True))
    except InputError as exc:
        log.warning("ignoring an unreadable score cache (%s)", exc)
        path.unlink()
        return {}
    if not records or records[0][1].get("meta") != meta:
        log.info("score cache %s was made with other settings; starting over", path)
        path.unlink()
        return {}
    for _, rec in records[1:]:
        q, scores = rec.get("qid"), rec.get("scores")
        # Reuse a query only if its text and document set are the ones asked for now.
        if (
            isinstance(q, str) and isinstance(scores, dict) and q in first and q in wanted
            and rec.get("text") == wanted[q] and set(scores) == set(first[q])
        ):
            done[q] = {d: float(s) for d, s in scores.items()}
    return done
