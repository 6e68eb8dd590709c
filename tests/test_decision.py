"""What a run decides without labels (inpars.decision): the start model unless the trained one is
significantly better, the fallback on a set too small to choose on, and the evidence against BM25."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from inpars.datasets import load_dataset
from inpars.decision import FALLBACK_ALPHA, decide, paired_gain
from inpars.fusion import TuneSet
from inpars.rerank.base import Scorer

N_DOCS = 6


class Oracle(Scorer):
    """Scores the relevant document of each query highest (``noise`` 0), or at random (``noise`` 1)."""

    model_type = "cross-encoder"

    def __init__(self, noise: float, seed: int = 0) -> None:
        super().__init__(f"oracle-{noise}-{seed}", batch_size=8, max_length=32)
        self.noise, self.rng = noise, random.Random(seed)

    def _score(self, pairs: list[tuple[str, str]], show_progress: bool | None) -> list[float]:
        # a query "find <doc text>" is relevant to the document with that text
        return [(1.0 - self.noise) * (q == f"find {d}") + self.noise * self.rng.random() for q, d in pairs]


def _tune_set(tmp_path: Path, n_queries: int) -> tuple[object, TuneSet]:
    docs = [{"_id": f"d{i}", "title": "", "text": f"document number {i}"} for i in range(N_DOCS)]
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    ds = load_dataset(folder)
    first, queries, qrels = {}, {}, {}
    for i in range(n_queries):
        rel = f"d{i % N_DOCS}"
        q = f"q{i}"
        queries[q] = f"find document number {i % N_DOCS}"
        qrels[q] = {rel: 1}
        others = [d["_id"] for d in docs if d["_id"] != rel]
        order = others[:2] + [rel] + others[2:]  # BM25 ranks the relevant document third
        first[q] = {d: float(N_DOCS - r) for r, d in enumerate(order)}
    return ds, TuneSet(first=first, queries=queries, qrels=qrels)


def _decide(ds: object, tune: TuneSet, trained: Scorer, start: Scorer | None, **kw: object) -> object:
    loaders = {"trained": lambda: trained}
    if start is not None:
        loaders["start"] = lambda: start
    decision, _ = decide(ds, tune, loaders, depth=N_DOCS, alphas=[0.0, 0.5, 1.0], **kw)  # type: ignore[arg-type]
    return decision


def test_the_trained_model_replaces_the_start_only_when_significantly_better(tmp_path: Path) -> None:
    ds, tune = _tune_set(tmp_path, 40)
    good, bad = Oracle(0.0), Oracle(1.0, seed=3)
    d = _decide(ds, tune, good, bad)
    assert d.model == "trained" and d.alpha_source == "tuned" and d.comparison["p"] < 0.05
    assert "fuses better than the start model" in d.reason
    d = _decide(ds, tune, bad, good)
    assert d.model == "start" and "no better than" in d.reason
    d = _decide(ds, tune, good, Oracle(0.0))  # a tie: nothing shows the training paid
    assert d.model == "start" and d.comparison["gain"] == 0
    # a given weight is used as it is, and the evidence is measured at it
    d = _decide(ds, tune, good, bad, alpha=0.3)
    assert d.alpha == 0.3 and d.alpha_source == "given" and d.evidence["queries"] == 40
    # the chosen fusion against BM25 on the set: BM25 puts the relevant document third, the oracle first
    assert d.evidence["gain"] > 0.3 and d.evidence["p"] < 0.001 and d.evidence["ci95"][0] > 0


def test_a_set_too_small_keeps_the_start_model_and_the_fallback_weight(tmp_path: Path) -> None:
    ds, tune = _tune_set(tmp_path, 5)
    d = _decide(ds, tune, Oracle(0.0), Oracle(1.0), min_queries=30)
    assert (d.model, d.alpha, d.alpha_source) == ("start", FALLBACK_ALPHA, "fallback")
    assert "holds 5 queries, fewer than the 30" in d.reason
    # without a start model to fall back to, the trained one
    d = _decide(ds, tune, Oracle(0.0), None, min_queries=30)
    assert d.model == "trained" and d.alpha == FALLBACK_ALPHA
    # a threshold the user lowers lets the same set decide
    assert _decide(ds, tune, Oracle(0.0), Oracle(1.0, seed=5), min_queries=5, max_p=0.5).model == "trained"


def test_paired_gain_is_seeded_and_brackets_the_mean() -> None:
    x = [random.Random(i).random() for i in range(30)]
    y = [v - 0.1 for v in x]
    g = paired_gain(x, y, seed=1)
    assert g["gain"] == pytest.approx(0.1) and g["ci95"] == pytest.approx([0.1, 0.1]) and g["p"] < 1e-6
    assert paired_gain(x, x[::-1], seed=7) == paired_gain(x, x[::-1], seed=7)
    assert paired_gain([0.5], [0.4])["ci95"] is None
