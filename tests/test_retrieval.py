"""BM25 first stage: hand-computed scores, index caching, and the SciFact reproduction."""

from __future__ import annotations

import json
import math
from pathlib import Path

import ir_measures
import pytest
from ir_measures import R, nDCG

from inpars.cli import main
from inpars.datasets import evaluation_access, load_dataset, read_run
from inpars.errors import ConfigError
from inpars.records import Document
from inpars.retrieval import MANIFEST, BM25Index, get_index, retrieve

# ---------------------------------------------------------------------------------------- scoring


def test_lucene_bm25_scores_by_hand() -> None:
    # No stopwords, no stemming: the tokens are the lowercased words.
    docs = [
        Document("a", "apple apple banana"),  # length 3
        Document("b", "banana cherry"),  # length 2
        Document("c", "cherry date elderberry fig"),  # length 4
    ]
    index = BM25Index.build(docs, k1=0.9, b=0.4, stopwords=None, stemmer=None)
    # Lucene BM25: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), tf part = tf / (tf + k1 (1 - b + b dl / avgdl))
    # N = 3, avgdl = 3.
    # "banana": df = 2, idf = ln(1 + 1.5 / 2.5) = ln 1.6
    #   a: tf 1, dl 3: 1 / (1 + 0.9 * (0.6 + 0.4 * 3/3)) = 1 / 1.9
    #   b: tf 1, dl 2: 1 / (1 + 0.9 * (0.6 + 0.4 * 2/3)) = 1 / 1.78
    run = index.search({"q": "Banana"}, k=10)["q"]
    assert set(run) == {"a", "b"}  # c shares no term: not returned
    assert run["a"] == pytest.approx(math.log(1.6) / 1.9, rel=1e-6)
    assert run["b"] == pytest.approx(math.log(1.6) / 1.78, rel=1e-6)
    # "apple": df = 1, idf = ln(1 + 2.5 / 1.5); a: tf 2: 2 / (2 + 0.9 * 1)
    assert index.search_one("apple", k=10) == [("a", pytest.approx(math.log(1 + 2.5 / 1.5) * 2 / 2.9, rel=1e-6))]
    # Two terms add up.
    both = index.search({"q": "apple cherry"}, k=10)["q"]
    cherry_c = math.log(1.6) * 1 / (1 + 0.9 * (0.6 + 0.4 * 4 / 3))
    assert both["c"] == pytest.approx(cherry_c, rel=1e-6)
    assert both["a"] == pytest.approx(math.log(1 + 2.5 / 1.5) * 2 / 2.9, rel=1e-6)


def test_stemming_stopwords_and_empty_queries(caplog: pytest.LogCaptureFixture) -> None:
    docs = [Document("d1", "The apples are ripe", "Fruit"), Document("d2", "", ""), Document("d3", "Running fast")]
    index = BM25Index.build(docs)  # English stopwords and Snowball stemming; an empty document is fine
    assert {d for d, _ in index.search_one("an apple that runs", k=10)} == {"d1", "d3"}
    assert set(index.search({"q": "apple"}, k=10)["q"]) == {"d1"}  # apples -> appl
    assert set(index.search({"q": "run"}, k=10)["q"]) == {"d3"}  # running -> run
    assert index.search({"q": "fruit"}, k=10)["q"].keys() == {"d1"}  # the title is indexed
    out = index.search({"stop": "the and of", "empty": "", "ok": "ripe"}, k=1000)  # k above corpus size
    assert out["stop"] == {} and out["empty"] == {} and list(out["ok"]) == ["d1"]
    assert "2 queries have no indexable term" in caplog.text
    with pytest.raises(ConfigError, match="unknown stemmer"):
        BM25Index.build(docs, stemmer="klingon")
    with pytest.raises(ConfigError, match="unknown stopword list"):
        BM25Index.build(docs, stopwords="klingon")


