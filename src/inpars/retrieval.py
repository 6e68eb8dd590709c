"""BM25 first stage: a bm25s index over a corpus, kept on disk and reused, and TREC runs from it.

Lucene's BM25 (``method="lucene"``, k1=0.9, b=0.4), bm25s' English stopwords and the Snowball English
stemmer (PyStemmer), over ``title + " " + text`` (:attr:`~inpars.records.Document.full_text`): Pyserini's
BEIR "flat" settings with bm25s' tokenizer (defaults: :data:`inpars.config.BM25_K1` and its neighbours).

>>> from inpars.records import Document
>>> index = BM25Index.build([
...     Document("d1", "Vitamin D supplementation reduces respiratory infections.", "Vitamin D"),
...     Document("d2", "Aspirin lowers the risk of heart attack.", "Aspirin"),
... ])
>>> [doc_id for doc_id, _ in index.search_one("does aspirin prevent heart attacks?", k=10)]
['d2']

Other stages use two entry points, which stay stable:

- :func:`get_index` returns the index of a dataset's corpus, built once and then loaded from disk while
  its key is unchanged: :func:`index_fingerprint`, i.e. ``versioned("bm25-index", corpus SHA-256,
  parameters)`` (:mod:`inpars.fingerprint`);
- :meth:`BM25Index.search` maps ``{query_id: text}`` to a run ``{query_id: {doc_id: score}}``, and
  :meth:`BM25Index.search_one` ranks for one text.

Only documents that share at least one term with the query are returned (as Lucene does): a query can get
fewer than ``k`` documents, and a query with no indexable term (empty, or only stopwords) gets none. Rank a
query's documents with :func:`inpars.datasets.ranked` (trec_eval's order: score, then doc id, descending).

First-stage engines are a registry, :data:`FIRST_STAGES` (``retrieve.backend``): ``bm25s`` (default, this
module) and ``pyserini`` (a Lucene index through Anserini's fatjar, :mod:`inpars.pyserini_backend`). Both
give :func:`get_index` and :func:`retrieve` the same index interface (``search``, ``search_one``, ``len``,
``params``, ``from_cache``), so retrieval, negatives and the consistency filter use whichever is chosen.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inpars.config import BM25_B, BM25_K1, BM25_STEMMER, BM25_STOPWORDS, RetrieveConfig, section_params
from inpars.datasets import BeirDataset, Dataset, as_dataset, ranked, write_run
from inpars.errors import ConfigError
from inpars.id_table import IdList, take
from inpars.index_manifest import (
    DOC_IDS,
    DOC_IDS_ARRAYS,
    DOC_IDS_STEM,
    INDEX_FORMAT,
    MANIFEST,
    index_fingerprint,
    read_manifest,
)
from inpars.io import make_temp, sha256_file, write_json
from inpars.quiet import bar, show_progress
from inpars.records import Document
from inpars.registry import Registry

log = logging.getLogger(__name__)

CACHE_ENV = "INPARS_CACHE"
_QUERY_BATCH = 1024


def cache_dir() -> Path:
    """``$INPARS_CACHE``, else ``~/.cache/inpars``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "inpars"


def bm25_params(
    k1: float = BM25_K1, b: float = BM25_B, stopwords: str | None = BM25_STOPWORDS, stemmer: str | None = BM25_STEMMER
) -> dict[str, Any]:
    """The parameters that define an index (stored in its manifest and compared on reuse)."""
    return {"method": "lucene", "k1": float(k1), "b": float(b), "stopwords": stopwords, "stemmer": stemmer}


def _make_stemmer(name: str | None) -> Any:
    if not name:
        return None
    import Stemmer

    try:
        return Stemmer.Stemmer(name)
    except KeyError:
        raise ConfigError(
            f"unknown stemmer '{name}'; PyStemmer knows: {', '.join(Stemmer.algorithms())}"
        ) from None


def _check_stopwords(stopwords: str | None) -> None:
    from bm25s.tokenization import _infer_stopwords

    try:
        _infer_stopwords(stopwords)
    except ValueError as exc:
        raise ConfigError(f"unknown stopword list '{stopwords}': {exc}") from None


