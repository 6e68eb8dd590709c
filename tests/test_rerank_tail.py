"""Reranking the top `depth` keeps the first stage's tail below it, so deep recall is not cut."""

from __future__ import annotations

from inpars.datasets import ranked
from inpars.rerank import append_tail, interpolate


def test_tail_follows_reranked_in_first_stage_order() -> None:
    first = {"q": {"a": 9.0, "b": 8.0, "c": 7.0, "d": 7.0, "e": 1.0}, "r": {"x": 1.0}}
    reranked = {"q": {"b": 0.2, "a": -0.5}, "r": {"x": 3.0}}
    out = append_tail(reranked, first, depth=2)
    # trec_eval order of the first stage's tail: c and d tie at 7.0 -> doc id descending: d, c; then e
    assert [d for d, _ in ranked(out["q"])] == ["b", "a", "d", "c", "e"]
    assert out["r"] == {"x": 3.0}
    assert len(set(out["q"].values())) == 5  # no ties introduced


def test_interpolated_run_with_tail_keeps_every_document() -> None:
    first = {"q": {f"d{i}": float(10 - i) for i in range(10)}}
    top = {"q": {"d0": 0.0, "d1": 1.0, "d2": 2.0}}
    out = append_tail(interpolate(first, top, 1.0), first, depth=3)
    assert [d for d, _ in ranked(out["q"])] == ["d2", "d1", "d0"] + [f"d{i}" for i in range(3, 10)]
