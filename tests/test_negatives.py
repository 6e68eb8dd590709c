"""Negatives: never a positive, seeded per query, BM25 depth / skip_top, random method, fallback, CLI."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest

from conftest import write_beir
from inpars.cli import main
from inpars.datasets import load_dataset, ranked
from inpars.errors import ConfigError, InputError
from inpars.negatives import mine_negatives
from inpars.records import GeneratedQuery
from inpars.retrieval import get_index


def rec(doc_id: str, query: str, **extra: object) -> GeneratedQuery:
    """A record; ``query_index`` goes to its field, any other keyword (``query_id``) to ``extra``."""
    return GeneratedQuery.from_json({"doc_id": doc_id, "query": query, "log_probs": [-0.5], **extra})


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def negs(path: Path) -> list[list[str]]:
    return [r["neg_doc_ids"] for r in read_out(path)]


def inpars_toolkit_sample(hits: list[str], n_samples: int, rng: random.Random) -> list[str]:
    """The sampling of the original toolkit's generate_triples.py (reimplemented): no positive check."""
    sampled = rng.sample(range(len(hits)), min(len(hits), n_samples + 1))
    return [d for rank, d in enumerate(hits) if rank in sampled][:n_samples]


def test_positive_is_never_drawn(tiny_beir: Path, tmp_path: Path) -> None:
    # 'aspirin heart attack sleep': d3 matches three terms and ranks first; d5 and d6 match 'sleep'.
    query = "aspirin heart attack sleep"
    index = get_index(tiny_beir, tmp_path / "idx")
    top2 = [d for d, _ in ranked(index.search({"q": query}, k=2)["q"])]
    assert top2[0] == "d3" and len(top2) == 2
    other = top2[1]
    # The original sampling draws the positive d3 from these hits (here: always, as it keeps the best
    # ranked of n + 1 sampled ranks); this test would catch that bug.
    assert any(inpars_toolkit_sample(top2, 1, random.Random(s)) == ["d3"] for s in range(20))
    out = tmp_path / "t.jsonl"
    for seed in range(40):
        s = mine_negatives([rec("d3", query)], out, dataset=tiny_beir, depth=2, seed=seed, index_dir=tmp_path / "idx")
        assert negs(out) == [[other]]
        assert s.n_positives_excluded == 1 and s.n_fallback == 0


def test_documents_with_the_positives_text_are_excluded(tmp_path: Path) -> None:
    docs = [
        {"_id": "a", "title": "Aspirin", "text": "Aspirin lowers heart attack risk."},
        {"_id": "a2", "title": "Aspirin", "text": "Aspirin lowers  heart attack risk."},  # same text
        {"_id": "b", "title": "Heart", "text": "The heart pumps blood."},
        {"_id": "c", "title": "Sleep", "text": "Sleep is good."},
        {"_id": "d", "title": "Diet", "text": "Vegetables are healthy."},
    ]
    root = write_beir(tmp_path / "dup", docs, [{"_id": "q", "text": "x"}], {})
    out = tmp_path / "t.jsonl"
    seen: set[str] = set()
    for seed in range(30):
        s = mine_negatives(
            [rec("a", "aspirin heart attack")], out, dataset=root, n_negatives=2, seed=seed, index_dir=tmp_path / "i"
        )
        (neg,) = negs(out)
        assert len(neg) == 2 and "b" in neg and not {"a", "a2"} & set(neg)
        seen.update(neg)
        # BM25 finds a, a2, b: one usable candidate for two negatives, so one is drawn at random.
        assert s.n_fallback == 1 and s.n_positives_excluded == 2
    assert seen == {"b", "c", "d"}


def test_judged_documents_of_real_train_queries_are_excluded(tiny_beir: Path, tmp_path: Path) -> None:
    # Train qrels: q1 'does vitamin d prevent infections' -> d1; q2 'aspirin heart attack risk' -> d3.
    out = tmp_path / "t.jsonl"
    idx = tmp_path / "idx"
    records = [
        rec("d2", "Does vitamin D prevent infections?"),  # the text of q1 (normalised): d1 excluded
        rec("d4", "aspirin heart attack statins", query_id="q2"),  # real query q2 by id: d3 excluded
    ]
    for seed in range(15):
        mine_negatives(records, out, dataset=tiny_beir, n_negatives=2, seed=seed, index_dir=idx, qrels_split="train")
        n1, n2 = negs(out)
        assert not {"d1", "d2"} & set(n1) and not {"d3", "d4"} & set(n2)
    # Without the judgements, d1 is BM25's only other candidate for the first record.
    mine_negatives(records, out, dataset=tiny_beir, n_negatives=1, seed=1, index_dir=idx, qrels_split=None)
    assert negs(out)[0] == ["d1"]


def test_test_judgements_are_never_read(tiny_beir: Path, tmp_path: Path) -> None:
    # q3 'sleep and obesity in children' -> d5 is a *test* judgement: it must not be used (or leak).
    out = tmp_path / "t.jsonl"
    s = mine_negatives(
        [rec("d6", "sleep and obesity in children")], out, dataset=tiny_beir, qrels_split="test", index_dir=tmp_path / "i"
    )
    assert s.n_examples == 1 and negs(out) == [["d5"]]  # d5 is BM25's only other hit


