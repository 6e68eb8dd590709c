"""Datasets: BEIR-format folders, ir_datasets ids, TREC run and qrels files.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``,
``text``) and ``qrels/<split>.tsv`` (``query-id corpus-id score`` with a header line). Only the corpus is
required: one's own collection may come without judgements (its queries are then used whole, see
:func:`select_queries`) or without queries (generation needs none; a queries file can be given).

>>> ds = load_dataset("scifact")                      # doctest: +SKIP
>>> next(ds.docs_iter()).doc_id                       # doctest: +SKIP
'4983'
>>> len(ds.queries("test"))                           # doctest: +SKIP
300

Names are looked up under ``$INPARS_DATA_HOME`` (``scifact`` -> ``$INPARS_DATA_HOME/scifact``); an id
starting with ``irds:`` goes through ir_datasets (extra ``[irds]``); any other BEIR name is downloaded
from the official BEIR archive (MD5-checked) when a network exists.

Leakage guard: a BEIR query's ``metadata`` may hold its relevant document ids, so it is never loaded.
Relevance judgements of a *protected* split (``test`` by default) are handed out only inside
:func:`evaluation_access`, which only the evaluation stage enters.

Input handling (documented choices):
- malformed JSON, a missing ``_id`` (documents, queries) or query ``text``, a non-string field, non-UTF-8
  bytes: :class:`~inpars.errors.InputError` naming file, line and field (a document's missing ``title`` or
  ``text`` reads as empty);
- a duplicate document or query id: error;
- a document with empty title and text: warning, kept; a query with empty text: warning, skipped;
- a run with a duplicate (query, doc) pair or a malformed line: error (trec_eval refuses them too);
- qrels with the same (query, doc) twice: warning if the grade agrees, error if it differs.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from pathlib import Path

from inpars.corpus_view import CorpusView, beir_document
from inpars.corpus_view import get_str as _get_str
from inpars.errors import InputError, LeakageError, require
from inpars.id_table import SeenIds
from inpars.io import read_jsonl, read_jsonl_offsets
from inpars.records import Document, Qrel, Qrels, Query
from inpars.registry import Registry
from inpars.runfiles import (
    _natural_key,
    ranked,
    read_qrels,
    read_queries_file,
    read_run,
    read_run_dict,
    run_to_dict,
    write_qrels,
    write_run,
)

# Run, qrels and query-file readers live in inpars.runfiles; re-exported here, where callers find them.
__all__ = [
    "BeirDataset",
    "Dataset",
    "IrdsDataset",
    "evaluation_access",
    "load_dataset",
    "read_qrels",
    "read_queries_file",
    "read_run",
    "read_run_dict",
    "ranked",
    "run_to_dict",
    "select_queries",
    "write_qrels",
    "write_run",
]

log = logging.getLogger(__name__)

DATA_HOME_ENV = "INPARS_DATA_HOME"
PROTECTED_SPLITS: frozenset[str] = frozenset({"test"})
BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
# MD5 sums published with the BEIR datasets.
BEIR_MD5 = {
    "scifact": "5f7d1de60b170fc8027bb7898e2efca1",
    "nfcorpus": "a89dba18a62ef92f7d323ec890a0d38d",
    "arguana": "8ad3e3c2a5867cdced806d6503f29b99",
    "fiqa": "17918ed23cd04fb15047f73e6c3bd9d9",
    "trec-covid": "ce62140cb23feb9becf6270d0d1fe6d1",
    "scidocs": "38121350fc3a4d2f48850f6aff52e4a9",
    "quora": "18fb154900ba42a600f84b839c173167",
    "webis-touche2020": "46f650ba5a527fc69e0a6521c5a23563",
    "nq": "d4d3d2e48787a744b6f6e691ff534307",
    "hotpotqa": "f412724f78b0d91183a0e86805e16114",
    "dbpedia-entity": "c2a39eb420a3164af735795df012ac2c",
    "fever": "5a818580227bfb4b35bb6fa46d9b6c03",
    "climate-fever": "8b66f0a9126c521bae2bde127b4dc99d",
    "msmarco": "444067daf65d982533ea17ebd59501e4",
}

#: documents read ahead and checked for a repeated id at once (:class:`~inpars.id_table.SeenIds`)
_ID_BATCH = 1024

#: a corpus file at least this large is held as byte offsets (:class:`~inpars.corpus_view.CorpusView`)
EAGER_CORPUS_BYTES = 64 * 2**20

_EVAL_ACCESS: contextvars.ContextVar[bool] = contextvars.ContextVar("inpars_eval_access", default=False)


@contextlib.contextmanager
def evaluation_access() -> Iterator[None]:
    """Allow reading protected (test) relevance judgements inside this block. Only evaluation uses it."""
    token = _EVAL_ACCESS.set(True)
    try:
        yield
    finally:
        _EVAL_ACCESS.reset(token)


def _check_access(split: str, what: str) -> None:
    if split in PROTECTED_SPLITS and not _EVAL_ACCESS.get():
        raise LeakageError(
            f"the '{split}' relevance judgements of {what} are reserved for evaluation; "
            "other stages may not read them (use a train/dev split)"
        )


class Dataset:
    """Interface of a dataset: a corpus, queries, and relevance judgements per split."""

    name: str = "dataset"

    def docs_iter(self) -> Iterator[Document]:
        raise NotImplementedError

    @cached_property
    def _docs(self) -> Mapping[str, Document]:
        return {d.doc_id: d for d in self.docs_iter()}

    def docs(self) -> Mapping[str, Document]:
        """All documents by id, in corpus order (built once, then cached).

        A read-only mapping; for a corpus file of :data:`EAGER_CORPUS_BYTES` or more, :class:`BeirDataset`
        keeps only each document's byte offset in memory and reads a document when it is looked up
        (:class:`~inpars.corpus_view.CorpusView`), so its memory does not grow with the corpus's text.
        """
        return self._docs

    def splits(self) -> list[str]:
        raise NotImplementedError

    def query_ids(self, split: str) -> list[str]:
        """Ids of the queries judged in ``split`` (ids only: reading them leaks no label)."""
        raise NotImplementedError

    def queries_iter(self, split: str | None = None) -> Iterator[Query]:
        raise NotImplementedError

    def queries(self, split: str | None = None) -> dict[str, str]:
        """Query texts by id; with ``split`` only the queries judged in that split."""
        return {q.query_id: q.text for q in self.queries_iter(split)}

    def qrels(self, split: str) -> list[Qrel]:
        raise NotImplementedError

    def qrels_dict(self, split: str) -> Qrels:
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for q in self.qrels(split):
            out[q.query_id][q.doc_id] = q.relevance
        return dict(out)

    def has_split(self, split: str) -> bool:
        return split in self.splits()


class BeirDataset(Dataset):
    """A BEIR-format folder on disk."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        if not self.path.is_dir():
            raise FileNotFoundError(f"dataset folder not found: {self.path}")
        self.corpus_path = self.path / "corpus.jsonl"
        self.queries_path = self.path / "queries.jsonl"
        if not self.corpus_path.is_file():
            raise FileNotFoundError(f"{self.corpus_path} is missing: a BEIR folder needs corpus.jsonl")

    def __repr__(self) -> str:
        return f"BeirDataset({str(self.path)!r})"

    def docs_iter(self) -> Iterator[Document]:
        for _offset, doc in self._docs_with_offsets():
            yield doc

    def _docs_with_offsets(self) -> Iterator[tuple[int, Document]]:
        # the ids met so far as hashes (SeenIds: 8 bytes per id, not a set of strings), so a pass over a
        # corpus of millions of documents stays small; a hash met before is confirmed on the ids themselves
        seen = SeenIds()
        n_empty, first_empty = 0, ""
        lines = read_jsonl_offsets(self.corpus_path)
        while True:
            # read ahead a batch and check its ids at once; an unreadable line ends the batch early, so the
            # documents before it are checked and handed out first, as they were read
            batch: list[tuple[int, int, Document]] = []
            failure: Exception | None = None
            try:
                for line, offset, obj in lines:
                    batch.append((line, offset, beir_document(obj, self.corpus_path, line)))
                    if len(batch) >= _ID_BATCH:
                        break
            except Exception as exc:  # raised again once the documents before it are handed out
                failure = exc
            # a document's answer depends on the ones before it only: each is handed out once it is checked
            for (line, offset, doc), repeat in zip(batch, seen.add([d.doc_id for _, _, d in batch]), strict=True):
                if repeat == "yes" or (repeat == "maybe" and self._id_before(doc.doc_id, line)):
                    raise InputError(f"duplicate document id '{doc.doc_id}'", self.corpus_path, line, "_id")
                if not doc.text.strip() and not doc.title.strip():
                    n_empty += 1
                    first_empty = first_empty or f"{line} ('{doc.doc_id}')"
                yield offset, doc
            if failure is not None:
                raise failure
            if len(batch) < _ID_BATCH:
                break
        if n_empty:  # said once per reading, not once per document: several BEIR collections hold many
            log.info("%s: %d document(s) with empty title and text (line %s%s): indexed, never given a query",
                     self.corpus_path, n_empty, first_empty, ", ..." if n_empty > 1 else "")

    def _id_before(self, doc_id: str, line: int) -> bool:
        """Whether a document before ``line`` has the id ``doc_id`` (read again from the file: only when
        two ids share a 64-bit hash)."""
        for i, _offset, obj in read_jsonl_offsets(self.corpus_path):
            if i >= line:
                return False
            if beir_document(obj, self.corpus_path, i).doc_id == doc_id:
                return True
        return False

    @cached_property
    def _docs(self) -> Mapping[str, Document]:
        if self.corpus_path.stat().st_size < EAGER_CORPUS_BYTES:  # small: a dict is faster to read again
            return {d.doc_id: d for d in self.docs_iter()}
        return CorpusView.from_documents(self.corpus_path, self._docs_with_offsets())

    def splits(self) -> list[str]:
        qdir = self.path / "qrels"
        return sorted(p.stem for p in qdir.glob("*.tsv")) if qdir.is_dir() else []

    def qrels_path(self, split: str) -> Path:
        p = self.path / "qrels" / f"{split}.tsv"
        if not p.is_file():
            raise FileNotFoundError(
                f"{self.name} has no '{split}' split ({p} is missing); splits: {', '.join(self.splits()) or 'none'}"
            )
        return p

    def query_ids(self, split: str) -> list[str]:
        ids = {q.query_id for q in read_qrels(self.qrels_path(split))}
        return sorted(ids, key=_natural_key)

    def queries_iter(self, split: str | None = None) -> Iterator[Query]:
        wanted = set(self.query_ids(split)) if split is not None else None
        if not self.queries_path.is_file():  # a corpus alone (generation needs no query)
            if wanted:
                raise FileNotFoundError(f"{self.queries_path} is missing, but the '{split}' split judges queries")
            return
        seen: set[str] = set()
        for line, obj in read_jsonl(self.queries_path):
            qid = _get_str(obj, "_id", self.queries_path, line)
            if qid in seen:
                raise InputError(f"duplicate query id '{qid}'", self.queries_path, line, "_id")
            seen.add(qid)
            if wanted is not None and qid not in wanted:
                continue
            text = _get_str(obj, "text", self.queries_path, line)
            if not text.strip():
                log.warning("%s:%d: query '%s' has empty text; skipped", self.queries_path, line, qid)
                continue
            # obj["metadata"] is dropped on purpose: it can hold the relevant document ids.
            yield Query(query_id=qid, text=text)

    def qrels(self, split: str) -> list[Qrel]:
        _check_access(split, self.name)
        return read_qrels(self.qrels_path(split))


