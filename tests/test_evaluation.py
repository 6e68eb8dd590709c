"""Evaluation against values worked out by hand from trec_eval's definitions, and the significance tests.

Conventions of trec_eval checked here: documents ranked by score descending, ties by doc id descending;
unjudged documents are non-relevant; nDCG gain = grade (linear), discount log2(rank + 1); binary measures
count grade >= 1 as relevant; with -c, a judged query missing from the run scores 0.
"""

from __future__ import annotations

import itertools
import json
from math import log2, sqrt
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from inpars.cli import main
from inpars.datasets import load_dataset, write_run
from inpars.errors import ConfigError, LeakageError
from inpars.evaluation import (
    EvaluationResult,
    evaluate_dataset,
    evaluate_runs,
    parse_measures,
    permutation_pvalue,
    ttest_pvalue,
)
from inpars.records import Qrel, ScoredDoc


def _values(qrels: dict, run: dict, measures: str) -> dict[str, float]:
    return evaluate_runs(qrels, {"r": run}, measures=measures).aggregate["r"]


def test_ties_are_broken_by_doc_id_descending() -> None:
    qrels = {"q1": {"a": 1}}
    run = {"q1": {"a": 1.0, "b": 1.0, "c": 0.5}}
    # a and b tie; trec_eval orders them b, a (doc id descending): ranking b, a, c
    v = _values(qrels, run, "RR P@1 P@2 AP nDCG@10 RR@10 RR@1")
    assert v["RR"] == pytest.approx(1 / 2)
    assert v["P@1"] == 0.0
    assert v["P@2"] == pytest.approx(1 / 2)
    assert v["AP"] == pytest.approx(1 / 2)  # precision at the one relevant doc (rank 2) / 1 relevant
    assert v["nDCG@10"] == pytest.approx(1 / log2(3))  # DCG = 1/log2(2+1); ideal DCG = 1/log2(1+1) = 1
    # RR@k is not in trec_eval; it must still see the same order
    assert v["RR@10"] == pytest.approx(1 / 2)
    assert v["RR@1"] == 0.0


def test_run_file_ranks_are_ignored_like_trec_eval(tmp_path: Path) -> None:
    # The rank column says a first, but a and b tie on score: trec_eval ranks b first.
    path = tmp_path / "r.trec"
    path.write_text("q1 Q0 a 1 1.0 t\nq1 Q0 b 2 1.0 t\n")
    assert evaluate_runs({"q1": {"a": 1}}, {"r": path}, measures="RR").aggregate["r"]["RR"] == pytest.approx(0.5)
    # our writer writes the order trec_eval uses
    write_run(tmp_path / "w.trec", {"q1": {"a": 1.0, "b": 1.0}})
    assert [line.split()[2] for line in (tmp_path / "w.trec").read_text().splitlines()] == ["b", "a"]


def test_unjudged_documents_ap_recall_rr() -> None:
    # 3 relevant documents (d1, d2, d9); d3 judged non-relevant; d5, d7 unjudged; d9 never retrieved.
    qrels = {"q1": {"d1": 1, "d2": 1, "d3": 0, "d9": 1}}
    run = {"q1": {"d5": 5.0, "d1": 4.0, "d3": 3.0, "d2": 2.0, "d7": 1.0}}
    # ranking: d5 (unjudged), d1 (rel), d3 (non-rel), d2 (rel), d7 (unjudged); relevant at ranks 2 and 4
    v = _values(qrels, run, "AP P@5 R@2 R@5 RR RR@1 nDCG@5 nDCG@3")
    assert v["AP"] == pytest.approx((1 / 2 + 2 / 4) / 3)  # sum of precisions at relevant ranks / 3 relevant
    assert v["P@5"] == pytest.approx(2 / 5)
    assert v["R@2"] == pytest.approx(1 / 3)
    assert v["R@5"] == pytest.approx(2 / 3)
    assert v["RR"] == pytest.approx(1 / 2)
    assert v["RR@1"] == 0.0
    ideal5 = 1 + 1 / log2(3) + 1 / log2(4)  # three relevant documents at ranks 1-3
    assert v["nDCG@5"] == pytest.approx((1 / log2(3) + 1 / log2(5)) / ideal5)
    assert v["nDCG@3"] == pytest.approx((1 / log2(3)) / ideal5)  # ideal@3 is the same three documents


