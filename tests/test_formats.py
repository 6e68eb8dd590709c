"""The original InPars toolkit's files, both ways. Fixtures are written with the original's own writer
code (github.com/zetaalphavector/InPars, cited per fixture) and ours are read back with its own reader."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from inpars.cli import main
from inpars.errors import InputError
from inpars.formats import (
    read_pairs,
    read_triples,
    sniff_training_format,
    text_id,
    write_pairs,
    write_triples,
)
from inpars.records import GeneratedQuery, TrainingExample
from inpars.training.common import load_training_examples

CORPUS = {
    "d1": "Vitamin D supplementation\nreduces respiratory infections.",
    "d2": 'Aspirin "lowers" the risk of heart attack; 50% of\tpatients',
    "d3": "Short sleep duration is linked to obesity in children.",
    "d4": "Statins reduce cholesterol and cardiovascular events.",
}
GENERATED = [  # what the toolkit's generate.py writes: query + doc_id (+ the corpus text)
    {"query": "does vitamin d\tprevent infections?", "doc_id": "d1"},
    {"query": 'is "aspirin" good for the heart', "doc_id": "d2"},
]


def original_triples(path: Path, seed: int = 1) -> None:
    """inpars/generate_triples.py (HEAD), the writer loop, with BM25 hits replaced by the other documents."""
    random.seed(seed)
    queries = []
    for row in GENERATED:
        query = " ".join(row["query"].split())  # Removes line breaks and tabs.
        queries.append((query, None, row["doc_id"]))
    results = {str(i): [d for d in CORPUS if d != q[2]] for i, q in enumerate(queries)}
    corpus = CORPUS
    with open(path, "w") as fout:
        writer = csv.writer(fout, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        for qid in results:
            hits = results[qid]
            query, log_probs, pos_doc_id = queries[int(qid)]
            sampled_ranks = random.sample(range(len(hits)), min(len(hits), 2 + 1))
            n_samples_so_far = 0
            for (rank, neg_doc_id) in enumerate(hits):
                if rank not in sampled_ranks:
                    continue
                pos_doc_text = corpus[pos_doc_id].replace("\n", " ").strip()
                neg_doc_text = corpus[neg_doc_id].replace("\n", " ").strip()
                writer.writerow([query, pos_doc_text, neg_doc_text])
                n_samples_so_far += 1
                if n_samples_so_far >= 2:
                    break


def original_reader(path: Path, names: tuple[str, ...]) -> list[dict]:
    """inpars/train.py (HEAD): how the original trainer reads triples and pairs."""
    from datasets import load_dataset

    dataset = load_dataset("csv", data_files=str(path), sep="\t", names=names,
                           cache_dir=str(path.parent / "hf-cache"))  # (not in the original: keeps the test's cache local)
    return list(dataset["train"])


def test_reads_the_originals_triples(tmp_path: Path) -> None:
    path = tmp_path / "triples.tsv"
    original_triples(path)
    examples = read_triples(path)
    assert [ex.query for ex in examples] == ["does vitamin d prevent infections?", 'is "aspirin" good for the heart']
    assert examples[0].positive == "Vitamin D supplementation reduces respiratory infections."
    assert examples[1].positive == CORPUS["d2"]  # quotes and a TAB inside a field survive, as csv quotes them
    assert all(len(ex.negatives) == 2 and ex.positive not in ex.negatives for ex in examples)
    assert examples[0].pos_doc_id == text_id(examples[0].positive) and examples[0].pos_doc_id.startswith("tsv:")
    # the same rows as the original's own reader gives
    rows = original_reader(path, ("query", "positive", "negative"))
    assert [(r["query"], r["positive"], r["negative"]) for r in rows] == [
        (ex.query, ex.positive, n) for ex in examples for n in ex.negatives]
    assert sniff_training_format(path) == "triples"
    assert load_training_examples(path, need_negatives=True) == examples


def test_reads_the_legacy_v1_triples(tmp_path: Path) -> None:
    """legacy/inpars-v1/generate_triples_train.py: a plain f-string writer (and the published v2 triples)."""
    path = tmp_path / "synthetic.triples.train.tsv"
    with open(path, "w") as fout:
        for question, doc_text, neg_doc_text in [("what is bm25", "BM25 ranks documents.", "Cats purr."),
                                                 ("what is bm25", "BM25 ranks documents.", "Dogs bark.")]:
            fout.write(f"{question}\t{doc_text}\t{neg_doc_text}\n")
    [ex] = load_training_examples(path)
    assert (ex.query, ex.positive, ex.negatives) == ("what is bm25", "BM25 ranks documents.", ["Cats purr.", "Dogs bark."])


def test_our_triples_and_pairs_read_by_the_original(tmp_path: Path) -> None:
    examples = [
        TrainingExample(query="q one\nsplit", pos_doc_id="d1", positive=CORPUS["d1"], neg_doc_ids=["d2", "d3"],
                        negatives=[CORPUS["d2"], CORPUS["d3"]]),
        TrainingExample(query='a "quoted" query', pos_doc_id="d4", positive=CORPUS["d4"], neg_doc_ids=["d1"],
                        negatives=[CORPUS["d1"]]),
    ]
    triples = tmp_path / "ours.triples.tsv"
    assert write_triples(triples, examples) == 3
    rows = original_reader(triples, ("query", "positive", "negative"))
    assert rows[0] == {"query": "q one split", "positive": CORPUS["d1"].replace("\n", " "), "negative": CORPUS["d2"]}
    assert rows[2]["query"] == 'a "quoted" query' and len(rows) == 3
    back = read_triples(triples)
    assert [len(ex.negatives) for ex in back] == [2, 1]

    pairs = tmp_path / "ours.pairs.tsv"
    assert write_pairs(pairs, examples) == 5
    rows = original_reader(pairs, ("query", "passage", "label"))
    assert [int(r["label"]) for r in rows] == [1, 0, 0, 1, 0]  # the original indexes [false, true] with it
    assert sniff_training_format(pairs) == "pairs"
    back = read_pairs(pairs)
    assert [(ex.query, len(ex.negatives)) for ex in back] == [("q one split", 2), ('a "quoted" query', 1)]


def test_bad_tsv_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("q\tpos\tneg\nq\tpos\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.tsv:2: expected 3 TAB-separated columns"):
        read_triples(path)
    pairs = tmp_path / "bad_pairs.tsv"
    pairs.write_text("q\tpos\t1\nq\tneg\t2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad_pairs.tsv:2: field 'label': label must be 0 or 1"):
        read_pairs(pairs)


def test_inpars_v1_generated_queries(tmp_path: Path) -> None:
    """legacy/inpars-v1/generate_queries_openai.py: its output dict, written with json.dumps, one a line."""
    path = tmp_path / "scifacts_synthetic_queries_100k.jsonl"
    with open(path, "w") as fout:
        for doc_id, doc_text, question in [("d1", CORPUS["d1"], "Does vitamin D help?"), ("d3", CORPUS["d3"], "Sleep?")]:
            output_dict = {"doc_id": doc_id, "doc_text": doc_text, "question": question,
                           "log_probs": [-0.5, -0.25]}
            fout.write(json.dumps(output_dict) + "\n")
    q = GeneratedQuery.from_json(json.loads(path.read_text().splitlines()[0]))
    assert (q.query, q.doc_id, q.mean_log_prob) == ("Does vitamin D help?", "d1", -0.375)
    assert "question" not in q.to_json() and q.extra["doc_text"] == CORPUS["d1"]
    examples = load_training_examples(path)  # positives only, as the published files are
    assert [(ex.query, ex.pos_doc_id, ex.positive) for ex in examples][1] == ("Sleep?", "d3", CORPUS["d3"])


def test_cli_train_reads_triples_and_export_writes_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "triples.tsv"
    original_triples(src)
    out = tmp_path / "again.tsv"
    assert main(["export", "--format", "original-triples", "--train", str(src), "-o", str(out)]) == 0
    assert "4 lines" in capsys.readouterr().out
    assert out.read_text() == src.read_text()  # our writer is the original's, byte for byte
    assert main(["export", "--format", "original-pairs", "--generated", str(src), "-o", str(out)]) == 2


def test_cli_train_on_the_originals_triples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fakes import tiny_cross_encoder

    src = tmp_path / "triples.tsv"
    original_triples(src)
    model = tiny_cross_encoder(tmp_path / "tiny")
    assert main(["train", "--train", str(src), "--out", str(tmp_path / "ce"), "--model", model, "--max-steps", "1",
                 "--batch-size", "2", "--max-length", "64", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "for 1 steps on 2 examples" in out and (tmp_path / "ce" / "model").is_dir()


def test_reads_inpars_v2_monot5_pairs(tmp_path: Path) -> None:
    """InPars-v2's train_inpars.py turns triples into monoT5 text pairs with pygaggle's
    create_msmarco_monot5_train.py; its writer lines, as they are there:"""
    triples = tmp_path / "synth.synthetic.triples.train.tsv"
    triples.write_text("what is bm25\tBM25 ranks documents.\tCats purr.\nwhat is bm25\tBM25 ranks documents.\tDogs bark.\n")
    out = tmp_path / "synth.query_doc_pairs.train.tsv"
    with open(out, "w") as fout_t5:
        for line in triples.read_text().splitlines(keepends=True):  # (the original: open(args.triples_train))
            query, positive_document, negative_document = line.strip().split("\t")
            fout_t5.write(f"Query: {query} Document: {positive_document} Relevant:\ttrue\n")
            fout_t5.write(f"Query: {query} Document: {negative_document} Relevant:\tfalse\n")
    assert sniff_training_format(out) == "monot5"
    [ex] = load_training_examples(out, need_negatives=True)
    assert (ex.query, ex.positive, ex.negatives) == ("what is bm25", "BM25 ranks documents.", ["Cats purr.", "Dogs bark."])
    bad = tmp_path / "bad.tsv"
    bad.write_text("Query: q Document: d Relevant:\ttrue\nQuery: q Document: e Relevant:\tmaybe\n")
    with pytest.raises(InputError, match="bad.tsv:2: field 'label': label must be true or false"):
        load_training_examples(bad)
