"""Datasets: BEIR-format folders, ir_datasets ids, TREC run and qrels files.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``,
``text``) and ``qrels/<split>.tsv`` (``query-id corpus-id score`` with a header line).

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
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from pathlib import Path

from inpars.errors import InputError, LeakageError, require
from inpars.io import atomic_write, read_jsonl
from inpars.records import Document, Qrel, Qrels, Query, Run, ScoredDoc
from inpars.registry import Registry

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
    def _docs(self) -> dict[str, Document]:
        return {d.doc_id: d for d in self.docs_iter()}

    def docs(self) -> dict[str, Document]:
        """All documents by id (loaded once, then cached)."""
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
        for p in (self.corpus_path, self.queries_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p} is missing: a BEIR folder needs corpus.jsonl and queries.jsonl")

    def __repr__(self) -> str:
        return f"BeirDataset({str(self.path)!r})"

    def docs_iter(self) -> Iterator[Document]:
        seen: set[str] = set()
        for line, obj in read_jsonl(self.corpus_path):
            doc_id = _get_str(obj, "_id", self.corpus_path, line)
            if doc_id in seen:
                raise InputError(f"duplicate document id '{doc_id}'", self.corpus_path, line, "_id")
            seen.add(doc_id)
            text = _get_str(obj, "text", self.corpus_path, line, required=False)
            title = _get_str(obj, "title", self.corpus_path, line, required=False)
            if not text.strip() and not title.strip():
                log.warning("%s:%d: document '%s' has empty title and text", self.corpus_path, line, doc_id)
            yield Document(doc_id=doc_id, text=text, title=title)

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

    The split is the last part of the id when ir_datasets has such a subset; ``qrels(split)`` then loads
    ``<base>/<split>``.
    """

    def __init__(self, dataset_id: str) -> None:
        self.irds = require("ir_datasets", "irds", "ir_datasets ids")
        self.dataset_id = dataset_id
        self.name = dataset_id
        self._ds = self.irds.load(dataset_id)
        parts = dataset_id.split("/")
        self._base = "/".join(parts[:-1]) if len(parts) > 2 else dataset_id
        self._own_split = parts[-1] if len(parts) > 2 else None

    def _subset(self, split: str | None):  # type: ignore[no-untyped-def]
        if split is None or split == self._own_split:
            return self._ds
        try:
            return self.irds.load(f"{self._base}/{split}")
        except KeyError:
            raise FileNotFoundError(f"ir_datasets has no '{self._base}/{split}'") from None

    def docs_iter(self) -> Iterator[Document]:
        for d in self._ds.docs_iter():
            yield Document(doc_id=d.doc_id, text=getattr(d, "text", ""), title=getattr(d, "title", "") or "")

    def splits(self) -> list[str]:
        return [self._own_split] if self._own_split and self._ds.has_qrels() else []

    def query_ids(self, split: str) -> list[str]:
        return sorted({q.query_id for q in self._subset(split).qrels_iter()}, key=_natural_key)

    def queries_iter(self, split: str | None = None) -> Iterator[Query]:
        for q in self._subset(split).queries_iter():
            yield Query(query_id=q.query_id, text=getattr(q, "text", None) or q[1])

    def qrels(self, split: str) -> list[Qrel]:
        _check_access(split, self.name)
        return [Qrel(q.query_id, q.doc_id, int(q.relevance)) for q in self._subset(split).qrels_iter()]


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


# ---------------------------------------------------------------------------------------------- files


def _natural_key(s: str) -> tuple[int, str]:
    return (len(s), s) if s.isdigit() else (1 << 30, s)


