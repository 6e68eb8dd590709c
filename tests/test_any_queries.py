"""Any collection, any queries: retrieve and rerank on a folder without qrels and on a plain queries file;
runs in MS MARCO and gzip form; ids that TREC files cannot hold; ir_datasets ids split right."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from conftest import write_beir
from fakes import tiny_cross_encoder
from inpars.cli import main
from inpars.datasets import (
    load_dataset,
    read_queries_file,
    read_run_dict,
    select_queries,
    split_irds_id,
    write_run,
)
from inpars.errors import InputError

DOCS = [
    {"_id": "d1", "title": "Vitamin D", "text": "Vitamin D supplementation reduces respiratory infections."},
    {"_id": "d2", "title": "Aspirin", "text": "Aspirin lowers the risk of heart attack in older patients."},
    {"_id": "d3", "title": "Sleep", "text": "Short sleep duration is linked to obesity in children."},
    {"_id": "d4", "title": "Statins", "text": "Statins reduce cholesterol and cardiovascular events."},
]
QUERIES = [{"_id": "a", "text": "vitamin d infections"}, {"_id": "b", "text": "sleep obesity children"}]


@pytest.fixture
def unlabeled(tmp_path: Path) -> Path:
    """corpus.jsonl + queries.jsonl and no qrels folder at all: one's own collection."""
    root = write_beir(tmp_path / "own", DOCS, QUERIES, {})
    (root / "qrels").rmdir()
    return root


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPARS_CACHE", str(tmp_path / "cache"))


def test_select_queries_without_qrels_takes_every_query(unlabeled: Path) -> None:
    ds = load_dataset(unlabeled)
    assert ds.splits() == []
    texts, where = select_queries(ds)
    assert texts == {"a": "vitamin d infections", "b": "sleep obesity children"}
    assert "no judgements" in where
    with pytest.raises(FileNotFoundError, match="no 'test' split"):
        select_queries(ds, "test")  # a split named explicitly must exist


def test_select_queries_with_qrels_keeps_the_split(tiny_beir: Path) -> None:
    ds = load_dataset(tiny_beir)
    texts, _ = select_queries(ds)  # default split: test
    assert sorted(texts) == ["q3", "q4"]
    assert sorted(select_queries(ds, "train")[0]) == ["q1", "q2"]


def test_queries_file_tsv_and_jsonl(tmp_path: Path) -> None:
    tsv = tmp_path / "q.tsv"
    tsv.write_text("x1\tvitamin d\nx2\taspirin heart\n", encoding="utf-8")
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text(json.dumps({"_id": 7, "text": "sleep", "metadata": {"d3": 1}}) + "\n", encoding="utf-8")
    assert read_queries_file(tsv) == {"x1": "vitamin d", "x2": "aspirin heart"}
    assert read_queries_file(jsonl) == {"7": "sleep"}
    bad = tmp_path / "bad.tsv"
    bad.write_text("x1\tok\nx2 no tab\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.tsv:2: expected 'id<TAB>text'"):
        read_queries_file(bad)
    dup = tmp_path / "dup.tsv"
    dup.write_text("x1\tone\nx1\ttwo\n", encoding="utf-8")
    with pytest.raises(InputError, match="dup.tsv:2.*duplicate query id 'x1'"):
        read_queries_file(dup)
    spaced = tmp_path / "spaced.tsv"
    spaced.write_text("q 1\tone\n", encoding="utf-8")
    with pytest.raises(InputError, match="spaced.tsv:1.*'q 1' is empty or holds whitespace"):
        read_queries_file(spaced)


