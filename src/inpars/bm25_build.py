"""A bm25s index built in bounded memory: the files ``bm25s.BM25.save`` writes, from a stream of documents.

:func:`write_bm25_index` reads the documents once, a chunk at a time (at most ``chunk_docs`` documents and
about ``chunk_chars`` characters), and never holds the corpus, its token lists or its postings in memory.
Memory is bounded by one chunk (its texts, its tokens and their postings), one merge block
(``block_postings``), the vocabulary (a dict of terms and one document frequency each) and a few bytes per
document (its length); the score arrays are written to disk as they are filled, never memory-mapped.

1. Pass over the documents: each chunk is tokenised as ``bm25s.tokenize(texts, stopwords=...,
   stemmer=...)`` does it (a text's tokens do not depend on the other texts of its batch): ``bm25s.tokenize``
   without the stemmer splits, lowercases, drops stopwords and numbers the chunk's words in order of first
   use, then one ``stemWords`` call over that list stems them, which is what ``bm25s.tokenize`` does with
   the stemmer. The terms get global ids (in the order the corpus first uses them), each document's length
   is recorded and the chunk's postings ``(term, row, tf)``, sorted by term then row, are appended to spill
   files; the ids of the documents are streamed to ``doc_ids.json`` meanwhile.
2. ``avgdl`` and each term's document frequency then give the idf (Lucene: ``ln(1 + (N - df + 0.5) /
   (df + 0.5))``) and the CSC column pointers ``indptr = [0, cumsum(df)]``.
3. Merge: the columns are written in blocks of about ``block_postings`` postings; a block gathers its
   slice of every chunk's spill (chunks in row order, so each column's rows come out ascending), scores
   them (``idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))``, with bm25s' exact float32/float64 steps) and
   appends them to ``data.csc.index.npy`` and ``indices.csc.index.npy``.

The folder then holds exactly what ``bm25s.BM25(method="lucene", k1=k1, b=b).index(bm25s.tokenize(texts,
...))`` followed by ``save`` would write (``data``/``indices``/``indptr`` arrays, ``vocab.index.json`` with
the empty-string token last, ``params.index.json``), so ``bm25s.BM25.load(path, mmap=True)`` serves it.
The one difference is the order of the term ids: bm25s numbers stemmed terms in the iteration order of a
Python ``set`` (which changes with ``PYTHONHASHSEED``), this module in order of first use, which is the same
in every run; without a stemmer both number terms in order of first use and the files are byte-identical.
Term ids never reach a score or a ranking: a query's scores add its terms' columns in the query's order.

>>> import tempfile
>>> from inpars.records import Document
>>> folder = tempfile.TemporaryDirectory()
>>> stats = write_bm25_index(folder.name, [Document("a", "red apples"), Document("b", "green pears")],
...                          k1=0.9, b=0.4, stopwords="en", stemmer=None, chunk_docs=1)
>>> (stats.n_docs, stats.n_terms, stats.nnz)
(2, 4, 4)
>>> import bm25s
>>> bm25s.BM25.load(folder.name, mmap=True, show_progress=False).vocab_dict
{'red': 0, 'apples': 1, 'green': 2, 'pears': 3, '': 4}
>>> folder.cleanup()
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from inpars.id_table import IdListWriter, write_npy_header
from inpars.index_manifest import DOC_IDS, DOC_IDS_STEM
from inpars.quiet import bar
from inpars.records import Document

log = logging.getLogger(__name__)

DATA = "data.csc.index.npy"
INDICES = "indices.csc.index.npy"
INDPTR = "indptr.csc.index.npy"
VOCAB = "vocab.index.json"
PARAMS = "params.index.json"

CHUNK_DOCS = 20_000
CHUNK_CHARS = 1 << 23  # 8 Mi characters of text per chunk (about 1.5M tokens of English)
BLOCK_POSTINGS = 2_000_000


@dataclass(frozen=True)
class BuildStats:
    """What :func:`write_bm25_index` wrote: documents, terms (without the empty-string token), postings."""

    n_docs: int
    n_terms: int
    nnz: int
    avg_doc_len: float
    chunks: int
    seconds: float


class _Growing:
    """A 1-D numpy array that grows by doubling (per-document and per-term counters)."""

    def __init__(self, dtype: Any) -> None:
        self.array = np.zeros(1024, dtype=dtype)
        self.size = 0

    def reserve(self, size: int) -> None:
        if size > len(self.array):
            grown = np.zeros(max(size, 2 * len(self.array)), dtype=self.array.dtype)
            grown[: self.size] = self.array[: self.size]
            self.array = grown
        self.size = max(self.size, size)

    def extend(self, values: np.ndarray) -> None:
        start = self.size
        self.reserve(start + len(values))
        self.array[start : self.size] = values

    def view(self) -> np.ndarray:
        return self.array[: self.size]


class DocIdWriter:
    """``doc_ids.json`` streamed in :func:`inpars.io.write_json`'s layout (indent 2), so it reads the same,
    and the same ids as the compact arrays of :class:`inpars.id_table.IdList` (``doc_ids.blob.npy``,
    ``doc_ids.ends.npy``), which the index loads (memory-mapped) instead of the JSON list."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "w", encoding="utf-8")  # noqa: SIM115  (closed by close())
        self._arrays = IdListWriter(path.parent, DOC_IDS_STEM)
        self._encode = json.JSONEncoder(ensure_ascii=False).encode
        self._n = 0

    def write(self, doc_ids: list[str]) -> None:
        if doc_ids:
            self._f.write(("[\n  " if self._n == 0 else ",\n  ") + ",\n  ".join(map(self._encode, doc_ids)))
            self._arrays.write(doc_ids)
            self._n += len(doc_ids)

    def close(self) -> None:
        self._f.write("[]\n" if self._n == 0 else "\n]\n")
        self._f.close()
        self._arrays.close()

    def __enter__(self) -> DocIdWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chunks(docs: Iterable[Document], max_docs: int, max_chars: int) -> Iterator[tuple[list[str], list[str]]]:
    """``(doc ids, texts)`` of at most ``max_docs`` documents and about ``max_chars`` characters each."""
    ids: list[str] = []
    texts: list[str] = []
    chars = 0
    for d in docs:
        text = d.full_text
        ids.append(d.doc_id)
        texts.append(text)
        chars += len(text)
        if len(ids) >= max_docs or chars >= max_chars:
            yield ids, texts
            ids, texts, chars = [], [], 0
    if ids:
        yield ids, texts