def _get_str(obj: dict, key: str, path: Path, line: int, required: bool = True) -> str:
    if key not in obj or obj[key] is None:
        if required:
            raise InputError("missing", path, line, key)
        return ""
    value = obj[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "_id":
        return str(value)
    if not isinstance(value, str):
        raise InputError(f"expected a string, got {type(value).__name__}", path, line, key)
    return value


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as f:
        for i, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise InputError(f"invalid UTF-8 at byte {exc.start}", path, i) from None
            yield i, text.removeprefix("\ufeff") if i == 1 else text


def read_qrels(path: str | Path) -> list[Qrel]:
    """Read qrels in TREC (``qid 0 docid rel``) or BEIR tsv (``query-id corpus-id score``, header) format."""
    path = Path(path)
    out: list[Qrel] = []
    seen: dict[tuple[str, str], int] = {}
    for i, line in _read_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [p.strip() for p in parts]
        if i == 1 and parts and parts[0].lower() in {"query-id", "query_id", "qid"}:
            continue  # BEIR header
        if len(parts) == 4:
            qid, _, did, rel = parts
        elif len(parts) == 3:
            qid, did, rel = parts
        else:
            raise InputError(
                f"expected 'qid 0 docid relevance' (TREC) or 'query-id<TAB>corpus-id<TAB>score' (BEIR), "
                f"got {len(parts)} columns",
                path,
                i,
            )
        try:
            grade = int(float(rel))
        except ValueError:
            raise InputError(f"relevance must be an integer, got '{rel}'", path, i, "relevance") from None
        key = (qid, did)
        if key in seen:
            if seen[key] != grade:
                raise InputError(
                    f"({qid}, {did}) judged twice with different grades {seen[key]} and {grade}",
                    path,
                    i,
                    "relevance",
                )
            log.warning("%s:%d: duplicate judgement (%s, %s) ignored", path, i, qid, did)
            continue
        seen[key] = grade
        out.append(Qrel(qid, did, grade))
    return out


def write_qrels(path: str | Path, qrels: Iterable[Qrel], fmt: str = "trec") -> None:
    """Write qrels as TREC (``qid 0 docid rel``) or BEIR tsv (with header), atomically."""
    with atomic_write(path) as f:
        if fmt == "beir":
            f.write("query-id\tcorpus-id\tscore\n")
            for q in qrels:
                f.write(f"{q.query_id}\t{q.doc_id}\t{q.relevance}\n")
        elif fmt == "trec":
            for q in qrels:
                f.write(f"{q.query_id} 0 {q.doc_id} {q.relevance}\n")
        else:
            raise ValueError(f"unknown qrels format '{fmt}' (trec or beir)")


def _iter_run(path: Path) -> Iterator[tuple[str, str, float]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for i, line in _read_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise InputError(f"expected 6 columns 'qid Q0 docid rank score tag', got {len(parts)}", path, i)
        qid, _, did, rank, score, _tag = parts
        try:
            int(rank)
        except ValueError:
            raise InputError(f"rank must be an integer, got '{rank}'", path, i, "rank") from None
        try:
            value = float(score)
        except ValueError:
            raise InputError(f"score must be a number, got '{score}'", path, i, "score") from None
        docs = seen[qid]
        if did in docs:
            raise InputError(f"document '{did}' appears twice for query '{qid}'", path, i, "docid")
        docs.add(did)
        yield qid, did, value


def read_run(path: str | Path) -> list[ScoredDoc]:
    """Read a TREC run (``qid Q0 docid rank score tag``); order within a query is by score as in trec_eval."""
    return [ScoredDoc(q, d, s) for q, d, s in _iter_run(Path(path))]


def run_to_dict(run: Iterable[ScoredDoc]) -> dict[str, dict[str, float]]:
    """``{query_id: {doc_id: score}}``."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for r in run:
        out[r.query_id][r.doc_id] = r.score
    return dict(out)


def read_run_dict(path: str | Path) -> Run:
    """Read a TREC run as ``{query_id: {doc_id: score}}`` (same checks as :func:`read_run`)."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for q, d, s in _iter_run(Path(path)):
        out[q][d] = s
    return dict(out)


def ranked(scores: dict[str, float]) -> list[tuple[str, float]]:
    """Documents in trec_eval's order: score descending, ties broken by doc id descending."""
    return sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def write_run(
    path: str | Path,
    run: dict[str, dict[str, float]] | Iterable[ScoredDoc],
    tag: str = "inpars",
    depth: int | None = None,
) -> None:
    """Write a TREC run atomically, each query's documents ranked as trec_eval ranks them."""
    as_dict = run if isinstance(run, dict) else run_to_dict(run)
    with atomic_write(path) as f:
        for qid in sorted(as_dict, key=_natural_key):
            for rank, (did, score) in enumerate(ranked(as_dict[qid])[:depth], start=1):
                f.write(f"{qid} Q0 {did} {rank} {score:.8f} {tag}\n")