class BM25Index:
    """A bm25s index and the document ids of its rows.

    Build it with :meth:`build`, keep it with :meth:`save` / :meth:`load`, query it with :meth:`search`
    or :meth:`search_one`. ``from_cache`` tells whether :func:`get_index` loaded it from disk (True) or
    built it (False).
    """

    def __init__(
        self,
        retriever: Any,
        doc_ids: Sequence[str],
        params: dict[str, Any],
        corpus_sha256: str | None = None,
    ) -> None:
        self.retriever = retriever
        self.doc_ids = doc_ids
        self.params = params
        self.corpus_sha256 = corpus_sha256
        self.from_cache = False
        self._stemmer = _make_stemmer(params.get("stemmer"))

    def __len__(self) -> int:
        return len(self.doc_ids)

    def __repr__(self) -> str:
        p = self.params
        return f"BM25Index({len(self)} docs, k1={p['k1']}, b={p['b']}, stemmer={p['stemmer']!r})"

    # ------------------------------------------------------------------------------------------ build

    @classmethod
    def build(
        cls,
        docs: Iterable[Document],
        k1: float = BM25_K1,
        b: float = BM25_B,
        stopwords: str | None = BM25_STOPWORDS,
        stemmer: str | None = BM25_STEMMER,
        *,
        corpus_sha256: str | None = None,
        show_progress: bool = False,
        path: str | Path | None = None,
        chunk_docs: int | None = None,
    ) -> BM25Index:
        """Index ``Document.full_text`` of every document (Lucene BM25 with the given k1 and b).

        ``stopwords`` is a bm25s list name ("en", ...) or None; ``stemmer`` a PyStemmer algorithm
        ("english", ...) or None. The index is built in bounded memory, ``chunk_docs`` documents at a
        time, into bm25s' files (:func:`inpars.bm25_build.write_bm25_index`), and opened memory-mapped:
        in ``path`` (a complete index folder, manifest included), else in a temporary folder that is
        removed at once (the open arrays stay readable).
        """
        from inpars.bm25_build import CHUNK_DOCS, write_bm25_index

        _check_stopwords(stopwords)
        params = bm25_params(k1, b, stopwords, stemmer)
        folder = Path(path) if path is not None else Path(tempfile.mkdtemp(prefix="inpars-bm25-"))
        try:
            stats = write_bm25_index(folder, docs, k1=k1, b=b, stopwords=stopwords, stemmer=_make_stemmer(stemmer),
                                     chunk_docs=chunk_docs or CHUNK_DOCS, show_progress=show_progress,
                                     total=len(docs) if isinstance(docs, Sized) else None)
            index = cls(None, [], params, corpus_sha256)
            index._write_manifest(folder, stats.n_docs)
            return cls.load(folder, mmap=True)
        finally:
            if path is None:
                shutil.rmtree(folder, ignore_errors=True)

    def save(self, path: str | Path) -> Path:
        """Write the bm25s arrays, ``doc_ids.json`` and the manifest ``inpars_index.json`` to ``path``.

        The manifest is written last; :func:`get_index` builds in a temporary folder and renames it into
        place, so an interrupted build never leaves a folder that looks complete.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        from inpars.bm25_build import DocIdWriter

        self.retriever.save(str(path), show_progress=False)
        with DocIdWriter(path / DOC_IDS) as out:  # streamed, one batch of ids at a time
            for lo in range(0, len(self.doc_ids), 1 << 16):
                out.write(list(self.doc_ids[lo : lo + (1 << 16)]))
        self._write_manifest(path, len(self.doc_ids))
        return path

    def _write_manifest(self, path: Path, n_docs: int) -> None:
        import bm25s

        write_json(path / MANIFEST, {
            "format": INDEX_FORMAT,
            "fingerprint": index_fingerprint(self.corpus_sha256, self.params),
            "params": self.params,
            "corpus_sha256": self.corpus_sha256,
            "n_docs": n_docs,
            "doc_ids": DOC_IDS_ARRAYS,  # the id arrays were written beside doc_ids.json
            "bm25s_version": getattr(bm25s, "__version__", "unknown"),
        })

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = False) -> BM25Index:
        """Load an index written by :meth:`save` (``mmap`` keeps the arrays on disk)."""
        import bm25s

        path = Path(path)
        manifest = read_manifest(path)
        if manifest is None:
            raise FileNotFoundError(f"{path} holds no BM25 index ({MANIFEST} is missing or unreadable)")
        retriever = bm25s.BM25.load(str(path), mmap=mmap, show_progress=False)
        # the ids as arrays (memory-mapped with ``mmap``) only when the manifest says they were written with it
        arrays = manifest.get("doc_ids") == DOC_IDS_ARRAYS  # else doc_ids.json (and any arrays are stale)
        doc_ids: Sequence[str] = IdList.load(path, DOC_IDS_STEM, mmap=mmap) if arrays else json.loads(
            (path / DOC_IDS).read_text(encoding="utf-8"))
        if len(doc_ids) != retriever.scores["num_docs"]:
            raise ValueError(f"{path}: {len(doc_ids)} doc ids for {retriever.scores['num_docs']} indexed rows")
        return cls(retriever, doc_ids, manifest["params"], manifest.get("corpus_sha256"))

    # ----------------------------------------------------------------------------------------- search

    def tokenize(self, texts: list[str]) -> list[list[str]]:
        """The index's analysis of query texts: lowercase, split, drop stopwords, stem."""
        import bm25s

        return bm25s.tokenize(  # type: ignore[no-any-return]
            texts,
            stopwords=self.params["stopwords"],
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )

    def search(
        self, queries: Mapping[str, str], k: int = 1000, *, show_progress: bool | None = False
    ) -> dict[str, dict[str, float]]:
        """Top ``k`` (capped at the corpus size) documents of each query: ``{query_id: {doc_id: score}}``.

        Documents that match no query term are left out; a query with no indexable term gets ``{}``.

        >>> from inpars.records import Document
        >>> index = BM25Index.build([Document("a", "red apples"), Document("b", "green pears")])
        >>> run = index.search({"q1": "apples", "q2": "the"}, k=5)
        >>> round(run["q1"]["a"], 4)  # idf ln(1 + 1.5 / 1.5) * tf 1 / (1 + 0.9 * (1 - 0.4 + 0.4 * 2 / 2))
        0.3648
        >>> run["q2"]
        {}
        """
        k = min(int(k), len(self.doc_ids))
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        import numpy as np

        qids = list(queries)
        out: dict[str, dict[str, float]] = {}
        n_empty = 0
        shown = bar(total=len(qids), desc="BM25", unit="query", show=show_progress if len(qids) > _QUERY_BATCH else False)
        for start in range(0, len(qids), _QUERY_BATCH):
            batch = qids[start : start + _QUERY_BATCH]
            tokens = self.tokenize([queries[q] for q in batch])
            docs, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
            for qid, toks, row_docs, row_scores in zip(batch, tokens, docs, scores, strict=True):
                if not toks:
                    n_empty += 1
                    out[qid] = {}
                    continue
                row_docs, row_scores = np.asarray(row_docs), np.asarray(row_scores)
                hit = row_scores > 0
                out[qid] = dict(zip(take(self.doc_ids, row_docs[hit]), row_scores[hit].tolist(), strict=True))
            shown.update(len(batch))
        shown.close()
        if n_empty:
            log.warning("%d queries have no indexable term (empty or only stopwords): no documents", n_empty)
        return out

    def search_one(self, text: str, k: int = 1000) -> list[tuple[str, float]]:
        """Ranked ``(doc_id, score)`` pairs for one text, in trec_eval's order (score, then id, descending)."""
        return ranked(self.search({"_": text}, k)["_"])