def test_graded_ndcg_uses_linear_gain() -> None:
    qrels = {"q": {"a": 2, "b": 1, "c": 0}}
    run = {"q": {"c": 3.0, "b": 2.0, "a": 1.0}}
    v = _values(qrels, run, "nDCG@10 P@2 P(rel=2)@3 R@2")
    dcg = 0 / log2(2) + 1 / log2(3) + 2 / log2(4)  # gains are the grades: c 0, b 1, a 2
    ideal = 2 / log2(2) + 1 / log2(3)
    assert v["nDCG@10"] == pytest.approx(dcg / ideal)  # 0.6199...
    exponential = (1 / log2(3) + 3 / log2(4)) / (3 + 1 / log2(3))  # 2^rel - 1 gains would give 0.5869...
    assert v["nDCG@10"] != pytest.approx(exponential)
    assert v["P@2"] == pytest.approx(1 / 2)  # c, b: b has grade 1 >= 1
    assert v["P(rel=2)@3"] == pytest.approx(1 / 3)  # only a reaches grade 2
    assert v["R@2"] == pytest.approx(1 / 2)  # b of {a, b}


def test_missing_queries_count_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}  # q3 has no relevant document
    run = {"q1": {"a": 2.0, "x": 1.0}, "q3": {"c": 1.0}, "q4": {"a": 1.0}, "q5": {}}  # q4, q5: not judged
    res = evaluate_runs(qrels, {"r": run}, measures="RR nDCG@10 R@10")
    assert res.per_query["r"]["RR"] == {"q1": 1.0, "q2": 0.0, "q3": 0.0}
    # mean over the three judged queries (trec_eval -c), not over the two that the run answers
    assert res.aggregate["r"] == {"RR": pytest.approx(1 / 3), "nDCG@10": pytest.approx(1 / 3), "R@10": pytest.approx(1 / 3)}
    assert res.query_ids == ["q1", "q2", "q3"]
    assert res.unanswered == {"r": 1}
    # a restricted query set
    sub = evaluate_runs(qrels, {"r": run}, measures="RR", query_ids=["q2", "q1", "q9"])
    assert sub.query_ids == ["q2", "q1"] and sub.aggregate["r"]["RR"] == pytest.approx(1 / 2)
    # an empty run scores 0 everywhere
    assert evaluate_runs(qrels, {"r": {}}, measures="RR").aggregate["r"]["RR"] == 0.0


def test_inputs_as_records_and_trec_names() -> None:
    qrels = [Qrel("q1", "a", 1), Qrel("q1", "b", 0)]
    run = [ScoredDoc("q1", "b", 2.0), ScoredDoc("q1", "a", 1.0)]
    v = evaluate_runs(qrels, {"r": run}, measures=["map", "P_1", "ndcg_cut_10"]).aggregate["r"]
    assert v == {"AP": pytest.approx(1 / 2), "P@1": 0.0, "nDCG@10": pytest.approx(1 / log2(3))}
    assert [str(m) for m in parse_measures("nDCG@10, R@100 nDCG(dcg='exp-log2')@10")] == [
        "nDCG@10",
        "R@100",
        "nDCG(dcg='exp-log2')@10",
    ]


def test_bad_arguments() -> None:
    qrels = {"q1": {"a": 1}}
    with pytest.raises(ConfigError, match="unknown evaluation measure 'nDGC@10'"):
        evaluate_runs(qrels, {"r": {}}, measures="nDGC@10")
    with pytest.raises(ConfigError, match="baseline 'bm25' is not among the runs"):
        evaluate_runs(qrels, {"r": {}}, baseline="bm25")
    with pytest.raises(ConfigError, match="unknown significance test"):
        evaluate_runs(qrels, {"r": {}, "s": {}}, baseline="r", tests=["wilcoxon"])


# ---------------------------------------------------------------------------------- significance

# Six queries, one relevant document each; P@1 per query is 1 when the run ranks it first.
QRELS6 = {f"q{i}": {"rel": 1} for i in range(1, 7)}


def _p1_run(hits: list[int]) -> dict[str, dict[str, float]]:
    return {f"q{i}": ({"rel": 2.0, "x": 1.0} if h else {"x": 2.0, "rel": 1.0}) for i, h in enumerate(hits, start=1)}


