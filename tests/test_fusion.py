"""Fusion with the first stage: min-max, interpolation, the tail below the reranked depth, the sampling of
tuning queries, tuning on judgements given as a dict, rerank_and_fuse (:mod:`inpars.reranking`, with its score caches), and the
``inpars rerank`` CLI going through the same path as the pipeline (tail kept, tuning queries sampled by
:func:`inpars.fusion.sample_ids`)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conftest import write_beir
from inpars import fusion
from inpars.datasets import load_dataset, ranked, read_run_dict, write_run
from inpars.errors import ConfigError, LeakageError
from inpars.rerank.base import Pair, Scorer
from inpars.reranking import RerankFiles, rerank_and_fuse


class FakeScorer(Scorer):
    """Scores from the texts alone (no model): deterministic, and records every pair it is asked for."""

    model_type = "cross-encoder"
    engine = "torch"

    def __init__(self) -> None:
        super().__init__("fake-model", 8, 64)
        self.seen: list[Pair] = []

    def _score(self, pairs: list[Pair], show_progress: bool | None) -> list[float]:
        self.seen.extend(pairs)
        # a document's score is its length, plus a bonus when it shares a word with the query
        return [len(d) / 100 + len(set(q.lower().split()) & set(d.lower().split())) for q, d in pairs]


DOCS = [
    {"_id": f"d{i}", "title": t, "text": x}
    for i, (t, x) in enumerate(
        [
            ("Vitamin D", "vitamin d supplementation reduces respiratory infections"),
            ("Vitamin C", "vitamin c does not prevent the common cold"),
            ("Aspirin", "aspirin lowers the risk of heart attack"),
            ("Statins", "statins reduce cholesterol and cardiovascular events"),
            ("Sleep", "short sleep is linked to obesity in children"),
            ("Exercise", "regular exercise improves sleep quality and mood"),
            ("Diet", "a mediterranean diet lowers blood pressure"),
            ("Smoking", "smoking raises the risk of lung cancer"),
        ],
        start=1,
    )
]
TRAIN_IDS = [str(i) for i in range(1, 13)]
TEST_IDS = ["101", "102"]
TOPICS = ["vitamin infections", "cold vitamin", "aspirin heart", "statins cholesterol", "sleep obesity",
          "exercise mood", "diet blood pressure", "smoking lung cancer"]


@pytest.fixture
def beir12(tmp_path: Path) -> Path:
    """Eight documents, twelve train queries with numeric ids 1..12 (the dataset's natural order differs
    from string order), two test queries (101, 102)."""
    queries = [{"_id": str(i), "text": f"{TOPICS[(i - 1) % 8]} {i}"} for i in range(1, 13)]
    queries += [{"_id": "101", "text": "sleep obesity children"}, {"_id": "102", "text": "heart attack aspirin"}]
    qrels = {
        "train": [(str(i), f"d{(i - 1) % 8 + 1}", 1) for i in range(1, 13)],
        "test": [("101", "d5", 1), ("102", "d3", 1)],
    }
    return write_beir(tmp_path / "beir12", DOCS, queries, qrels)


def _first_stage(qids: list[str], n: int = 5, seed: int = 0) -> dict[str, dict[str, float]]:
    rng = random.Random(seed)
    return {q: {d: float(n - k) for k, d in enumerate(rng.sample([f"d{i}" for i in range(1, 9)], n))} for q in qids}


# ------------------------------------------------------------------------------------------- arithmetic


def test_minmax_and_interpolate() -> None:
    assert fusion.minmax({}) == {}
    assert fusion.minmax({"a": 3.0, "b": 3.0}) == {"a": 0.0, "b": 0.0}
    first = {"q": {"a": 9.0, "b": 7.0, "c": 5.0, "d": 1.0}}
    rr = {"q": {"a": -2.0, "b": 2.0, "c": 0.0, "d": 1.0}}
    assert fusion.interpolate(first, rr, 0.5)["q"] == pytest.approx({"a": 0.5, "b": 0.875, "c": 0.5, "d": 0.375})
    with pytest.raises(ConfigError):
        fusion.interpolate(first, rr, -0.1)


def test_append_tail_keeps_every_first_stage_document_below_the_reranked_ones() -> None:
    first = {"q": {f"d{i}": float(10 - i) for i in range(8)}}
    top = {"q": {"d0": 5.0, "d1": 7.0, "d2": 6.0}}
    out = fusion.append_tail(top, first, depth=3)
    assert [d for d, _ in ranked(out["q"])] == ["d1", "d2", "d0", "d3", "d4", "d5", "d6", "d7"]
    assert max(out["q"][f"d{i}"] for i in range(3, 8)) < min(top["q"].values())


def test_sample_ids_is_seeded_keeps_the_given_order_and_takes_all_when_few() -> None:
    ids = TRAIN_IDS
    got = fusion.sample_ids(ids, 5, seed=1)
    assert got == fusion.sample_ids(ids, 5, seed=1) and len(got) == 5 == len(set(got))
    assert got == sorted(got, key=ids.index)  # in the order given, not sorted as strings
    assert got == sorted(random.Random(1).sample(ids, 5), key=ids.index)  # the pipeline's historic draw
    assert fusion.sample_ids(ids, 5, seed=2) != got
    assert fusion.sample_ids(ids, 12, seed=1) == ids == fusion.sample_ids(ids, 50, seed=3)
    with pytest.raises(ConfigError):
        fusion.sample_ids(ids, 0, seed=1)


def test_tune_alpha_takes_judgements_as_a_dict() -> None:
    """Pseudo-judgements (e.g. synthetic queries and their source documents) need no dataset split."""
    first = {"s1": {"a": 3.0, "b": 1.0}, "s2": {"c": 2.0, "d": 1.0}}
    rr = {"s1": {"a": 0.0, "b": 1.0}, "s2": {"c": 0.0, "d": 1.0}}
    qrels = {"s1": {"a": 1}, "s2": {"c": 1}}  # the first stage is right, the reranker wrong
    alpha, table = fusion.tune_alpha(first, rr, qrels, [0.0, 0.25, 1.0])
    assert alpha == 0.25 and set(table) == {"0", "0.25", "1"}  # ties go to the larger alpha
    assert table["0"] == table["0.25"] == pytest.approx(1.0)
    assert table["1"] < 1.0


def test_tuning_qrels_refuses_the_test_split(beir12: Path) -> None:
    ds = load_dataset(beir12)
    assert fusion.tuning_qrels(ds, "train")["3"] == {"d3": 1}
    with pytest.raises(LeakageError, match="reserved for evaluation"):
        fusion.tuning_qrels(ds, "test")


# -------------------------------------------------------------------------------------- rerank_and_fuse


def test_rerank_and_fuse_tail_interpolation_and_cache(beir12: Path, tmp_path: Path) -> None:
    ds = load_dataset(beir12)
    first = _first_stage(TEST_IDS)
    texts = ds.queries()
    queries = {q: texts[q] for q in first}
    train_first = _first_stage(TRAIN_IDS, n=4, seed=1)
    tune = fusion.TuneSet(first=train_first, queries={q: texts[q] for q in train_first},
                          qrels=fusion.tuning_qrels(ds, "train"))
    scorer = FakeScorer()
    files = RerankFiles(reranked=tmp_path / "rr.trec", interpolated=tmp_path / "fused.trec",
                        record=tmp_path / "fusion.json", scores=tmp_path / "cache")
    fused = rerank_and_fuse(ds, first, queries, scorer, depth=2, tune=tune, alphas=[0.0, 0.5, 1.0], min_queries=1,
                            files=files, where="train")
    assert fused.pairs == 4 and len(scorer.seen) == 4 + 12 * 2
    for q in first:
        assert set(fused.top[q]) == {d for d, _ in ranked(first[q])[:2]}
        assert set(fused.reranked[q]) == set(first[q])  # the tail is kept
        assert [d for d, _ in ranked(fused.reranked[q])][2:] == [d for d, _ in ranked(first[q])[2:]]
        assert fused.interpolated is not None and set(fused.interpolated[q]) == set(first[q])
    assert fused.alpha in (0.0, 0.5, 1.0) and fused.record is not None
    assert set(fused.record["table"]) == {"0", "0.5", "1"} and fused.record["alpha_source"] == "tuned"
    assert fused.record["query_ids"] == TRAIN_IDS and fused.record["tuned_on"] == "train"
    assert json.loads(files.record.read_text()) == json.loads(json.dumps(fused.record))  # type: ignore[union-attr]
    assert read_run_dict(tmp_path / "fused.trec") == fused.interpolated
    assert read_run_dict(tmp_path / "rr.trec") == fused.reranked
    assert (tmp_path / "cache" / "eval.scores.jsonl").is_file()
    assert (tmp_path / "cache" / "tune.given.scores.jsonl").is_file()
    # a second call reuses every score
    again = rerank_and_fuse(ds, first, queries, scorer, depth=2, tune=tune, alphas=[0.0, 0.5, 1.0], min_queries=1,
                            files=files)
    assert len(scorer.seen) == 28 and again.top == fused.top and again.alpha == fused.alpha
    # a changed query text is scored again, not served from the cache
    rerank_and_fuse(ds, first, {**queries, "101": "another text"}, scorer, depth=2, files=files)
    assert len(scorer.seen) == 30 and scorer.seen[-1][0] == "another text"
    without = rerank_and_fuse(ds, first, queries, FakeScorer(), depth=2)
    assert without.interpolated is None and without.alpha is None and without.top == fused.top
    # too few tuning queries for a choice: the decision rule of 'inpars run' keeps weight 0.5
    few = rerank_and_fuse(ds, first, queries, FakeScorer(), depth=2, tune=tune, alphas=[0.0, 1.0], min_queries=30)
    assert few.alpha == 0.5 and few.record is not None and few.record["alpha_source"] == "fallback"


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_rerank_keeps_the_tail_and_samples_tuning_queries_like_the_library(
    beir12: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bugs fixed: ``inpars rerank`` dropped the first-stage documents below --depth (the pipeline keeps
    them) and drew its tuning queries differently from ``inpars run`` (sorted as strings)."""
    from inpars import rerank
    from inpars.cli import main

    scorer = FakeScorer()
    monkeypatch.setattr(rerank, "load_scorer", lambda *a, **k: scorer)
    monkeypatch.setattr("inpars.safety.check_model", lambda *a, **k: None)  # 'fake' names no real model
    ds = load_dataset(beir12)
    test_run, train_run = tmp_path / "bm25.test.trec", tmp_path / "bm25.train.trec"
    first = _first_stage(TEST_IDS)
    write_run(test_run, first)
    write_run(train_run, _first_stage(TRAIN_IDS, n=4, seed=1))
    out = tmp_path / "rr.trec"
    base = ["rerank", "--dataset", str(beir12), "--run", str(test_run), "--model", "fake", "--depth", "2"]

    assert main([*base, "--out", str(out)]) == 0
    written = read_run_dict(out)
    for q in first:
        order = [d for d, _ in ranked(written[q])]
        assert set(order[:2]) == {d for d, _ in ranked(first[q])[:2]}
        assert order[2:] == [d for d, _ in ranked(first[q])[2:]]  # the tail, in first-stage order
    assert len(scorer.seen) == 4  # only the top 2 of each query were scored

    scorer.seen.clear()
    interp = tmp_path / "interp.trec"
    assert main([*base, "--out", str(interp), "--interpolate", "--tune-run", str(train_run), "--tune-split", "train",
                 "--tune-queries", "5", "--min-decision-queries", "1"]) == 0
    ids = TRAIN_IDS
    assert ds.query_ids("train") == ids  # natural order: '2' before '10'
    want = fusion.sample_ids(ds.query_ids("train"), 5, seed=1)  # seed: the config's default, as in 'inpars run'
    assert want != sorted(random.Random(1).sample(sorted(ids), 5))  # the old CLI's draw differs
    texts = ds.queries()
    tuned_texts = {q for q, _ in scorer.seen} - {texts["101"], texts["102"]}
    assert tuned_texts == {texts[q] for q in want}
    info = json.loads(Path(f"{interp}.fusion.json").read_text())
    assert info["query_ids"] == want and info["queries"] == 5 and info["tuned_on"] == "train"
    for run in (read_run_dict(interp), read_run_dict(tmp_path / "interp.rerank-only.trec")):
        assert {q: set(d) for q, d in run.items()} == {q: set(d) for q, d in first.items()}  # tail kept
