"""Where a pipeline run keeps things: stage folders and the names of their declared outputs.

This module is declarations only (no stage code), so that the pipeline, the report and the CLI agree on
every file name without importing each other::

    >>> stage_dir("runs/demo", "filter").as_posix()
    'runs/demo/03-filter'
    >>> output_path("runs/demo", "retrieve", "eval_run", eval_split="test").as_posix()
    'runs/demo/01-retrieve/bm25.test.trec'
"""

from __future__ import annotations

from pathlib import Path

#: Stage names in pipeline order; the folder of stage ``s`` is ``NN-s``.
STAGES: tuple[str, ...] = (
    "retrieve", "generate", "filter", "pseudo-dev", "negatives", "train", "rerank", "evaluate", "report",
)

#: Declared outputs of each stage: key -> file name (``str.format`` fields: ``eval_split``, ``tune_split``,
#: ``depth``). Everything a later stage or the report reads is named here.
OUTPUTS: dict[str, dict[str, str]] = {
    "retrieve": {"eval_run": "bm25.{eval_split}.trec", "tune_run": "bm25.{tune_split}.trec"},
    "generate": {"queries": "queries.jsonl"},
    "filter": {"filtered": "filtered.jsonl", "report": "filtered.report.json"},
    # the label-free tuning set: held-out documents, their synthetic queries (each judged by its source
    # document) and the queries' BM25 run
    "pseudo-dev": {"docs": "docs.txt", "queries": "queries.jsonl", "run": "bm25.pseudo-dev.trec"},
    "negatives": {"train": "train.jsonl"},
    "train": {"model": "model"},
    "rerank": {
        "top": "top{depth}.{eval_split}.trec",
        "reranked": "reranked.{eval_split}.trec",
        "interpolated": "interpolated.{eval_split}.trec",
        "fusion": "fusion.json",
        "ranker": "ranker.json",
    },
    "evaluate": {"metrics": "metrics.json", "markdown": "metrics.md", "text": "metrics.txt"},
    "report": {"markdown": "report.md", "html": "report.html"},
}


def stage_dir(run_dir: str | Path, stage: str) -> Path:
    """``run_dir/NN-stage`` (numbered so that a listing shows the order)."""
    return Path(run_dir) / f"{STAGES.index(stage) + 1:02d}-{stage}"


def output_path(run_dir: str | Path, stage: str, key: str, **fields: object) -> Path:
    """The path of declared output ``key`` of ``stage`` (file-name fields filled from ``fields``)."""
    return stage_dir(run_dir, stage) / OUTPUTS[stage][key].format(**fields)