def test_paired_tests_by_hand() -> None:
    system = [1, 1, 1, 1, 1, 0]
    base = [1, 1, 0, 0, 0, 1]
    res = evaluate_runs(
        QRELS6, {"base": _p1_run(base), "sys": _p1_run(system)}, measures="P@1", baseline="base", seed=3
    )
    assert res.per_query["sys"]["P@1"] == dict(zip(QRELS6, map(float, system), strict=True))
    # differences 0 0 1 1 1 -1: mean 1/3; sample variance ((1/3)^2 * 2 + (2/3)^2 * 3 + (4/3)^2) / 5 = 2/3
    mean, sd = 1 / 3, sqrt(2 / 3)
    t = mean / (sd / sqrt(6))  # = 1.0
    assert t == pytest.approx(1.0)
    p_t = 2 * stats.t.sf(abs(t), df=5)
    assert res.pvalues["sys"]["P@1"]["ttest"] == pytest.approx(p_t)
    assert res.pvalues["sys"]["P@1"]["ttest"] == pytest.approx(stats.ttest_rel(system, base).pvalue)
    # exact randomisation test: 2^6 sign flips; the zeros do not matter, the four +-1 give sums
    # 4 (1 way), 2 (4), 0 (6), -2 (4), -4 (1); |sum| >= 2 in 10 of 16 cases
    assert res.pvalues["sys"]["P@1"]["permutation"] == pytest.approx(10 / 16)
    assert "base" not in res.pvalues
    assert res.delta("sys", "P@1") == pytest.approx(1 / 3)


def _exact_sign_flip_p(x: np.ndarray, y: np.ndarray) -> float:
    d = x - y
    observed = abs(d.mean())
    signs = np.array(list(itertools.product([1, -1], repeat=len(d))))
    means = np.abs((signs * d).mean(axis=1))
    return float(np.mean(means >= observed - 1e-12))


def test_sampled_permutation_close_to_exact() -> None:
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, 14)
    y = x - rng.normal(0.12, 0.25, 14)
    exact = _exact_sign_flip_p(x, y)  # 16384 sign patterns
    sampled = permutation_pvalue(x, y, permutations=4000, seed=0)  # fewer than 2^14: sampled
    assert 0.02 < exact < 0.5
    assert sampled == pytest.approx(exact, abs=0.025)  # 3 standard errors of a 4000-sample estimate
    assert permutation_pvalue(x, y, permutations=4000, seed=0) == sampled  # seeded
    assert permutation_pvalue(x, y, permutations=20000, seed=0) == pytest.approx(exact)  # exact: 2^14 <= 20000
    assert ttest_pvalue(x, y) == pytest.approx(stats.ttest_rel(x, y).pvalue)
    assert ttest_pvalue(x, x) == 1.0 and permutation_pvalue(x, x) == 1.0  # no difference at all


# --------------------------------------------------------------------------------------- outputs


def test_outputs_and_json_round_trip(tmp_path: Path) -> None:
    runs = {"base": _p1_run([1, 1, 0, 0, 0, 1]), "sys": _p1_run([1, 1, 1, 1, 1, 1])}
    res = evaluate_runs(QRELS6, runs, measures="P@1 RR", baseline="base", permutations=1000)
    text = res.to_text()
    assert text.splitlines()[0].split() == ["run", "P@1", "RR"]
    assert "0.5000" in text and "1.0000" in text and "6 queries" in text
    md = res.to_markdown()
    assert "| run | P@1 | RR |" in md and "| base | 0.5000 | 0.7500 |" in md
    assert "| sys | P@1 | 1.0000 | +0.5000 |" in md
    obj = json.loads(json.dumps(res.to_json()))
    assert obj["per_query"]["sys"]["P@1"]["q3"] == 1.0 and obj["missing_queries"] == "zero"
    assert EvaluationResult.from_json(obj).to_markdown() == md
    res.save(tmp_path / "m.json", tmp_path / "m.md")
    assert json.loads((tmp_path / "m.json").read_text())["aggregate"]["sys"]["P@1"] == 1.0
    assert (tmp_path / "m.md").read_text() == md


def test_evaluate_dataset_reads_test_qrels_inside_the_guard(tiny_beir: Path) -> None:
    ds = load_dataset(tiny_beir)
    run = {"q3": {"d5": 1.0}, "q4": {"d1": 2.0, "d4": 1.0}}
    res = evaluate_dataset(ds, "test", {"r": run}, measures="RR")
    assert res.per_query["r"]["RR"] == {"q3": 1.0, "q4": 0.5}
    with pytest.raises(LeakageError):
        ds.qrels("test")  # still guarded outside evaluation