class IrdsDataset(Dataset):
    """A dataset from ir_datasets, e.g. ``irds:beir/scifact/test`` (needs the ``[irds]`` extra).

    The id is split into a *base* (the shortest registered prefix that has documents: ``beir/scifact``,
    ``msmarco-passage``, ``cord19``) and a split (the rest: ``test``, ``dev/small``, ``trec-covid``);
    :meth:`splits` lists every registered id under the base that has judgements, so the siblings of the
    named split (``beir/scifact/train``) are reachable. An id that is its own base has no split name.
    Only ir_datasets' registry is read here: nothing is downloaded until documents or queries are.
    """

    def __init__(self, dataset_id: str) -> None:
        self.irds = require("ir_datasets", "irds", "ir_datasets ids")
        self.dataset_id = dataset_id.strip("/")
        self.name = self.dataset_id
        try:
            self._ds = self.irds.load(self.dataset_id)
        except KeyError:
            raise FileNotFoundError(f"ir_datasets has no dataset '{self.dataset_id}'") from None
        self._base, self._own_split = split_irds_id(self.dataset_id, self._registered())

    def _registered(self) -> set[str]:
        return set(self.irds.registry._registered)

    def _subset(self, split: str | None):  # type: ignore[no-untyped-def]
        if split is None or split == self._own_split:
            return self._ds
        try:
            return self.irds.load(f"{self._base}/{split}")
        except KeyError:
            raise FileNotFoundError(
                f"ir_datasets has no '{self._base}/{split}'; splits of {self._base}: {', '.join(self.splits())}"
            ) from None

    def docs_iter(self) -> Iterator[Document]:
        for d in self._ds.docs_iter():
            yield Document(doc_id=d.doc_id, text=getattr(d, "text", ""), title=getattr(d, "title", "") or "")

    def splits(self) -> list[str]:
        prefix = f"{self._base}/"
        names = [i[len(prefix):] for i in self._registered() if i.startswith(prefix)]
        return sorted(n for n in names if self.irds.load(f"{prefix}{n}").has_qrels())

    def query_ids(self, split: str) -> list[str]:
        return sorted({q.query_id for q in self._subset(split).qrels_iter()}, key=_natural_key)

    def queries_iter(self, split: str | None = None) -> Iterator[Query]:
        for q in self._subset(split).queries_iter():
            yield Query(query_id=q.query_id, text=getattr(q, "text", None) or q[1])

    def qrels(self, split: str) -> list[Qrel]:
        _check_access(split, self.name)
        return [Qrel(q.query_id, q.doc_id, int(q.relevance)) for q in self._subset(split).qrels_iter()]