# ------------------------------------------------------------------------------------ first stages


@dataclass(frozen=True)
class FirstStage:
    """A first-stage engine: how to check its parameters, write an index into a folder, and open one.

    ``build(path, docs, params, corpus_sha256)`` writes the index files into ``path`` and returns the index
    when it can be used without reopening it (else None); ``load(path, manifest, mmap)`` opens a folder
    that holds a complete index (its manifest ``inpars_index.json`` is written last).
    """

    name: str
    check: Callable[[dict[str, Any]], None]
    build: Callable[[Path, Iterable[Document], dict[str, Any], str | None], Any]
    load: Callable[[Path, dict[str, Any], bool], Any]


FIRST_STAGES: Registry[FirstStage] = Registry("first-stage engine (retrieve.backend)")


def _bm25s_check(params: dict[str, Any]) -> None:
    _check_stopwords(params["stopwords"])
    _make_stemmer(params["stemmer"])


def _bm25s_build(path: Path, docs: Iterable[Document], params: dict[str, Any], sha: str | None) -> BM25Index:
    # built chunk by chunk straight into ``path`` (bounded memory), then opened memory-mapped
    return BM25Index.build(docs, params["k1"], params["b"], params["stopwords"], params["stemmer"], corpus_sha256=sha,
                           show_progress=show_progress(None), path=path)


