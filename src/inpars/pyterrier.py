"""PyTerrier transformers: inpars' first stage, rerankers and query generator inside PyTerrier pipelines.

Needs ``pip install 'inpars-toolkit[pyterrier]'`` (``python-terrier``); ``import inpars`` never imports
PyTerrier, only this module does. None of these transformers needs Java: they run in Python (bm25s or,
with ``backend="pyserini"``, Lucene through :mod:`inpars.pyserini_backend`), so they compose with PyTerrier's
own operators (``>>`` then, ``%`` rank cut-off, ``+`` score sum, ``pt.Experiment``) without a Terrier index.

- :class:`Retriever`: queries (``qid``, ``query``) to a ranking (``qid``, ``query``, ``docno``, ``score``,
  ``rank``, and ``text`` when it knows the documents), from :func:`inpars.retrieval.get_index`.
- :class:`Reranker`: rescores a ranking with any inpars reranker (:func:`inpars.rerank.load_scorer`, or
  a :class:`~inpars.rerank.base.Scorer`): needs ``query`` and ``text`` columns (or ``docs`` to look texts
  up by ``docno``).
- :class:`QueryGenerator`: documents (``docno``, ``text``, optional ``title``) to synthetic queries
  (``qid`` = ``<docno>-<i>``, ``query``, ``source_docno``, ``log_prob``), with any registered prompt and
  generation backend; the output is a topics frame, so ``generator >> retriever >> reranker`` works.

>>> import pyterrier as pt                                              # doctest: +SKIP
>>> from inpars.pyterrier import Reranker, Retriever                   # doctest: +SKIP
>>> bm25 = Retriever("scifact", k=100)                                  # doctest: +SKIP
>>> pipeline = bm25 % 100 >> Reranker("minilm-l6")                      # doctest: +SKIP
>>> pt.Experiment([bm25, pipeline], topics, qrels, ["nDCG@10"])         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyterrier as pt

from inpars.datasets import as_dataset
from inpars.errors import InputError
from inpars.fingerprint import item_seed
from inpars.generation.base import Backend, SamplingParams, get_backend
from inpars.prompts import get_prompt
from inpars.records import Document
from inpars.rerank import load_scorer
from inpars.rerank.base import Scorer
from inpars.retrieval import get_index


def _require(df: pd.DataFrame, columns: list[str], who: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{who} needs the column(s) {', '.join(missing)}; got {', '.join(map(str, df.columns))}")


def _doc_texts(docs: Any) -> dict[str, str]:
    """``{docno: text}`` from a mapping of texts or Documents, or from a dataset (its corpus)."""
    if docs is None:
        return {}
    if isinstance(docs, Mapping):
        return {str(k): (v if isinstance(v, str) else v.full_text) for k, v in docs.items()}

    ds = as_dataset(docs)
    return {d.doc_id: d.full_text for d in ds.docs_iter()}


class Retriever(pt.Transformer):
    """BM25 first stage of inpars as a PyTerrier retriever.

    ``source``: a dataset (name, folder, :class:`~inpars.datasets.Dataset`) whose corpus is indexed with
    :func:`inpars.retrieval.get_index` (``index_dir``, ``backend`` and BM25 parameters as there), or an
    index object with a ``search`` method. ``k`` documents per query; ``text=True`` adds a ``text`` column
    (title + text) from the dataset, for a reranker further down the pipeline.
    """

    def __init__(self, source: Any, *, k: int = 1000, text: bool = True, docs: Any = None,
                 index_dir: str | Path | None = None, **index_options: Any) -> None:
        if hasattr(source, "search"):
            self.index = source
            self._docs = _doc_texts(docs) if text else {}
        else:
            self.index = get_index(source, index_dir, **index_options)
            self._docs = _doc_texts(docs if docs is not None else source) if text else {}
        self.k = k
        self.text = text

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        _require(inp, ["qid", "query"], "Retriever")
        queries = {str(q): str(t) for q, t in zip(inp["qid"], inp["query"], strict=True)}
        run = self.index.search(queries, self.k)
        rows = []
        extra = [c for c in inp.columns if c not in ("qid", "query", "docno", "score", "rank", "text")]
        by_qid = inp.drop_duplicates("qid").set_index("qid")
        for qid in inp["qid"].drop_duplicates():
            ranked = sorted(run.get(str(qid), {}).items(), key=lambda x: (-x[1], x[0]))
            base = {"qid": qid, "query": queries[str(qid)], **{c: by_qid.at[qid, c] for c in extra}}
            for rank, (docno, score) in enumerate(ranked):
                row = {**base, "docno": docno, "score": score, "rank": rank}
                if self.text:
                    row["text"] = self._docs.get(docno, "")
                rows.append(row)
        columns = ["qid", "query", *extra, "docno", "score", "rank"] + (["text"] if self.text else [])
        return pd.DataFrame(rows, columns=columns)


class Reranker(pt.Transformer):
    """Rescores a ranking with an inpars reranker; the output is sorted and ranked again.

    ``model``: a :class:`~inpars.rerank.base.Scorer` or a model for :func:`inpars.rerank.load_scorer`
    (``model_type``, ``batch_size``, ``max_length``, ``engine``... as keyword options). Texts come from the
    ``text`` column, or from ``docs`` (``{docno: text}`` or a dataset) when the frame has none.
    """

    def __init__(self, model: Any, model_type: str | None = None, *, docs: Any = None, **options: Any) -> None:
        if isinstance(model, Scorer):
            self.scorer = model
        else:
            self.scorer = load_scorer(str(model), model_type, **options)
        self._docs = _doc_texts(docs)

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        _require(inp, ["qid", "query", "docno"], "Reranker")
        if "text" not in inp.columns:
            if not self._docs:
                raise InputError("Reranker needs a 'text' column, or docs={docno: text} (or a dataset) to look it up")
            inp = inp.assign(text=[self._docs.get(str(d), "") for d in inp["docno"]])
        out = inp.copy()
        if len(out):
            out["score"] = self.scorer.score(list(zip(out["query"].astype(str), out["text"].astype(str), strict=True)))
        else:
            out["score"] = pd.Series(dtype="float64")
        out = out.sort_values(["qid", "score", "docno"], ascending=[True, False, False], kind="stable")
        return pt.model.add_ranks(out.reset_index(drop=True))


class QueryGenerator(pt.Transformer):
    """Writes synthetic queries for documents with an inpars prompt and generation backend.

    Input: ``docno`` and ``text`` (``title`` optional). Output: one row per generated query, ``qid``
    (``<docno>-<i>``), ``query``, ``source_docno``, ``log_prob`` (sum of the token log-probs; NaN when the
    backend gives none). ``backend``: a :class:`~inpars.generation.base.Backend` or a registered backend
    name with ``model`` and ``backend_options``; ``prompt`` and ``prompt_options`` as for
    :func:`inpars.prompts.get_prompt` (the backend's tokenizer truncates the documents).
    ``queries_per_doc`` continuations per document (greedy unless ``temperature`` > 0, seeded by ``seed``).
    """

    def __init__(self, backend: Any = "llamacpp", model: str = "smollm2-135m", *, prompt: str = "inpars",
                 queries_per_doc: int = 1, max_new_tokens: int = 64, temperature: float = 0.0,
                 seed: int = 1, prompt_options: dict[str, Any] | None = None,
                 backend_options: dict[str, Any] | None = None) -> None:
        self.backend = backend if isinstance(backend, Backend) else get_backend(backend, model, **(backend_options or {}))
        opts = {"truncate": self.backend.truncate, "count_tokens": self.backend.count_tokens, "seed": seed,
                **(prompt_options or {})}
        self.prompt = get_prompt(prompt, **opts)
        self.queries_per_doc = queries_per_doc
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.seed = seed

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        _require(inp, ["docno", "text"], "QueryGenerator")
        titles = inp["title"] if "title" in inp.columns else [""] * len(inp)
        docs = [Document(str(d), str(t), str(ti or "")) for d, t, ti in zip(inp["docno"], inp["text"], titles, strict=True)]
        n = self.queries_per_doc
        # as inpars.generate does: greedy decoding asks one prompt for n continuations; sampling sends one
        # prompt per query, each with its own seed
        sampling = self.temperature > 0
        units = [(d, i) for d in docs for i in range(n)] if sampling else [(d, 0) for d in docs]
        params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                                n=1 if sampling else n)
        built = {d.doc_id: self.prompt.build(d).text for d in docs}
        prompts = [built[d.doc_id] for d, _ in units]
        seeds = [item_seed(self.seed, d.doc_id, i) for d, i in units]
        results = self.backend.generate(prompts, params, seeds=seeds) if units else []
        rows = []
        for (doc, first), gens in zip(units, results, strict=True):
            for j, gen in enumerate(gens[: params.n]):
                rows.append({
                    "qid": f"{doc.doc_id}-{first + j}",
                    "query": gen.text.strip(),
                    "source_docno": doc.doc_id,
                    "log_prob": float(sum(gen.log_probs)) if gen.log_probs else float("nan"),
                })
        return pd.DataFrame(rows, columns=["qid", "query", "source_docno", "log_prob"])


__all__ = ["QueryGenerator", "Reranker", "Retriever"]
