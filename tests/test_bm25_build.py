"""The streaming BM25 build (inpars.bm25_build) against bm25s' own in-memory index: same tokens, same
vocabulary, the same float32 score of every (term, document), the same search results; and its memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inpars.bm25_build import DATA, DOC_IDS, INDICES, INDPTR, PARAMS, VOCAB, write_bm25_index
from inpars.config import BM25_B, BM25_K1, BM25_STEMMER, BM25_STOPWORDS
from inpars.datasets import load_dataset
from inpars.io import write_json
from inpars.records import Document
from inpars.retrieval import BM25Index, _make_stemmer, bm25_params

ROOT = Path(__file__).resolve().parents[1]

EDGE_CASES = [
    Document("empty", ""),
    Document("blank", "   \n\t  ", "  "),
    Document("one-word", "mitochondria"),
    Document("stopwords-only", "The and of is it was", "A"),
    Document("unicode", "Ünïcödé naïve café — 東京 straße ΑΒΓ δέλτα ﬁnance İstanbul", "Ωmega"),
    Document("short-tokens", "a b c 1 2 x y"),  # no token of two characters or more
]


def _reference(docs: list[Document], stemmer: str | None) -> Any:
    """bm25s' in-memory index, built the way inpars built it before (tokenize everything, then index)."""
    import bm25s

    tokens = bm25s.tokenize([d.full_text for d in docs], stopwords=BM25_STOPWORDS, stemmer=_make_stemmer(stemmer),
                            show_progress=False)
    retriever = bm25s.BM25(method="lucene", k1=BM25_K1, b=BM25_B)
    retriever.index(tokens, show_progress=False)
    return retriever


def _assert_same_index(ours: Any, ref: Any) -> None:
    """Same vocabulary (the empty-string token last in both), and every term's column (rows, then the float32
    scores bit for bit) identical; only the numbering of the terms may differ."""
    assert ours.scores["num_docs"] == ref.scores["num_docs"]
    assert set(ours.vocab_dict) == set(ref.vocab_dict)
    n_terms = len(ref.vocab_dict) - 1
    assert ours.vocab_dict[""] == ref.vocab_dict[""] == n_terms
    assert sorted(ours.vocab_dict.values()) == list(range(n_terms + 1))
    o, r = ours.scores, ref.scores
    for name, dtype in (("data", np.float32), ("indices", np.int32), ("indptr", np.int64)):
        assert o[name].dtype == r[name].dtype == dtype, name
    assert len(o["indptr"]) == len(r["indptr"]) == n_terms + 1 and o["indptr"][-1] == r["indptr"][-1]
    # the columns of ours in bm25s' term order: then the three arrays must be equal
    order = np.empty(n_terms, dtype=np.int64)
    for term, tid in ref.vocab_dict.items():
        if term:
            order[tid] = ours.vocab_dict[term]
    starts, ends = o["indptr"][order], o["indptr"][order + 1]
    assert np.array_equal(ends - starts, np.diff(r["indptr"]))
    take = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
    assert np.array_equal(np.asarray(o["indices"])[take], r["indices"])
    assert np.asarray(o["data"])[take].tobytes() == r["data"].tobytes()


@pytest.fixture(scope="module")
def scifact_docs(scifact_dir: Path) -> list[Document]:
    return list(load_dataset(scifact_dir).docs_iter())


@pytest.fixture(scope="module")
def small_docs(scifact_docs: list[Document]) -> list[Document]:
    """The first 2,000 SciFact documents, the edge cases among them, and duplicates of two of them."""
    docs = list(scifact_docs[:2000])
    for i, d in enumerate(EDGE_CASES):
        docs.insert(i * 300, d)
    docs += [Document("dup-0", docs[1].text, docs[1].title), Document("dup-1", docs[1].text, docs[1].title)]
    return docs


def test_chunked_tokenisation_gives_the_same_tokens(small_docs: list[Document]) -> None:
    import bm25s

    texts = [d.full_text for d in small_docs]
    stem = _make_stemmer(BM25_STEMMER)
    whole = bm25s.tokenize(texts, stopwords=BM25_STOPWORDS, stemmer=stem, return_ids=False, show_progress=False)
    chunked: list[list[str]] = []
    for start in range(0, len(texts), 97):
        chunked += bm25s.tokenize(texts[start : start + 97], stopwords=BM25_STOPWORDS, stemmer=stem,
                                  return_ids=False, show_progress=False)
    assert chunked == whole
    assert whole[0] == [] and whole[300] == [] and whole[600] == ["mitochondria"] and whole[900] == []