def _bm25s_load(path: Path, manifest: dict[str, Any], mmap: bool) -> BM25Index:
    return BM25Index.load(path, mmap=mmap)


def _pyserini(name: str) -> Callable[..., Any]:
    """A function of :mod:`inpars.pyserini_backend`, imported on first use."""

    def call(*args: Any) -> Any:
        from inpars import pyserini_backend

        return getattr(pyserini_backend, name)(*args)

    return call


FIRST_STAGES.register("bm25s")(FirstStage("bm25s", _bm25s_check, _bm25s_build, _bm25s_load))
FIRST_STAGES.register("pyserini")(
    FirstStage("pyserini", _pyserini("check_params"), _pyserini("build_index"), _pyserini("open_index"))
)


def index_params(
    backend: str = "bm25s",
    k1: float = BM25_K1,
    b: float = BM25_B,
    stopwords: str | None = BM25_STOPWORDS,
    stemmer: str | None = BM25_STEMMER,
) -> dict[str, Any]:
    """The parameters that define an index of ``backend``; the engine is named only when it is not
    ``bm25s``, so the keys of existing bm25s indexes stay the same."""
    FIRST_STAGES.get(backend)
    params = bm25_params(k1, b, stopwords, stemmer)
    return params if backend == "bm25s" else {"backend": backend, **params}


# --------------------------------------------------------------------------------------------- cache

#: an index whose arrays take this much disk or more is searched memory-mapped by default (:func:`get_index`)
MMAP_BYTES = 1 << 30


