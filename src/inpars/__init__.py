"""inpars: turn any document collection into a trained neural reranker with no human labels.

An LLM writes queries for documents (InPars, Promptagator), the best (document, query) pairs are kept,
hard negatives are mined with BM25, a reranker is trained on them, and the result is measured on BEIR.

The public API is the names below; each stage is one library function whose keyword arguments are the
fields of its config section (:mod:`inpars.config`). Heavy dependencies (torch, transformers, llama.cpp)
are imported lazily, on first use of a name::

    >>> import inpars
    >>> sorted(inpars.FILTERS.names())
    ['consistency', 'logprob', 'per_doc', 'random', 'reranker']
    >>> inpars.load_config_dict({"dataset": {"name": "scifact"}}).rerank.tune_split is None   # label-free
    True
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

__version__ = "0.1.0"  # the one place: pyproject.toml reads it ([tool.setuptools.dynamic])

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: public name -> module that defines it
_API: dict[str, str] = {
    # configuration and the whole pipeline
    "PipelineConfig": "inpars.config",
    "load_config": "inpars.config",
    "load_config_dict": "inpars.config",
    "run_pipeline": "inpars.pipeline",
    "recipe_config": "inpars.recipes",
    "Ranker": "inpars.ranker",
    "build_report": "inpars.report",
    # data
    "load_dataset": "inpars.datasets",
    "read_run_dict": "inpars.datasets",
    "write_run": "inpars.datasets",
    "evaluation_access": "inpars.datasets",
    # stages
    "retrieve": "inpars.retrieval",
    "generate_queries": "inpars.generate",
    "filter_queries": "inpars.filter",
    "mine_negatives": "inpars.negatives",
    "train_reranker": "inpars.training",
    "load_scorer": "inpars.rerank.load",
    "rerank_run": "inpars.rerank.run",
    "rerank_and_fuse": "inpars.reranking",
    "evaluate_runs": "inpars.evaluation",
    "evaluate_dataset": "inpars.evaluation",
    # registries: a new backend, prompt, filter, model family, engine, packaged model or source is one entry
    "BACKENDS": "inpars.generation.base",
    "PROMPTS": "inpars.prompts",
    "FILTERS": "inpars.catalog",
    "FAMILIES": "inpars.catalog",
    "ENGINES": "inpars.catalog",
    "PACKAGED_MODELS": "inpars.models",
    "SOURCES": "inpars.datasets",
    # records
    "Document": "inpars.records",
    "GeneratedQuery": "inpars.records",
    "TrainingExample": "inpars.records",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'inpars' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