def split_irds_id(dataset_id: str, registered: set[str]) -> tuple[str, str | None]:
    """``(base, split)`` of an ir_datasets id: the base is the shortest registered prefix of the id
    (whole ``/`` parts) whose dataset has documents, the split the rest (None when the id is the base).

    ``registered`` is the set of registered ids; checking for documents downloads nothing.

    >>> split_irds_id("msmarco-passage/dev/small", {"msmarco-passage", "msmarco-passage/dev",
    ...                                             "msmarco-passage/dev/small"})
    ('msmarco-passage', 'dev/small')
    """
    parts = dataset_id.split("/")
    for n in range(1, len(parts)):
        prefix = "/".join(parts[:n])
        if prefix in registered and _irds_has_docs(prefix):
            return prefix, "/".join(parts[n:])
    return dataset_id, None


def _irds_has_docs(dataset_id: str) -> bool:
    try:
        import ir_datasets

        return bool(ir_datasets.load(dataset_id).has_docs())
    except (ImportError, KeyError):
        return True  # without ir_datasets (a caller's own registry): every registered prefix counts


def select_queries(
    dataset: Dataset, split: str | None = None, queries_file: str | Path | None = None, *, default_split: str = "test"
) -> tuple[dict[str, str], str]:
    """The queries a stage runs on, and a short description of where they came from.

    - ``queries_file``: every query of that TSV/JSONL file (:func:`inpars.runfiles.read_queries_file`);
      the dataset's queries and judgements are not read;
    - ``split``: the queries judged in that split (ids only: no label is read); a missing split is an error;
    - neither: ``default_split``'s queries when the dataset has judgements, else (a corpus and a queries
      file without any qrels, e.g. one's own collection) every query of the dataset.
    """
    if queries_file is not None:
        if split is not None:
            raise InputError("give either a split or a queries file, not both", path=queries_file)
        return read_queries_file(queries_file), f"queries of {queries_file}"
    if split is not None:
        return dataset.queries(split), f"{split} queries of {dataset.name}"
    if dataset.splits():
        return dataset.queries(default_split), f"{default_split} queries of {dataset.name}"
    log.info("%s has no relevance judgements: using all its queries", dataset.name)
    texts = dataset.queries()
    if not texts:
        raise InputError(f"{dataset.name} has no query (no queries.jsonl): give a queries file (--queries FILE)")
    return texts, f"all queries of {dataset.name} (no judgements)"