def test_cli_evaluate(tmp_path: Path, tiny_beir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path / "a.trec", {"q3": {"d5": 1.0}, "q4": {"d1": 2.0, "d4": 1.0}})
    write_run(tmp_path / "b.trec", {"q3": {"d5": 1.0}, "q4": {"d4": 1.0}})
    args = ["evaluate", "--dataset", str(tiny_beir), str(tmp_path / "a.trec"), str(tmp_path / "b.trec")]
    assert main([*args, "--measures", "RR P@1", "--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert "vs a" in out  # without --baseline and without a 'bm25' run, the first run is the baseline
    obj = json.loads((tmp_path / "e.json").read_text())
    assert obj["aggregate"] == {"a": {"RR": 0.75, "P@1": 0.5}, "b": {"RR": 1.0, "P@1": 1.0}}
    qrels = tmp_path / "q.txt"
    qrels.write_text("q3 0 d5 1\nq4 0 d4 1\n")
    assert main(["evaluate", "--qrels", str(qrels), str(tmp_path / "b.trec"), "--names", "mine"]) == 0
    assert capsys.readouterr().out.splitlines()[2].split() == ["mine", "1.0000", "1.0000", "1.0000", "1.0000"]
    assert main(["evaluate", "--qrels", str(qrels), str(tmp_path / "b.trec"), "--baseline", "zzz"]) == 2
    assert "baseline 'zzz'" in capsys.readouterr().err


# ------------------------------------------------------------- counts, BEIR's identical ids, run formats


def test_count_measures_are_trec_eval_totals() -> None:
    import pytrec_eval

    qrels = {"q1": {"d1": 1, "d2": 0, "d6": 2}, "q2": {"d3": 1}, "q3": {"d4": 2, "d5": 1}}
    run = {"q1": {"d1": 1.0, "d5": 0.5, "d6": 0.2}, "q2": {"d9": 1.0}, "q3": {"d4": 3.0}}
    measures = "num_q num_ret num_rel num_rel_ret"
    got = _values(qrels, run, measures)
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"num_q", "num_ret", "num_rel", "num_rel_ret"}).evaluate(run)
    totals = {m: sum(v[m] for v in per_query.values()) for m in ("num_q", "num_ret", "num_rel", "num_rel_ret")}
    assert totals == {"num_q": 3, "num_ret": 5, "num_rel": 5, "num_rel_ret": 3}
    assert got == {"NumQ": 3.0, "NumRet": 5.0, "NumRel": 5.0, "NumRet(rel=1)": 3.0}
    # trec_eval -c: a judged query the run does not answer still counts in num_q and num_rel
    del run["q3"]
    assert _values(qrels, run, measures) == {"NumQ": 3.0, "NumRet": 4.0, "NumRel": 5.0, "NumRet(rel=1)": 2.0}
    assert _values(qrels, run, "nDCG@10 num_q")["nDCG@10"] < 1  # means stay means


def test_identical_ids_kept_like_trec_eval_or_dropped_like_beir(caplog: pytest.LogCaptureFixture) -> None:
    # ArguAna-like: the query is itself a corpus document and BM25 finds it first
    qrels = {"a1": {"a2": 1}, "b1": {"b2": 1}}
    run = {"a1": {"a1": 9.0, "a2": 5.0}, "b1": {"b1": 9.0, "x": 6.0, "b2": 5.0}}
    with caplog.at_level("WARNING"):
        kept = evaluate_runs(qrels, {"r": run}, measures="RR").aggregate["r"]["RR"]
    assert kept == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert "2 of 2 queries retrieve a document whose id is the query id" in caplog.text
    dropped = evaluate_runs(qrels, {"r": run}, measures="RR", ignore_identical_ids=True).aggregate["r"]["RR"]
    assert dropped == pytest.approx((1 + 1 / 2) / 2)


def test_gzip_and_msmarco_runs_evaluate_alike(tmp_path: Path) -> None:
    import gzip

    qrels = {"q1": {"d2": 1}, "q2": {"d3": 1}}
    run = {"q1": {"d1": 3.0, "d2": 2.0}, "q2": {"d3": 1.0}}
    write_run(tmp_path / "r.trec", run)
    (tmp_path / "r.trec.gz").write_bytes(gzip.compress((tmp_path / "r.trec").read_bytes()))
    (tmp_path / "r.tsv").write_text("q1\td1\t1\nq1\td2\t2\nq2\td3\t1\n")
    results = {p: evaluate_runs(qrels, {"r": tmp_path / p}, measures="RR nDCG@10").aggregate["r"]
               for p in ("r.trec", "r.trec.gz", "r.tsv")}
    assert results["r.trec"] == results["r.trec.gz"] == results["r.tsv"]
    assert results["r.tsv"]["RR"] == pytest.approx(0.75)


def test_cli_evaluate_ignore_identical_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "q.qrels").write_text("a1 0 a2 1\n")
    write_run(tmp_path / "r.trec", {"a1": {"a1": 9.0, "a2": 5.0}})
    assert main(["evaluate", str(tmp_path / "r.trec"), "--qrels", str(tmp_path / "q.qrels"), "--measures", "RR",
                 "--ignore-identical-ids", "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["aggregate"]["r"]["RR"] == 1.0