def test_deterministic_per_query_and_seeded(tiny_beir: Path, tmp_path: Path) -> None:
    docs = ["d1", "d2", "d3", "d4", "d5", "d6"]
    words = ["vitamin", "aspirin", "statins", "sleep", "exercise", "children", "heart", "cholesterol"]
    rng = random.Random(0)
    records = [
        rec(docs[i % 6], " ".join(rng.sample(words, 3)) + f" q{i}", query_index=i // 6) for i in range(30)
    ]
    idx = tmp_path / "idx"

    def run(recs: list[GeneratedQuery], seed: int) -> dict[str, list[str]]:
        out = tmp_path / "t.jsonl"
        mine_negatives(recs, out, dataset=tiny_beir, n_negatives=2, depth=6, seed=seed, index_dir=idx)
        return {r["query_id"]: r["neg_doc_ids"] for r in read_out(out)}

    first = run(records, 1)
    assert run(records, 1) == first
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    assert run(shuffled, 1) == first  # each query's draw does not depend on the order
    assert run(records[:7], 1) == {k: v for k, v in first.items() if k in run(records[:7], 1)}
    assert run(records, 2) != first
    for r in records:
        assert r.doc_id not in first[f"{r.doc_id}-{r.query_index}"]


def test_skip_top_and_depth_bound_the_candidates(tiny_beir: Path, tmp_path: Path) -> None:
    query = "vitamin aspirin statins sleep"
    idx = tmp_path / "idx"
    ranking = [d for d, _ in get_index(tiny_beir, idx).search_one(query, k=10)]
    assert len(ranking) == 6 and ranking[0] != "d6"
    window = [d for d in ranking[2:4] if d != "d6"]
    out = tmp_path / "t.jsonl"
    seen: set[str] = set()
    for seed in range(30):
        mine_negatives([rec("d6", query)], out, dataset=tiny_beir, depth=4, skip_top=2, seed=seed, index_dir=idx)
        seen.update(negs(out)[0])
    assert seen == set(window)  # only ranks 3-4, both drawn over the seeds
    with pytest.raises(ConfigError, match="skip_top"):
        mine_negatives([rec("d6", query)], out, dataset=tiny_beir, depth=4, skip_top=4)


def test_fallback_to_random_is_counted_and_logged(
    tiny_beir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "t.jsonl"
    with caplog.at_level(logging.WARNING, logger="inpars.negatives"):
        s = mine_negatives(
            [rec("d3", "aspirin patients"), rec("d1", "vitamin supplementation")],
            out,
            dataset=tiny_beir,
            n_negatives=3,
            index_dir=tmp_path / "idx",
        )
    # 'aspirin patients' matches d3 alone; 'vitamin supplementation' matches d1 and d2.
    n1, n2 = negs(out)
    assert len(set(n1)) == 3 and "d3" not in n1
    assert len(set(n2)) == 3 and "d2" in n2 and "d1" not in n2
    assert (s.n_fallback, s.n_short, s.n_negatives) == (2, 0, 6)
    assert "topped up with random documents" in caplog.text


def test_random_method_and_short_corpus(tiny_beir: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    s = mine_negatives([rec("d1", "anything at all")], out, dataset=tiny_beir, method="random", n_negatives=3, seed=5)
    (neg,) = negs(out)
    assert len(set(neg)) == 3 and "d1" not in neg and s.n_fallback == 0
    seen = set()
    for seed in range(30):
        mine_negatives([rec("d1", "anything at all")], out, dataset=tiny_beir, method="random", seed=seed)
        seen.update(negs(out)[0])
    assert seen == {"d2", "d3", "d4", "d5", "d6"}
    # Six documents, one positive: at most five negatives.
    s = mine_negatives([rec("d1", "vitamin")], out, dataset=tiny_beir, method="random", n_negatives=10)
    assert sorted(negs(out)[0]) == ["d2", "d3", "d4", "d5", "d6"] and s.n_short == 1


def test_output_format_and_bad_input(tiny_beir: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    records = [rec("d3", "aspirin heart attack sleep", query_index=2), rec("d5", "sleep obesity"), rec("d1", " ")]
    s = mine_negatives(records, out, dataset=tiny_beir, index_dir=tmp_path / "idx")
    ex = read_out(out)
    docs = load_dataset(tiny_beir).docs()
    assert [e["query_id"] for e in ex] == ["d3-2", "d5-0"]
    assert ex[0]["positive"] == docs["d3"].full_text == "Aspirin Aspirin lowers the risk of heart attack in older patients."
    assert ex[0]["negatives"] == [docs[d].full_text for d in ex[0]["neg_doc_ids"]]
    assert set(ex[0]) == {"query_id", "query", "pos_doc_id", "positive", "neg_doc_ids", "negatives"}
    assert (s.n_queries, s.n_examples, s.n_skipped_empty) == (3, 2, 1)
    with pytest.raises(InputError, match="'zz'"):
        mine_negatives([rec("zz", "q q")], out, dataset=tiny_beir, method="random")
    with pytest.raises(ConfigError, match="method"):
        mine_negatives([rec("d1", "q q")], out, dataset=tiny_beir, method="colbert")


def test_cli_negatives(tiny_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "f.jsonl"
    src.write_text(json.dumps({"doc_id": "d3", "query": "aspirin heart attack sleep", "query_index": 0}) + "\n")
    out = tmp_path / "t.jsonl"
    args = ["negatives", "-d", str(tiny_beir), "--in", str(src), "--out", str(out), "--index-dir", str(tmp_path / "i")]
    assert main([*args, "--depth", "2", "--seed", "3"]) == 0
    assert "wrote 1 training examples" in capsys.readouterr().out
    assert read_out(out)[0]["query_id"] == "d3-0" and len(negs(out)[0]) == 1
    assert main([*args, "--method", "random", "--n-negatives", "4"]) == 0
    assert len(negs(out)[0]) == 4
    assert main([*args, "--depth", "2", "--skip-top", "2"]) == 2
    assert "skip_top" in capsys.readouterr().err


@pytest.mark.slow
def test_bm25_negatives_on_scifact(scifact_dir: Path, tmp_path: Path) -> None:
    ds = load_dataset(scifact_dir)
    qrels = ds.qrels_dict("train")
    texts = ds.queries("train")
    records = [rec(d, texts[q], query_index=0) for q in sorted(qrels) for d in sorted(qrels[q])]
    idx = tmp_path / "idx"
    out = tmp_path / "t.jsonl"
    s = mine_negatives(records, out, dataset=ds, n_negatives=4, depth=1000, seed=1, index_dir=idx, qrels_split="train")
    assert (s.n_examples, s.n_negatives, s.n_fallback, s.n_short) == (919, 3676, 0, 0)
    first_bytes = out.read_bytes()
    run = get_index(ds, idx).search({str(i): r.query for i, r in enumerate(records)}, k=1000)
    judged_by_text: dict[str, set[str]] = {}
    for q, docs in qrels.items():
        judged_by_text.setdefault(texts[q], set()).update(docs)
    for i, (r, ex) in enumerate(zip(records, read_out(out), strict=True)):
        judged = judged_by_text[r.query]
        # Never a positive, even one judged for the claim but written for another of its documents.
        assert not judged & set(ex["neg_doc_ids"]) and len(set(ex["neg_doc_ids"])) == 4
        assert set(ex["neg_doc_ids"]) <= set(run[str(i)])  # from the claim's BM25 top 1000
    # Claims judged for several documents put the other ones in the pool: they were excluded too.
    assert s.n_positives_excluded > len(records) * 0.9
    mine_negatives(records, out, dataset=ds, n_negatives=4, depth=1000, seed=1, index_dir=idx, qrels_split="train")
    assert out.read_bytes() == first_bytes


def test_dense_method_and_fused_teacher(tiny_beir: Path, tmp_path: Path) -> None:
    from inpars.fusion import minmax
    from inpars.rerank import load_scorer

    query = "aspirin heart attack sleep"
    out = tmp_path / "t.jsonl"
    kw = dict(dataset=tiny_beir, depth=10, index_dir=tmp_path / "idx", model="minilm-l6", max_length=64)
    s = mine_negatives([rec("d3", query)], out, method="dense", n_negatives=2, teacher="fused",
                       teacher_weight=0.25, **kw)
    row = read_out(out)[0]
    assert s.n_examples == 1 and len(row["neg_doc_ids"]) == 2 and "d3" not in row["neg_doc_ids"]
    # the teacher: min-max BM25 and min-max cosine over the BM25 hits and the group, weighted 0.75 / 0.25
    ds = load_dataset(tiny_beir)
    hits = get_index(tiny_beir, tmp_path / "idx").search({"q": query}, k=10)["q"]
    group = ["d3", *row["neg_doc_ids"]]
    cands = list(dict.fromkeys([*hits, *group]))
    scorer = load_scorer("minilm-l6", "bi-encoder", max_length=64)
    cos = dict(zip(cands, scorer.score([(query, ds.docs()[d].full_text) for d in cands]), strict=True))
    floor = min(hits.values())
    lex, sem = minmax({d: hits.get(d, floor) for d in cands}), minmax(cos)
    want = [0.75 * lex[d] + 0.25 * sem[d] for d in group]
    assert row["scores"] == pytest.approx(want, abs=1e-5)
    assert row["scores"][0] == max(row["scores"])  # the source document is the teacher's best here
    # dense: the negatives are the best-scored hits by cosine once the positive is excluded (skip_top 0)
    by_cos = [d for d, _ in ranked({d: cos[d] for d in hits}) if d != "d3"]
    assert set(row["neg_doc_ids"]) <= set(by_cos)
    mine_negatives([rec("d3", query)], out, method="bm25", n_negatives=2, **kw)
    assert "scores" not in read_out(out)[0]  # no teacher asked: no scores written