def as_dataset(dataset: Dataset | str | Path) -> Dataset:
    """``dataset`` itself, or the dataset a name, folder or ``irds:`` id designates (:func:`load_dataset`):
    the one place a library call resolves what it was given."""
    return dataset if isinstance(dataset, Dataset) else load_dataset(dataset)


def data_home() -> Path | None:
    """``$INPARS_DATA_HOME`` as a path, or None when unset."""
    home = os.environ.get(DATA_HOME_ENV)
    return Path(home) if home else None


def load_dataset(name_or_path: str | Path, *, download: bool = True) -> Dataset:
    """Load a dataset from a folder path, a name under ``$INPARS_DATA_HOME``, an ``irds:`` id or BEIR.

    >>> load_dataset("/nonexistent/folder", download=False)
    Traceback (most recent call last):
    ...
    FileNotFoundError: dataset '/nonexistent/folder' not found: ...
    """
    spec = str(name_or_path)
    scheme, sep, ident = spec.partition(":")
    if sep and scheme in SOURCES:
        return SOURCES.get(scheme)(ident)
    path = Path(spec).expanduser()
    if path.is_dir():
        return BeirDataset(path)
    home = data_home()
    if home is not None and (home / spec).is_dir():
        return BeirDataset(home / spec, name=spec)
    if download and "/" not in spec and spec in BEIR_MD5:
        return BeirDataset(download_beir(spec), name=spec)
    hint = (
        f"set {DATA_HOME_ENV} to the folder that holds '{spec}/'"
        if home is None
        else f"'{home / spec}' does not exist either"
    )
    raise FileNotFoundError(
        f"dataset '{spec}' not found: it is not a folder; {hint}; or give a BEIR name "
        f"({', '.join(sorted(BEIR_MD5))}) to download, or an ir_datasets id as 'irds:ID'"
    )