def corpus_fingerprint(dataset: Dataset) -> str:
    """SHA-256 of a dataset's corpus: of ``corpus.jsonl`` for a BEIR folder, else of its documents."""
    if isinstance(dataset, BeirDataset):
        return sha256_file(dataset.corpus_path)
    h = hashlib.sha256()
    for d in dataset.docs_iter():
        h.update(json.dumps([d.doc_id, d.title, d.text], ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def default_index_dir(dataset: Dataset, corpus_sha256: str, params: dict[str, Any]) -> Path:
    """``<cache>/indexes/<dataset-name>-<index_fingerprint(...)[:12]>``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset.name).strip("._") or "corpus"
    return cache_dir() / "indexes" / f"{name}-{index_fingerprint(corpus_sha256, params)[:12]}"


def _matches(manifest: dict[str, Any] | None, corpus_sha256: str, params: dict[str, Any]) -> bool:
    return manifest is not None and manifest.get("fingerprint") == index_fingerprint(corpus_sha256, params)


def get_index(
    dataset: Dataset | str | Path,
    index_dir: str | Path | None = None,
    *,
    k1: float = BM25_K1,
    b: float = BM25_B,
    stopwords: str | None = BM25_STOPWORDS,
    stemmer: str | None = BM25_STEMMER,
    backend: str = "bm25s",
    rebuild: bool = False,
    mmap: bool | None = None,
) -> Any:
    """The BM25 index of ``dataset``'s corpus: loaded from ``index_dir`` when it matches, else built there.

    It matches when its manifest holds the same key (:func:`index_fingerprint` of the corpus SHA-256 and
    the parameters, with the index code's version ``VERSIONS["bm25-index"]``); otherwise (or
    with ``rebuild``) the index is built in a temporary folder beside ``index_dir`` and renamed into
    place. ``index_dir`` defaults to :func:`default_index_dir` under ``$INPARS_CACHE``
    (``~/.cache/inpars``). ``index.from_cache`` tells which happened. ``backend`` names the engine in
    :data:`FIRST_STAGES` (a :class:`BM25Index` for ``bm25s``; :class:`inpars.pyserini_backend.PyseriniIndex`
    for ``pyserini``); ``mmap`` applies to ``bm25s`` only: True keeps the index's arrays on disk, memory-mapped
    (the operating system holds the pages a search reads, and gives them back under pressure), False reads
    them into memory, None (the default) maps them when they take :data:`MMAP_BYTES` or more on disk.

    >>> index = get_index("scifact")                   # doctest: +SKIP
    >>> run = index.search({"q1": "vitamin d and infections"}, k=100)   # doctest: +SKIP
    """
    engine = FIRST_STAGES.get(backend)
    params = index_params(backend, k1, b, stopwords, stemmer)
    engine.check(params)
    ds = as_dataset(dataset)
    corpus_sha = corpus_fingerprint(ds)
    path = Path(index_dir) if index_dir is not None else default_index_dir(ds, corpus_sha, params)
    manifest = read_manifest(path)
    if mmap is None:  # the size of the index's arrays on disk decides
        mmap = sum(p.stat().st_size for p in path.glob("*.npy")) >= MMAP_BYTES
    if not rebuild and manifest is not None and _matches(manifest, corpus_sha, params):
        try:
            index = engine.load(path, manifest, mmap)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("could not load the index in %s (%s); rebuilding it", path, exc)
        else:
            index.from_cache = True
            log.info("loaded the BM25 index of %s from %s", ds.name, path)
            return index
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / MANIFEST).exists())):
        raise ConfigError(
            f"index_dir {path} exists and is not a BM25 index folder; refusing to overwrite it"
        )
    log.info("building the %s index of %s in %s", backend, ds.name, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp(path, directory=True)
    try:
        index = engine.build(tmp, ds.docs_iter(), params, corpus_sha)
        if path.exists():
            shutil.rmtree(path)
        try:
            os.rename(tmp, path)
        except OSError:
            # Another process put a folder there in the meantime: use it if it is the same index.
            if not _matches(read_manifest(path), corpus_sha, params):
                raise
            log.info("another process built the same index in %s", path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    if index is not None and not mmap:
        return index
    return engine.load(path, read_manifest(path) or {"params": params, "corpus_sha256": corpus_sha}, mmap)


# ---------------------------------------------------------------------------------------------- stage


def retrieve(
    dataset: Dataset | str | Path,
    params: RetrieveConfig | None = None,
    *,
    split: str = "test",
    queries: Mapping[str, str] | None = None,
    index_dir: str | Path | None = None,
    out: str | Path | None = None,
    tag: str = "bm25",
    seed: int | None = None,
    **fields: Any,
) -> dict[str, dict[str, float]]:
    """BM25 run of ``split``'s queries (or of ``queries``) over the dataset's corpus.

    Returns ``{query_id: {doc_id: score}}`` and, with ``out``, writes it as a TREC run (tag ``tag``).
    With ``queries`` (``{query_id: text}``, e.g. synthetic or tuning queries) no split and no judgements
    are read at all; otherwise only the split's query ids are read from its judgements, never the labels,
    so any split is allowed.
    ``params`` is a :class:`~inpars.config.RetrieveConfig`: the depth ``k``, the index's ``k1``, ``b``,
    ``stopwords`` and ``stemmer``, and ``backend``, the first-stage engine (:data:`FIRST_STAGES`: ``bm25s`` or
    ``pyserini``); or give its fields as keywords instead, validated by that model with its defaults
    (:func:`~inpars.config.section_params`). ``seed`` is accepted for the uniform stage signature; BM25 is
    deterministic.

    >>> run = retrieve("scifact", split="test", k=100, out="runs/bm25.trec")   # doctest: +SKIP
    >>> len(run)                                                               # doctest: +SKIP
    300
    """
    del seed
    params = section_params(RetrieveConfig, params, fields, "retrieve")
    ds = as_dataset(dataset)
    index = get_index(ds, index_dir, **params.index_params())
    texts = dict(queries) if queries is not None else ds.queries(split)
    start = time.perf_counter()
    run = index.search(texts, params.k, show_progress=None)  # a bar on a terminal
    log.info(
        "retrieved up to %d documents for %d queries in %.1fs",
        min(params.k, len(index)),
        len(run),
        time.perf_counter() - start,
    )
    if out is not None:
        write_run(out, run, tag=tag)
        log.info("wrote %s", out)
    return run
