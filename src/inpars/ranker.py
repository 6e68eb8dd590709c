"""The product of a run: a ranker that applies what the run chose to new queries.

``inpars run`` writes ``07-rerank/ranker.json``: the first stage (the run's BM25 index and its settings),
the model that reranks (the fine-tuned one, or the start model where the run kept it) and the fusion
weight chosen on the run's tuning set. :class:`Ranker` loads it and ranks any queries exactly as the run
ranked its own: BM25, the top ``depth`` rescored by the model and fused with BM25 at that weight, the rest
in BM25 order. No judgement is read.

Python::

    from inpars import Ranker

    ranker = Ranker.load("runs/my-docs")
    run = ranker.search({"q1": "how do statins lower cholesterol"})   # {query_id: {doc_id: score}}
    ranker.write(run, "run.trec")

The command line: ``inpars search runs/my-docs --queries queries.tsv --out run.trec``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars.datasets import Dataset, as_dataset, write_run
from inpars.errors import InputError
from inpars.fusion import fuse
from inpars.layout import output_path
from inpars.records import Run
from inpars.rerank import load_scorer
from inpars.rerank.base import release
from inpars.rerank.run import rerank_run
from inpars.retrieval import retrieve

log = logging.getLogger(__name__)


@dataclass
class Ranker:
    """BM25, then the run's model on the top ``depth``, fused at ``alpha`` (None: the model's order).

    ``spec`` is the run's ``ranker.json``; ``run_dir`` the folder it came from (its relative paths are
    relative to it); ``threads`` and ``batch_size`` change speed only."""

    run_dir: Path
    spec: dict[str, Any]
    dataset: Dataset
    threads: int | None = None
    batch_size: int = 32
    _scorer: Any = field(default=None, repr=False)

    @classmethod
    def load(cls, run_dir: str | Path, *, threads: int | None = None, batch_size: int = 32,
             dataset: Dataset | str | None = None) -> Ranker:
        """The ranker of the finished run in ``run_dir``; ``dataset`` overrides the collection the run
        names (the same documents moved elsewhere)."""
        run_dir = Path(run_dir)
        path = output_path(run_dir, "rerank", "ranker")
        if not path.is_file():
            what = "not a run folder" if not (run_dir / "config.json").is_file() else "its rerank stage has not finished"
            raise InputError(f"no ranker in this folder ({what}): run 'inpars run' first", path=path)
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg})", path=path, line=exc.lineno) from None
        if not isinstance(spec, dict) or spec.get("format") != 1:
            raise InputError("not a ranker description of this version of inpars (format 1)", path=path)
        ds = as_dataset(dataset or spec["dataset"])
        return cls(run_dir, spec, ds, threads=threads, batch_size=batch_size)

    @property
    def alpha(self) -> float | None:
        return self.spec.get("alpha")

    @property
    def depth(self) -> int:
        return int(self.spec["depth"])

    @property
    def model(self) -> str:
        """The reranking model: a folder inside the run (made absolute), a folder elsewhere, or a name."""
        model = str(self.spec["model"])
        inside = self.run_dir / model
        return str(inside) if not Path(model).is_absolute() and inside.exists() else model

    def describe(self) -> str:
        """One line: what this ranker does."""
        fused = (f"fused with BM25 at weight {self.alpha:g}" if self.alpha is not None else "reranking alone")
        return (f"BM25 top {self.spec['first_stage'].get('k')}, top {self.depth} rescored by {self.spec['model']} "
                f"({self.spec.get('model_type')}, {self.spec.get('model_choice')} model), {fused}")

    def scorer(self) -> Any:
        """The loaded reranker (loaded once)."""
        if self._scorer is None:
            s = self.spec
            self._scorer = load_scorer(self.model, s.get("model_type"), batch_size=self.batch_size,
                                       max_length=s.get("max_length"), engine=s.get("engine", "auto"),
                                       threads=self.threads)
        return self._scorer

    def first_stage(self, queries: Mapping[str, str], k: int | None = None) -> Run:
        """BM25 over the run's index (built again if it is gone)."""
        options = dict(self.spec["first_stage"])
        index = self.run_dir / str(options.pop("index"))
        if k is not None:
            options["k"] = max(k, self.depth)
        return retrieve(self.dataset, queries=queries, index_dir=index, **options)

    def search(self, queries: Mapping[str, str] | Sequence[str], k: int | None = None, *,
               show_progress: bool | None = None) -> Run:
        """Rank ``queries`` (``{query_id: text}``, or texts, numbered from ``1``); returns ``{query_id:
        {doc_id: score}}``, each query's documents cut at ``k`` (default: the first stage's depth)."""
        texts = dict(queries) if isinstance(queries, Mapping) else {str(i): q for i, q in enumerate(queries, 1)}
        if not texts:
            return {}
        first = self.first_stage(texts, k)
        top = rerank_run(self.dataset, first, None, queries=texts, scorer=self.scorer(), depth=self.depth,
                         resume=False, show_progress=show_progress)
        run = fuse(first, top, self.alpha, self.depth)
        if k is not None:
            run = {q: dict(sorted(docs.items(), key=lambda x: (-x[1], x[0]))[:k]) for q, docs in run.items()}
        return run

    @staticmethod
    def write(run: Run, path: str | Path, tag: str = "inpars") -> None:
        """Write ``run`` as a TREC run file."""
        write_run(path, run, tag=tag)

    def close(self) -> None:
        """Release the model (a Ray scorer's actors; memory otherwise)."""
        if self._scorer is not None:
            release(self._scorer)
            self._scorer = None