def _beir_source(name: str) -> Dataset:
    if name not in BEIR_MD5:
        raise FileNotFoundError(f"'{name}' is not a BEIR dataset; BEIR names: {', '.join(sorted(BEIR_MD5))}")
    return BeirDataset(download_beir(name), name=name)


#: Dataset sources named by a scheme: ``load_dataset("SCHEME:ID")``. A new source is one loader here.
SOURCES: Registry[Callable[[str], Dataset]] = Registry("dataset source")
SOURCES.register("irds")(lambda ident: IrdsDataset(ident))
SOURCES.register("beir")(_beir_source)


def download_beir(name: str, target: str | Path | None = None) -> Path:
    """Download and unpack a BEIR dataset zip, checking its MD5; returns the dataset folder."""
    root = Path(target) if target else (data_home() or Path.home() / ".cache" / "inpars" / "datasets")
    out = root / name
    if out.is_dir():
        return out
    url = BEIR_URL.format(name=name)
    log.info("downloading %s", url)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        zpath = Path(tmp) / f"{name}.zip"
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(zpath, "wb") as f:
                shutil.copyfileobj(resp, f)
        except (urllib.error.URLError, OSError) as exc:
            raise FileNotFoundError(
                f"could not download BEIR '{name}' from {url} ({exc}); offline? Download and unzip it by hand "
                f"and point {DATA_HOME_ENV} at the folder holding '{name}/', or pass the folder's path"
            ) from None
        md5 = hashlib.md5(zpath.read_bytes()).hexdigest()
        if name in BEIR_MD5 and md5 != BEIR_MD5[name]:
            raise InputError(f"MD5 mismatch: got {md5}, expected {BEIR_MD5[name]}", path=url)
        with zipfile.ZipFile(zpath) as z:
            z.extractall(tmp)
        os.replace(Path(tmp) / name, out)
    return out