@pytest.mark.parametrize("stemmer", [BM25_STEMMER, None])
def test_streaming_build_equals_bm25s_in_memory(small_docs: list[Document], stemmer: str | None,
                                                tmp_path: Path) -> None:
    import bm25s

    ref = _reference(small_docs, stemmer)
    stats = write_bm25_index(tmp_path, iter(small_docs), k1=BM25_K1, b=BM25_B, stopwords=BM25_STOPWORDS,
                             stemmer=_make_stemmer(stemmer), chunk_docs=97, block_postings=5_000)
    assert stats.n_docs == len(small_docs) and stats.chunks == -(-len(small_docs) // 97)
    assert stats.nnz == len(ref.scores["data"]) and stats.n_terms == len(ref.vocab_dict) - 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the spill folder is gone
    ours = bm25s.BM25.load(str(tmp_path), mmap=True, show_progress=False)
    _assert_same_index(ours, ref)
    assert isinstance(ours.scores["data"], np.memmap)
    # doc_ids.json: the ids in row order, in write_json's layout
    write_json(tmp_path / "expected_ids.json", [d.doc_id for d in small_docs])
    assert (tmp_path / DOC_IDS).read_bytes() == (tmp_path / "expected_ids.json").read_bytes()
    # bm25s' own files: byte for byte when term ids agree (no stemmer: both number terms by first use)
    saved = tmp_path / "bm25s"
    ref.save(str(saved), show_progress=False)
    params = json.loads((tmp_path / PARAMS).read_text())
    assert params == json.loads((saved / PARAMS).read_text())
    if stemmer is None:
        for name in (DATA, INDICES, INDPTR, VOCAB, PARAMS):
            assert (tmp_path / name).read_bytes() == (saved / name).read_bytes(), name


def test_index_build_searches_like_bm25s(small_docs: list[Document]) -> None:
    """BM25Index.build (streaming, memory-mapped) and an index over bm25s' in-memory arrays: the same ids and
    the same float scores, in the same order, for 200 queries made of titles, and for odd queries."""
    ref = BM25Index(_reference(small_docs, BM25_STEMMER), [d.doc_id for d in small_docs], bm25_params())
    index = BM25Index.build(iter(small_docs), chunk_docs=97)
    assert isinstance(index.retriever.scores["data"], np.memmap) and index.doc_ids == ref.doc_ids
    titled = [d for d in small_docs if d.title.strip()]
    queries = {f"t{i}": d.title for i, d in enumerate(islice(titled, 0, None, 9))}
    queries = dict(list(queries.items())[:200])
    assert len(queries) == 200
    queries.update({"unicode": "naïve café straße ΑΒΓ", "stop": "the of", "empty": "", "oov": "zzzqqq",
                    "one": "mitochondria", "dup": "apoptosis apoptosis apoptosis cell"})
    for k in (10, 1000):
        ours, theirs = index.search(queries, k=k), ref.search(queries, k=k)
        assert ours == theirs
        assert all(list(ours[q].items()) == list(theirs[q].items()) for q in queries)  # the order too
    assert ours["stop"] == ours["empty"] == ours["oov"] == {} and "one-word" in ours["one"]


def test_full_scifact_top1000_is_identical(scifact_dir: Path, scifact_docs: list[Document], tmp_path: Path) -> None:
    ds = load_dataset(scifact_dir)
    queries = ds.queries("test")  # texts only: the loader drops the queries' metadata
    assert len(queries) == 300
    ref = BM25Index(_reference(scifact_docs, BM25_STEMMER), [d.doc_id for d in scifact_docs], bm25_params())
    index = BM25Index.build(ds.docs_iter(), chunk_docs=1000, path=tmp_path / "index")
    _assert_same_index(index.retriever, ref.retriever)
    ours, theirs = index.search(queries, k=1000), ref.search(queries, k=1000)
    assert ours == theirs
    assert all(list(ours[q].items()) == list(theirs[q].items()) for q in queries)
    assert sum(map(len, ours.values())) > 250_000
    reloaded = BM25Index.load(tmp_path / "index", mmap=False)
    assert reloaded.search(queries, k=1000) == ours


def test_no_indexable_term_and_no_document(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty corpus"):
        write_bm25_index(tmp_path / "a", [], k1=0.9, b=0.4, stopwords="en", stemmer=None)
    with pytest.raises(ValueError, match="no document has an indexable term"):
        write_bm25_index(tmp_path / "b", [Document("x", "the of"), Document("y", "")], k1=0.9, b=0.4,
                         stopwords="en", stemmer=None)
    assert not list((tmp_path / "b").glob(".bm25-spill-*"))


# The bounded-memory check. Measured once with this script on a shared 2-core machine (documents of 10-39
# Zipfian words, default chunks), peak RSS above the process's baseline (56 MiB): the streaming build
# +57 MiB at 200,000 documents and +58 MiB at 400,000; bm25s in memory (tokenize everything, then index)
# +260 MiB and +515 MiB. The bound below is about twice the streaming build's figure.
_MEMORY_SCRIPT = textwrap.dedent("""
    import json, sys, tempfile
    import numpy as np

    def hwm():
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))

    import bm25s, Stemmer
    from inpars.bm25_build import write_bm25_index
    from inpars.records import Document

    n = int(sys.argv[1])
    rng = np.random.default_rng(0)
    letters, vowels = "bcdfghjklmnprstvwz", "aeiou"
    words = ["".join(letters[rng.integers(18)] + vowels[rng.integers(5)] for _ in range(3)) + str(i)
             for i in range(20_000)]
    p = 1.0 / np.arange(1, 20_001) ** 1.07
    p /= p.sum()

    def docs():
        for start in range(0, n, 10_000):
            m = min(10_000, n - start)
            lengths = rng.integers(10, 40, size=m)
            ids = rng.choice(20_000, size=int(lengths.sum()), p=p).tolist()
            pos = 0
            for i, length in enumerate(lengths.tolist()):
                yield Document(f"d{start + i}", " ".join([words[j] for j in ids[pos : pos + length]]))
                pos += length

    base = hwm()
    with tempfile.TemporaryDirectory() as folder:
        stats = write_bm25_index(folder, docs(), k1=0.9, b=0.4, stopwords="en", stemmer=Stemmer.Stemmer("english"))
    print(json.dumps({"base": base, "peak": hwm(), "docs": stats.n_docs, "nnz": stats.nnz}))
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux) for VmHWM")
def test_build_memory_is_bounded(tmp_path: Path) -> None:
    n = 200_000
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(n)], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["docs"] == n and out["nnz"] > 3_000_000
    grown = out["peak"] - out["base"]
    assert grown < 110, out  # MiB; bm25s in memory needs 263 MiB more than the baseline here