def _run_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Where each run of equal values of a sorted, non-empty array starts."""
    change = np.empty(len(sorted_values), dtype=bool)
    change[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=change[1:])
    return np.flatnonzero(change)


def _run_lengths(starts: np.ndarray, total: int) -> np.ndarray:
    """The lengths of the runs that start at ``starts`` in an array of ``total`` items."""
    lengths = np.empty(len(starts), dtype=np.int64)
    np.subtract(starts[1:], starts[:-1], out=lengths[:-1])
    lengths[-1] = total - starts[-1]
    return lengths


def _work_dtype() -> np.dtype[Any]:
    """The dtype of bm25s' ``tf_array / (k1 * (...) + tf_array)`` (a float32 array and a float64 scalar):
    float64 under NumPy 2's promotion rules, float32 under NumPy 1's value-based casting."""
    return (np.ones(1, dtype=np.float32) + np.float64(0.5)).dtype


def _read(f: IO[bytes], dtype: Any, start: int, count: int) -> np.ndarray:
    """``count`` items of ``dtype`` from item ``start`` of a raw spill file (read, not memory-mapped)."""
    item = np.dtype(dtype).itemsize
    f.seek(start * item)
    out = np.fromfile(f, dtype=dtype, count=count)
    if len(out) != count:
        raise OSError(f"spill file {getattr(f, 'name', '?')} is short: {len(out)} of {count} items")
    return out


def write_bm25_index(
    path: str | Path,
    docs: Iterable[Document],
    *,
    k1: float,
    b: float,
    stopwords: str | None,
    stemmer: Any,
    chunk_docs: int = CHUNK_DOCS,
    chunk_chars: int = CHUNK_CHARS,
    block_postings: int = BLOCK_POSTINGS,
    show_progress: bool | None = False,
    total: int | None = None,
) -> BuildStats:
    """Index ``Document.full_text`` of ``docs`` into ``path`` (Lucene BM25), in bounded memory.

    Writes bm25s' files (``data.csc.index.npy``, ``indices.csc.index.npy``, ``indptr.csc.index.npy``,
    ``vocab.index.json``, ``params.index.json``) and ``doc_ids.json`` (the documents' ids in row order).
    ``stopwords`` is a bm25s list name or None; ``stemmer`` an object with ``stemWords`` (PyStemmer) or
    None. Spill files go to a temporary folder inside ``path``, removed at the end. Raises ValueError when
    there are no documents or no document has an indexable term (bm25s cannot index that either).
    ``show_progress``: one bar counting the documents indexed (of ``total`` when given), as
    :func:`inpars.quiet.bar` decides.
    """
    from bm25s.scoring import _score_idf_lucene

    if min(chunk_docs, chunk_chars, block_postings) < 1:
        raise ValueError("chunk_docs, chunk_chars and block_postings must be positive")
    if stemmer is None:
        stem = None
    elif hasattr(stemmer, "stemWords"):
        stem = stemmer.stemWords
    elif callable(stemmer):
        stem = stemmer
    else:
        raise ValueError("stemmer must have a stemWords method or be callable (as bm25s.tokenize requires)")
    start_time = time.perf_counter()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    spill = Path(tempfile.mkdtemp(prefix=".bm25-spill-", dir=path))
    try:
        vocab, doc_len, df, chunk_meta, n_post = _spill(docs, spill, path / DOC_IDS, stopwords, stem, chunk_docs,
                                                        chunk_chars, show_progress, total)
        n_docs = doc_len.size
        if n_docs == 0:
            raise ValueError("cannot build a BM25 index over an empty corpus")
        if not vocab:
            raise ValueError("cannot build a BM25 index: no document has an indexable term")

        # idf, norms and column pointers
        lens = doc_len.view()
        avg_doc_len = lens.mean(dtype=np.float64)  # as bm25s: a float64 sum of integers (exact), over N
        n_terms = len(vocab)
        dfs = df.view()[:n_terms] if df.size >= n_terms else np.pad(df.view(), (0, n_terms - df.size))
        udf, inverse = np.unique(dfs, return_inverse=True)
        idf = np.array([_score_idf_lucene(int(d), N=n_docs) for d in udf], dtype=np.float64).astype(np.float32)
        idf_work = idf[inverse].astype(work := _work_dtype())  # float32 values, as bm25s' idf_array
        # bm25s: tf / (k1 * ((1 - b) + b * l_d / l_avg) + tf), with l_d an int and l_avg a float64 scalar
        norm = (k1 * ((1 - b) + b * np.arange(int(lens.max()) + 1, dtype=np.float64) / avg_doc_len)).astype(work)
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(dfs, out=indptr[1:])
        nnz = int(indptr[-1])
        assert nnz == n_post, (nnz, n_post)

        cuts, slices = _block_slices(spill, chunk_meta, indptr, n_terms, block_postings)
        _merge(spill, path, chunk_meta, cuts, slices, indptr, norm, idf_work, lens, nnz)
        np.save(path / INDPTR, indptr, allow_pickle=False)

        _write_vocab_and_params(path, vocab, n_terms, k1=k1, b=b, n_docs=n_docs)
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    stats = BuildStats(n_docs, n_terms, nnz, float(avg_doc_len), len(chunk_meta), time.perf_counter() - start_time)
    log.info("indexed %d documents (%d terms, %d postings, %d chunks) in %.1fs", stats.n_docs, stats.n_terms,
             stats.nnz, stats.chunks, stats.seconds)
    return stats



def _spill(docs: Iterable[Document], spill: Path, ids_path: Path, stopwords: str | None, stem: Any,
           chunk_docs: int, chunk_chars: int, show_progress: bool | None, total: int | None,
) -> tuple[dict[str, int], _Growing, _Growing, list[tuple[int, int, int, int]], int]:
    """Pass 1: tokenise and count ``docs`` chunk by chunk, streaming their ids to ``ids_path`` and each chunk's
    postings (rows, tf, terms, counts; sorted by term then row) to raw files in ``spill``. Returns the
    vocabulary, the document lengths, the document frequencies, each chunk's (postings start, count, terms
    start, count) and the number of postings."""
    import bm25s

    vocab: dict[str, int] = {}
    df = _Growing(np.int64)
    doc_len = _Growing(np.int32)
    chunk_meta: list[tuple[int, int, int, int]] = []  # (postings start, count, terms start, count)
    n_post = n_uterms = 0
    ids_out = DocIdWriter(ids_path)
    with contextlib.ExitStack() as stack:
        stack.callback(ids_out.close)
        rows_f = stack.enter_context(open(spill / "rows.i32", "wb"))
        tf_f = stack.enter_context(open(spill / "tf.i32", "wb"))
        terms_f = stack.enter_context(open(spill / "terms.i32", "wb"))
        counts_f = stack.enter_context(open(spill / "counts.i64", "wb"))
        shown = stack.enter_context(bar(total=total, desc="BM25 index", unit="doc", show=show_progress))
        for doc_ids, texts in _chunks(docs, chunk_docs, chunk_chars):
            row0, n = doc_len.size, len(doc_ids)
            shown.update(n)
            ids_out.write(doc_ids)
            del doc_ids
            # bm25s.tokenize with the stemmer does this: split, drop stopwords, number the words in order
            # of first use, then stem that list of distinct words with one stemWords call
            tok = bm25s.tokenize(texts, stopwords=stopwords, stemmer=None, return_ids=True, show_progress=False)
            del texts
            lengths = np.fromiter(map(len, tok.ids), dtype=np.int64, count=n)
            total = int(lengths.sum())
            doc_len.extend(lengths.astype(np.int32))
            if total == 0:
                chunk_meta.append((n_post, 0, n_uterms, 0))
                continue
            flat = np.fromiter(itertools.chain.from_iterable(tok.ids), dtype=np.int32, count=total)
            words = list(tok.vocab)  # ids 0, 1, ... in this order
            del tok
            terms_of = stem(words) if stem is not None else words
            # global term ids, new terms numbered in order of first use (setdefault: len before insertion)
            to_global = np.array([vocab.setdefault(t, len(vocab)) for t in terms_of], dtype=np.int64)
            del words, terms_of
            # postings (term, row, tf), sorted by term then row: key = term * n + row in chunk
            key = to_global[flat]
            del flat, to_global
            key *= n
            key += np.repeat(np.arange(n, dtype=np.int64), lengths)
            key.sort()
            starts = _run_starts(key)
            tf = _run_lengths(starts, total).astype(np.int32)
            key = key[starts]
            del starts
            terms = key // n
            key -= terms * n
            key += row0
            rows = key.astype(np.int32)
            del key
            starts = _run_starts(terms)
            uterms = terms[starts].astype(np.int32)
            counts = _run_lengths(starts, len(terms))
            del terms, starts
            df.reserve(len(vocab))
            df.array[uterms] += counts
            rows_f.write(rows.data)
            tf_f.write(tf.data)
            terms_f.write(uterms.data)
            counts_f.write(counts.astype(np.int64).data)
            chunk_meta.append((n_post, len(rows), n_uterms, len(uterms)))
            n_post += len(rows)
            n_uterms += len(uterms)
            log.debug("BM25 index: %d documents, %d terms, %d postings", doc_len.size, len(vocab), n_post)
    return vocab, doc_len, df, chunk_meta, n_post


def _block_slices(spill: Path, chunk_meta: list[tuple[int, int, int, int]], indptr: np.ndarray, n_terms: int,
                  block_postings: int) -> tuple[list[int], np.ndarray]:
    """Blocks of columns of about ``block_postings`` postings, and where each chunk's slice of each block
    starts in its spilled postings and terms."""
    cuts = [0]
    while cuts[-1] < n_terms:
        t0 = cuts[-1]
        t1 = int(np.searchsorted(indptr, indptr[t0] + block_postings, side="right")) - 1
        cuts.append(min(max(t1, t0 + 1), n_terms))
    cut_arr = np.array(cuts, dtype=np.int64)
    slices = np.zeros((len(chunk_meta), len(cuts), 2), dtype=np.int64)  # (posting, term) offsets
    with open(spill / "terms.i32", "rb") as terms_in, open(spill / "counts.i64", "rb") as counts_in:
        for c, (_, _, u0, nu) in enumerate(chunk_meta):
            uterms = _read(terms_in, np.int32, u0, nu)
            ends = np.concatenate(([0], np.cumsum(_read(counts_in, np.int64, u0, nu))))
            pos = np.searchsorted(uterms, cut_arr, side="left")
            slices[c, :, 0] = ends[pos]
            slices[c, :, 1] = pos

    return cuts, slices


def _merge(spill: Path, path: Path, chunk_meta: list[tuple[int, int, int, int]], cuts: list[int],
           slices: np.ndarray, indptr: np.ndarray, norm: np.ndarray, idf_work: np.ndarray, lens: np.ndarray,
           nnz: int) -> None:
    """Pass 2: each block of columns gathered from every chunk's spilled slice of it, scored as bm25s scores,
    appended to ``data`` and ``indices`` (each column's rows ascending)."""
    work = norm.dtype
    with contextlib.ExitStack() as stack:
        rows_in = stack.enter_context(open(spill / "rows.i32", "rb"))
        tf_in = stack.enter_context(open(spill / "tf.i32", "rb"))
        terms_in = stack.enter_context(open(spill / "terms.i32", "rb"))
        counts_in = stack.enter_context(open(spill / "counts.i64", "rb"))
        data_out = stack.enter_context(open(path / DATA, "wb"))
        indices_out = stack.enter_context(open(path / INDICES, "wb"))
        write_npy_header(data_out, np.float32, nnz)
        write_npy_header(indices_out, np.int32, nnz)
        for blk in range(len(cuts) - 1):
            t0, t1 = cuts[blk], cuts[blk + 1]
            p0 = int(indptr[t0])
            size = int(indptr[t1]) - p0
            out_rows = np.empty(size, dtype=np.int32)
            out_data = np.empty(size, dtype=np.float32)
            heads = indptr[t0:t1] - p0
            for c, (post0, _, u0, _) in enumerate(chunk_meta):
                a, z = int(slices[c, blk, 0]), int(slices[c, blk + 1, 0])
                if a == z:
                    continue
                ua, uz = int(slices[c, blk, 1]), int(slices[c, blk + 1, 1])
                local = _read(terms_in, np.int32, u0 + ua, uz - ua).astype(np.int64) - t0
                counts = _read(counts_in, np.int64, u0 + ua, uz - ua)
                rows = _read(rows_in, np.int32, post0 + a, z - a)
                tf = _read(tf_in, np.int32, post0 + a, z - a).astype(work)
                # bm25s per document: idf[t] * (tf / (k1 * (...) + tf)), then stored as float32
                score = norm[lens[rows]]
                score += tf
                np.divide(tf, score, out=score)
                del tf
                score *= np.repeat(idf_work[t0:t1][local], counts)
                # this chunk's rows of each column go after the earlier chunks' rows
                dest = np.repeat(heads[local] - (np.cumsum(counts) - counts), counts)
                dest += np.arange(z - a, dtype=np.int64)
                heads[local] += counts
                out_data[dest] = score
                out_rows[dest] = rows
                del score, rows, dest
            data_out.write(out_data.data)
            indices_out.write(out_rows.data)


def _write_vocab_and_params(path: Path, vocab: dict[str, int], n_terms: int, *, k1: float, b: float,
                            n_docs: int) -> None:
    """bm25s' vocabulary file (the empty token last, with no column) and parameters file."""
    import bm25s
    from bm25s.utils import json_functions

    vocab_dict = vocab
    if "" not in vocab_dict:
        vocab_dict[""] = n_terms  # bm25s' create_empty_token: last, with no column
    with open(path / VOCAB, "w", encoding="utf-8") as f:
        f.write(json_functions.dumps(vocab_dict, ensure_ascii=False))
    del vocab_dict, vocab
    params = {
        "k1": k1,
        "b": b,
        "delta": 0.5,
        "method": "lucene",
        "idf_method": "lucene",
        "dtype": "float32",
        "int_dtype": "int32",
        "num_docs": n_docs,
        "version": bm25s.__version__,
        "backend": "numpy",
    }
    with open(path / PARAMS, "w") as f:
        json.dump(params, f, indent=4)