def test_cli_retrieve_and_rerank_without_qrels(unlabeled: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "bm25.trec"
    assert main(["retrieve", "-d", str(unlabeled), "-o", str(run), "--k", "3"]) == 0
    assert "2 all queries of own (no judgements)" in capsys.readouterr().out
    got = read_run_dict(run)
    assert sorted(got) == ["a", "b"]
    assert max(got["a"], key=got["a"].__getitem__) == "d1"
    # a plain TSV of other queries, over the same corpus
    qfile = tmp_path / "mine.tsv"
    qfile.write_text("m1\taspirin heart attack\n", encoding="utf-8")
    run2 = tmp_path / "mine.trec"
    assert main(["retrieve", "-d", str(unlabeled), "--queries", str(qfile), "-o", str(run2), "--k", "2"]) == 0
    assert list(read_run_dict(run2)) == ["m1"]
    assert main(["retrieve", "-d", str(unlabeled), "--split", "test", "-o", str(run2)]) == 2
    assert "no 'test' split" in capsys.readouterr().err

    model = tiny_cross_encoder(tmp_path / "ce")
    out = tmp_path / "rr.trec"
    assert main(["rerank", "-d", str(unlabeled), "--run", str(run2), "--queries", str(qfile), "-m", model,
                 "-o", str(out), "--depth", "2"]) == 0
    assert set(read_run_dict(out)["m1"]) == set(read_run_dict(run2)["m1"])
    out2 = tmp_path / "rr-all.trec"
    assert main(["rerank", "-d", str(unlabeled), "--run", str(run), "-m", model, "-o", str(out2)]) == 0
    assert sorted(read_run_dict(out2)) == ["a", "b"]


# ---------------------------------------------------------------------------------------------- runs


def test_msmarco_and_gzip_runs_read_like_trec(tmp_path: Path) -> None:
    trec = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d3": 5.0}}
    write_run(tmp_path / "r.trec", trec)
    marco = tmp_path / "r.tsv"
    marco.write_text("q1\td1\t1\nq1\td2\t2\nq1\td3\t3\nq2\td3\t1\n", encoding="utf-8")
    gz = tmp_path / "r.trec.gz"
    gz.write_bytes(gzip.compress((tmp_path / "r.trec").read_bytes()))
    from inpars.datasets import ranked

    for path in (marco, gz):
        got = read_run_dict(path)
        assert {q: [d for d, _ in ranked(docs)] for q, docs in got.items()} == {
            "q1": ["d1", "d2", "d3"], "q2": ["d3"]}
    assert read_run_dict(gz) == read_run_dict(tmp_path / "r.trec")
    assert read_run_dict(marco)["q1"]["d2"] == pytest.approx(0.5)  # 1/rank, as Pyserini converts
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("q1\td1\t1\nq1 Q0 d2 2 1.0 x\n", encoding="utf-8")
    with pytest.raises(InputError, match="mixed.txt:2: 6 columns after lines of 3"):
        read_run_dict(mixed)


def test_ids_with_whitespace_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="'d 1' is empty or holds whitespace"):
        write_run(tmp_path / "r.trec", {"q1": {"d 1": 1.0}})
    assert not (tmp_path / "r.trec").exists()
    spaced = tmp_path / "spaced.tsv"
    spaced.write_text("q1\tdoc 1\t1\n", encoding="utf-8")
    with pytest.raises(InputError, match="spaced.tsv:1: field 'docid'.*'doc 1' holds whitespace|spaced.tsv:1.*doc 1"):
        read_run_dict(spaced)


# ---------------------------------------------------------------------------------------- ir_datasets


def test_irds_id_split_parsing() -> None:
    registered = {"beir", "beir/scifact", "beir/scifact/test", "beir/scifact/train", "msmarco-passage",
                  "msmarco-passage/dev", "msmarco-passage/dev/small", "cord19", "cord19/trec-covid"}
    pytest.importorskip("ir_datasets")  # '_irds_has_docs' asks ir_datasets' registry (no download)
    assert split_irds_id("beir/scifact/test", registered) == ("beir/scifact", "test")
    assert split_irds_id("msmarco-passage/dev/small", registered) == ("msmarco-passage", "dev/small")
    assert split_irds_id("cord19/trec-covid", registered) == ("cord19", "trec-covid")
    assert split_irds_id("beir/scifact", registered) == ("beir/scifact", None)


def test_irds_dataset_exposes_sibling_splits_offline() -> None:
    pytest.importorskip("ir_datasets")
    ds = load_dataset("irds:beir/scifact/test")  # registry metadata only: nothing is downloaded
    assert ds.splits() == ["test", "train"]
    assert ds.has_split("train")
    marco = load_dataset("irds:msmarco-passage/dev/small")
    assert (marco._base, marco._own_split) == ("msmarco-passage", "dev/small")  # type: ignore[attr-defined]
    assert "dev/small" in marco.splits() and "train" in marco.splits()


def test_generate_on_a_collection_without_qrels(unlabeled: Path, tmp_path: Path) -> None:
    from fakes import FakeBackend
    from inpars.generate import generate_queries, read_generated

    summary = generate_queries(unlabeled, tmp_path / "q.jsonl", n_docs=3, backend_instance=FakeBackend("fake"),
                               progress=False)
    assert summary.n_queries == 3
    assert {q.doc_id for q in read_generated(tmp_path / "q.jsonl")} <= {d["_id"] for d in DOCS}


def test_corpus_alone_is_a_dataset(unlabeled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (unlabeled / "queries.jsonl").unlink()
    ds = load_dataset(unlabeled)
    assert len(ds.docs()) == 4 and ds.queries() == {}
    with pytest.raises(InputError, match="has no query .no queries.jsonl.: give a queries file"):
        select_queries(ds)
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(json.dumps({"_id": "z", "text": "statins"}) + "\n", encoding="utf-8")
    assert main(["retrieve", "-d", str(unlabeled), "--queries", str(qfile), "-o", str(tmp_path / "z.trec")]) == 0
    assert list(read_run_dict(tmp_path / "z.trec")) == ["z"]


def test_generate_on_a_corpus_alone(unlabeled: Path, tmp_path: Path) -> None:
    from fakes import FakeBackend
    from inpars.generate import generate_queries

    (unlabeled / "queries.jsonl").unlink()
    summary = generate_queries(unlabeled, tmp_path / "q.jsonl", n_docs=2, backend_instance=FakeBackend("fake"),
                               progress=False)
    assert summary.n_queries == 2