def test_save_load_round_trip(tmp_path: Path, tiny_beir: Path) -> None:
    ds = load_dataset(tiny_beir)
    index = BM25Index.build(ds.docs_iter(), k1=1.2, b=0.75)
    index.save(tmp_path / "idx")
    loaded = BM25Index.load(tmp_path / "idx")
    queries = ds.queries()
    assert loaded.search(queries, k=3) == index.search(queries, k=3)
    assert loaded.params == index.params and loaded.params["k1"] == 1.2
    assert loaded.doc_ids == ["d1", "d2", "d3", "d4", "d5", "d6"]
    mapped = BM25Index.load(tmp_path / "idx", mmap=True)
    assert mapped.search(queries, k=3) == index.search(queries, k=3)
    with pytest.raises(FileNotFoundError, match="holds no BM25 index"):
        BM25Index.load(tmp_path)


# ------------------------------------------------------------------------------------------ cache


def test_get_index_reuses_and_rebuilds(tmp_path: Path, tiny_beir: Path) -> None:
    ds = load_dataset(tiny_beir)
    where = tmp_path / "index"
    first = get_index(ds, where)
    assert first.from_cache is False
    manifest = where / MANIFEST
    stamp = manifest.stat().st_mtime_ns
    second = get_index(load_dataset(tiny_beir), where)
    assert second.from_cache is True and manifest.stat().st_mtime_ns == stamp
    assert second.search(ds.queries(), 5) == first.search(ds.queries(), 5)
    # other parameters: rebuilt in place
    third = get_index(ds, where, k1=1.2)
    assert third.from_cache is False
    assert json.loads(manifest.read_text())["params"]["k1"] == 1.2
    # a changed corpus: rebuilt
    corpus = tiny_beir / "corpus.jsonl"
    corpus.write_text(
        corpus.read_text() + json.dumps({"_id": "d7", "title": "", "text": "statins again"}) + "\n"
    )
    fourth = get_index(ds, where, k1=1.2)
    assert fourth.from_cache is False and len(fourth) == 7
    assert get_index(ds, where, k1=1.2).from_cache is True
    assert get_index(ds, where, k1=1.2, rebuild=True).from_cache is False
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_default_index_dir_under_cache(tmp_path: Path, tiny_beir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPARS_CACHE", str(tmp_path / "cache"))
    index = get_index(tiny_beir)
    folders = list((tmp_path / "cache" / "indexes").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("tiny-")
    assert json.loads((folders[0] / MANIFEST).read_text())["n_docs"] == 6 and len(index) == 6
    assert get_index(tiny_beir).from_cache is True
    get_index(tiny_beir, b=0.75)  # other parameters: another folder
    assert len(list((tmp_path / "cache" / "indexes").iterdir())) == 2


def test_refuses_to_overwrite_a_foreign_folder(tmp_path: Path, tiny_beir: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a BM25 index folder"):
        get_index(tiny_beir, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_retrieve_writes_a_trec_run(tmp_path: Path, tiny_beir: Path) -> None:
    out = tmp_path / "bm25.trec"
    run = retrieve(tiny_beir, split="test", k=3, index_dir=tmp_path / "idx", out=out)
    assert list(run) == ["q3", "q4"]  # the test split's queries: ids are readable, labels are not
    assert next(iter(run["q3"])) == "d5" and next(iter(run["q4"])) == "d4"
    lines = read_run(out)
    assert {r.query_id for r in lines} == {"q3", "q4"} and len(lines) == sum(len(v) for v in run.values())
    assert out.read_text().splitlines()[0].split()[2:4] == ["d5", "1"]
    assert all(line.endswith(" bm25") for line in out.read_text().splitlines())
    own = retrieve(tiny_beir, queries={"x": "vitamin"}, k=2, index_dir=tmp_path / "idx")
    assert list(own["x"])[0] in {"d1", "d2"}


def test_cli_retrieve(tmp_path: Path, tiny_beir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run.trec"
    argv = ["retrieve", "--dataset", str(tiny_beir), "--split", "train", "--k", "2"]
    assert main([*argv, "--index-dir", str(tmp_path / "idx"), "--out", str(out)]) == 0
    assert "2 train queries" in capsys.readouterr().out
    assert {r.query_id for r in read_run(out)} == {"q1", "q2"}
    assert main(["retrieve", "--dataset", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err


# --------------------------------------------------------------------------------------- SciFact


@pytest.fixture(scope="module")
def scifact_index(scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[BM25Index, Path]:
    where = tmp_path_factory.mktemp("scifact") / "index"
    return get_index(scifact_dir, where), where


@pytest.mark.slow
def test_scifact_reproduction(scifact_dir: Path, scifact_index: tuple[BM25Index, Path]) -> None:
    index, where = scifact_index
    ds = load_dataset(scifact_dir)
    run = retrieve(ds, split="test", k=1000, index_dir=where)
    assert len(run) == 300
    with evaluation_access():
        qrels = ds.qrels_dict("test")
    # trec_eval semantics through ir_measures/pytrec_eval (independent of inpars.evaluation)
    agg = ir_measures.calc_aggregate([nDCG @ 10, R @ 100], qrels, run)
    assert agg[nDCG @ 10] == pytest.approx(0.6762, abs=0.005)  # bm25_baseline.py: 0.6762
    assert agg[R @ 100] == pytest.approx(0.9127, abs=0.01)  # bm25_baseline.py: 0.9127
    # the reloaded index gives exactly the same run
    loaded = BM25Index.load(where)
    assert loaded.search(ds.queries("test"), k=1000) == run


@pytest.mark.slow
def test_scifact_top100_matches_reference(scifact_dir: Path, scifact_index: tuple[BM25Index, Path]) -> None:
    index, _ = scifact_index
    ds = load_dataset(scifact_dir)
    ours = index.search(ds.queries("test"), k=100)
    ref: dict[str, dict[str, float]] = {}
    for r in read_run(scifact_dir / "bm25_top100.test.trec"):
        ref.setdefault(r.query_id, {})[r.doc_id] = r.score
    assert set(ours) == set(ref)
    tol = 1.5e-6  # the reference has 6 decimals
    for qid, docs in ref.items():
        mine = ours[qid]
        assert len(docs) == 100 and len(mine) <= 100
        for d in set(mine) & set(docs):
            assert mine[d] == pytest.approx(docs[d], abs=tol)
        cutoff = min(docs.values())
        # documents in one list only: tied at the cut-off, or (reference only) matching no query term
        for d in set(docs) - set(mine):
            assert docs[d] == 0 or abs(docs[d] - cutoff) <= tol, (qid, d)
        for d in set(mine) - set(docs):
            assert abs(mine[d] - cutoff) <= tol, (qid, d)
        if min(docs.values()) > 0:
            assert len(mine) == 100


def test_index_key_follows_the_index_code_version(
    tmp_path: Path, tiny_beir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inpars import fingerprint

    where = tmp_path / "index"
    assert get_index(tiny_beir, where).from_cache is False
    assert get_index(tiny_beir, where).from_cache is True
    monkeypatch.setitem(fingerprint.VERSIONS, "bm25-index", fingerprint.VERSIONS["bm25-index"] + 1)
    assert get_index(tiny_beir, where).from_cache is False  # the index code changed: built again
    assert get_index(tiny_beir, where).from_cache is True


def test_retrieve_given_queries_needs_no_judgements(tmp_path: Path, tiny_beir: Path) -> None:
    import shutil

    shutil.rmtree(tiny_beir / "qrels")  # a corpus with no labels at all
    run = retrieve(tiny_beir, queries={"s1": "aspirin heart attack"}, k=2, index_dir=tmp_path / "idx")
    assert list(run) == ["s1"] and next(iter(run["s1"])) == "d3"
