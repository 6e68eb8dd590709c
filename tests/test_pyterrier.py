"""inpars as PyTerrier transformers, composed with PyTerrier's own operators on a tiny in-memory collection.

No Java: the first stage is inpars' bm25s retrieval. Skipped when python-terrier is not installed.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

pt = pytest.importorskip("pyterrier")
pd = pytest.importorskip("pandas")

from fakes import FakeBackend, tiny_cross_encoder  # noqa: E402
from inpars.errors import InputError  # noqa: E402
from inpars.pyterrier import QueryGenerator, Reranker, Retriever  # noqa: E402
from inpars.rerank import load_scorer  # noqa: E402
from inpars.retrieval import get_index  # noqa: E402


def test_importing_inpars_does_not_import_pyterrier() -> None:
    code = ("import sys, inpars, inpars.retrieval, inpars.rerank, inpars.cli; "
            "assert 'pyterrier' not in sys.modules, 'pyterrier imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture
def topics() -> pd.DataFrame:
    return pd.DataFrame({"qid": ["q3", "q4"], "query": ["sleep and obesity in children", "statins cholesterol"]})


def test_retriever_and_rank_cutoff(tiny_beir: Path, tmp_path: Path, topics: pd.DataFrame) -> None:
    bm25 = Retriever(tiny_beir, k=10, index_dir=tmp_path / "idx")
    assert isinstance(bm25, pt.Transformer)
    res = bm25(topics)
    expected = get_index(tiny_beir, tmp_path / "idx").search(dict(zip(topics["qid"], topics["query"], strict=True)), 10)
    for qid, group in res.groupby("qid"):
        assert dict(zip(group.docno, group.score, strict=True)) == pytest.approx(expected[qid])
        assert list(group["rank"]) == list(range(len(group)))
        assert list(group.score) == sorted(group.score, reverse=True)
    assert res[res.qid == "q3"].iloc[0].docno == "d5"
    assert res[res.docno == "d5"].iloc[0].text.startswith("Sleep Short sleep duration")
    cut = (bm25 % 1)(topics)  # PyTerrier's rank cut-off operator
    assert list(cut.docno) == ["d5", "d4"]


def test_bm25_then_reranker_and_experiment(tiny_beir: Path, tmp_path: Path, topics: pd.DataFrame) -> None:
    model = tiny_cross_encoder(tmp_path / "ce")
    scorer = load_scorer(model, "cross-encoder", engine="torch", max_length=64)
    bm25 = Retriever(tiny_beir, k=3, index_dir=tmp_path / "idx")
    pipeline = bm25 >> Reranker(scorer)
    res = pipeline(topics)
    first = bm25(topics)
    assert len(res) == len(first)
    want = scorer.score(list(zip(first["query"], first["text"], strict=True)))
    got = dict(zip(zip(res.qid, res.docno, strict=True), res.score, strict=True))
    assert [got[(q, d)] for q, d in zip(first.qid, first.docno, strict=True)] == pytest.approx(want, rel=1e-5)
    for _, group in res.groupby("qid"):
        assert list(group.score) == sorted(group.score, reverse=True)
        assert list(group["rank"]) == list(range(len(group)))
    # '%' after the reranker, and PyTerrier's Experiment over both systems
    assert (pipeline % 1)(topics).groupby("qid").size().max() == 1
    qrels = pd.DataFrame({"qid": ["q3", "q4"], "docno": ["d5", "d4"], "label": [1, 1]})
    table = pt.Experiment([bm25, pipeline], topics, qrels, eval_metrics=["recip_rank"], names=["bm25", "rerank"])
    assert table.loc[table.name == "bm25", "recip_rank"].item() == pytest.approx(1.0)
    assert 0 < table.loc[table.name == "rerank", "recip_rank"].item() <= 1


def test_reranker_looks_up_texts_and_checks_columns(tiny_beir: Path, tmp_path: Path) -> None:
    model = tiny_cross_encoder(tmp_path / "ce")
    frame = pd.DataFrame({"qid": ["q", "q"], "query": ["aspirin", "aspirin"], "docno": ["d3", "d1"]})
    res = Reranker(model, "cross-encoder", docs=tiny_beir, engine="torch")(frame)
    assert set(res.docno) == {"d1", "d3"} and "text" in res.columns
    with pytest.raises(InputError, match="'text' column"):
        Reranker(model, "cross-encoder", engine="torch")(frame)
    with pytest.raises(InputError, match="qid"):
        Retriever(get_index(tiny_beir, tmp_path / "idx"), text=False)(pd.DataFrame({"query": ["x"]}))


def test_query_generator_feeds_retrieval(tiny_beir: Path, tmp_path: Path) -> None:
    docs = pd.DataFrame({"docno": ["d1", "d5"], "title": ["Vitamin D", "Sleep"],
                         "text": ["Vitamin D supplementation reduces respiratory infections.",
                                  "Short sleep duration is linked to obesity in children."]})
    gen = QueryGenerator(FakeBackend("none"), prompt="inpars")
    queries = gen(docs)
    assert list(queries.qid) == ["d1-0", "d5-0"] and list(queries.source_docno) == ["d1", "d5"]
    # the fake backend echoes every third word of the prompt's last document (title + text), reversed
    assert queries.iloc[0]["query"] == "what about respiratory D Vitamin?"
    assert queries.iloc[0].log_prob == pytest.approx(-0.6)
    pipeline = gen >> Retriever(tiny_beir, k=2, index_dir=tmp_path / "idx", text=False)
    res = pipeline(docs)
    assert set(res.columns) >= {"qid", "query", "source_docno", "docno", "score", "rank"}
    top = res[res["rank"] == 0].set_index("qid").docno.to_dict()
    assert top == {"d1-0": "d1", "d5-0": "d5"}
    sampled = QueryGenerator(FakeBackend("none"), queries_per_doc=2, temperature=0.7, seed=3)(docs)
    assert list(sampled.qid) == ["d1-0", "d1-1", "d5-0", "d5-1"]
    assert not any(math.isnan(x) for x in sampled.log_prob)
