"""Dataset loading: BEIR folders, the test-qrels guard, and an InputError for every kind of bad input."""

from __future__ import annotations

import json
import logging
import pickle
import urllib.error
import urllib.request
from dataclasses import fields
from pathlib import Path

import pytest

from conftest import write_beir
from inpars.datasets import (
    DATA_HOME_ENV,
    evaluation_access,
    load_dataset,
    ranked,
    read_qrels,
    read_run,
    read_run_dict,
    write_qrels,
    write_run,
)
from inpars.errors import InputError, LeakageError
from inpars.records import Qrel, Query, ScoredDoc

DOCS = [
    {"_id": "d1", "title": "T1", "text": "first"},
    {"_id": "d2", "title": "T2", "text": "second"},
    {"_id": "d3", "title": "T3", "text": "third"},
]
QUERIES = [{"_id": "q1", "text": "one"}, {"_id": "q2", "text": "two"}]
QRELS = {"test": [("q1", "d1", 1)], "train": [("q2", "d2", 1)]}


def _folder(tmp_path: Path, docs: list | None = None, queries: list | None = None) -> Path:
    return write_beir(tmp_path / "ds", DOCS if docs is None else docs, QUERIES if queries is None else queries, QRELS)


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _check(err: pytest.ExceptionInfo[InputError], path: Path, line: int, field: str | None) -> None:
    e = err.value
    assert e.path == str(path)
    assert e.line == line
    assert e.field == field
    assert str(path) in str(e) and f":{line}:" in str(e)
    if field is not None:
        assert f"field '{field}'" in str(e)


# ----------------------------------------------------------------------------------------- loading


def test_beir_folder_loads(tiny_beir: Path) -> None:
    ds = load_dataset(tiny_beir)
    assert ds.name == "tiny"
    docs = ds.docs()
    assert list(docs) == ["d1", "d2", "d3", "d4", "d5", "d6"]
    assert docs["d3"].title == "Aspirin"
    assert docs["d3"].full_text == "Aspirin Aspirin lowers the risk of heart attack in older patients."
    assert ds.splits() == ["test", "train"]
    assert ds.query_ids("test") == ["q3", "q4"]
    assert ds.queries("test") == {"q3": "sleep and obesity in children", "q4": "statins cholesterol"}
    assert list(ds.queries()) == ["q1", "q2", "q3", "q4"]
    assert ds.qrels("train") == [Qrel("q1", "d1", 1), Qrel("q2", "d3", 1)]
    assert ds.qrels_dict("train") == {"q1": {"d1": 1}, "q2": {"d3": 1}}


def test_query_metadata_never_exposed(tmp_path: Path) -> None:
    marker = "SECRET-RELEVANT-DOC"
    queries = [{"_id": "q1", "text": "one", "metadata": {marker: [{"label": "SUPPORT"}]}}, QUERIES[1]]
    ds = load_dataset(_folder(tmp_path, queries=queries))
    assert [f.name for f in fields(Query)] == ["query_id", "text"]
    loaded = (list(ds.queries_iter()), ds.queries(), ds.queries("train"), ds.docs(), ds.qrels("train"))
    assert marker not in repr(loaded)
    # Nothing the dataset object keeps after reading everything holds the metadata either.
    assert marker.encode() not in pickle.dumps(ds)


def test_test_qrels_guarded(tiny_beir: Path) -> None:
    ds = load_dataset(tiny_beir)
    with pytest.raises(LeakageError, match="reserved for evaluation"):
        ds.qrels("test")
    with pytest.raises(LeakageError):
        ds.qrels_dict("test")
    with evaluation_access():
        assert ds.qrels("test") == [Qrel("q3", "d5", 1), Qrel("q4", "d4", 1)]
    with pytest.raises(LeakageError):
        ds.qrels("test")  # the permission ends with the block
    # Ids and texts of the test queries carry no label and stay readable.
    assert ds.query_ids("test") == ["q3", "q4"]


def test_missing_split(tiny_beir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no 'dev' split.*splits: test, train"):
        load_dataset(tiny_beir).query_ids("dev")


@pytest.mark.slow
def test_real_scifact(scifact_dir: Path) -> None:
    ds = load_dataset(scifact_dir)
    assert sum(1 for _ in ds.docs_iter()) == 5183
    assert len(ds.queries("test")) == 300 and len(ds.queries("train")) == 809
    assert len(ds.queries()) == 1109
    assert len(ds.qrels("train")) == 919
    with pytest.raises(LeakageError):
        ds.qrels("test")
    with evaluation_access():
        assert len(ds.qrels("test")) == 339  # CRLF line ends are handled


# ---------------------------------------------------------------------------------------- names


def test_name_lookup_under_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_beir(tmp_path / "home" / "mini", DOCS, QUERIES, QRELS)
    monkeypatch.setenv(DATA_HOME_ENV, str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # 'mini' is not a folder of the working directory
    ds = load_dataset("mini")
    assert ds.name == "mini" and len(ds.docs()) == 3
    with pytest.raises(FileNotFoundError, match=r"dataset 'nosuch' not found.*home/nosuch' does not exist"):
        load_dataset("nosuch")


def test_not_found_without_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_HOME_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"set {DATA_HOME_ENV} to the folder that holds 'nosuch/'"):
        load_dataset("nosuch")


def test_offline_download_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_HOME_ENV, str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("nfcorpus")
    msg = str(err.value)
    assert "could not download BEIR 'nfcorpus'" in msg and "offline?" in msg and DATA_HOME_ENV in msg
    assert not (tmp_path / "home" / "nfcorpus").exists()
    assert list((tmp_path / "home").iterdir()) == []  # the temporary download folder is gone
    with pytest.raises(FileNotFoundError, match="not found"):
        load_dataset("nfcorpus", download=False)


# ----------------------------------------------------------------------------------- bad corpora


def test_malformed_json_line(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    corpus = root / "corpus.jsonl"
    _write_lines(corpus, [json.dumps(DOCS[0]), '{"_id": "d2", "text": "broken'])
    with pytest.raises(InputError) as err:
        list(load_dataset(root).docs_iter())
    _check(err, corpus, 2, None)
    assert "invalid JSON" in str(err.value)


def test_missing_id(tmp_path: Path) -> None:
    root = _folder(tmp_path, docs=[DOCS[0], DOCS[1], {"title": "no id", "text": "x"}])
    with pytest.raises(InputError) as err:
        list(load_dataset(root).docs_iter())
    _check(err, root / "corpus.jsonl", 3, "_id")


def test_missing_query_text(tmp_path: Path) -> None:
    root = _folder(tmp_path, queries=[QUERIES[0], {"_id": "q2"}])
    with pytest.raises(InputError) as err:
        load_dataset(root).queries()
    _check(err, root / "queries.jsonl", 2, "text")


def test_non_string_field(tmp_path: Path) -> None:
    root = _folder(tmp_path, docs=[DOCS[0], {"_id": "d2", "title": ["a", "list"], "text": "x"}])
    with pytest.raises(InputError) as err:
        list(load_dataset(root).docs_iter())
    _check(err, root / "corpus.jsonl", 2, "title")


def test_numeric_id_becomes_string(tmp_path: Path) -> None:
    root = _folder(tmp_path, docs=[{"_id": 42, "title": "", "text": "numeric id"}])
    assert list(load_dataset(root).docs()) == ["42"]


def test_duplicate_doc_id(tmp_path: Path) -> None:
    root = _folder(tmp_path, docs=[DOCS[0], DOCS[1], DOCS[2], {"_id": "d2", "text": "again"}])
    with pytest.raises(InputError, match="duplicate document id 'd2'") as err:
        list(load_dataset(root).docs_iter())
    _check(err, root / "corpus.jsonl", 4, "_id")


def test_duplicate_query_id(tmp_path: Path) -> None:
    root = _folder(tmp_path, queries=[QUERIES[0], QUERIES[1], {"_id": "q1", "text": "again"}])
    with pytest.raises(InputError, match="duplicate query id 'q1'") as err:
        load_dataset(root).queries()
    _check(err, root / "queries.jsonl", 3, "_id")


def test_non_utf8_bytes(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    corpus = root / "corpus.jsonl"
    corpus.write_bytes(json.dumps(DOCS[0]).encode() + b"\n" + b'{"_id": "d2", "text": "caf\xe9"}\n')
    with pytest.raises(InputError, match="invalid UTF-8") as err:
        list(load_dataset(root).docs_iter())
    _check(err, corpus, 2, None)
    qrels = tmp_path / "bad.qrels"
    qrels.write_bytes(b"q1 0 d1 1\nq1 0 d\xff 1\n")
    with pytest.raises(InputError, match="invalid UTF-8") as err2:
        read_qrels(qrels)
    _check(err2, qrels, 2, None)


def test_empty_texts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    docs = [DOCS[0], {"_id": "d2", "title": "", "text": ""}, {"_id": "d3", "text": "no title"}]
    queries = [QUERIES[0], {"_id": "q2", "text": "   "}]
    ds = load_dataset(_folder(tmp_path, docs=docs, queries=queries))
    with caplog.at_level(logging.INFO, logger="inpars.datasets"):
        loaded = ds.docs()
        qs = ds.queries()
    # documented: an empty document is kept (said once, with its line), an empty query is skipped (a warning)
    assert list(loaded) == ["d1", "d2", "d3"] and loaded["d2"].full_text == ""
    assert loaded["d3"].title == "" and loaded["d3"].full_text == "no title"
    assert list(qs) == ["q1"]
    text = caplog.text
    assert "1 document(s) with empty title and text (line 2 ('d2'))" in text
    assert "query 'q2' has empty text; skipped" in text


# ------------------------------------------------------------------------------------ runs, qrels


def test_run_with_five_columns(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "r.trec", ["q1 Q0 d1 1 2.5 tag", "q1 Q0 d2 2 1.5"])
    with pytest.raises(InputError, match="expected 6 columns.*got 5") as err:
        read_run(path)
    _check(err, path, 2, None)


def test_run_non_numeric_score(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "r.trec", ["q1 Q0 d1 1 2.5 tag", "q1 Q0 d2 2 high tag"])
    with pytest.raises(InputError, match="score must be a number, got 'high'") as err:
        read_run(path)
    _check(err, path, 2, "score")


def test_run_non_integer_rank(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "r.trec", ["q1 Q0 d1 first 2.5 tag"])
    with pytest.raises(InputError) as err:
        read_run(path)
    _check(err, path, 1, "rank")


def test_run_duplicate_doc(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "r.trec", ["q1 Q0 d1 1 2.5 t", "q2 Q0 d1 1 2.5 t", "q1 Q0 d1 3 0.5 t"])
    with pytest.raises(InputError, match="document 'd1' appears twice for query 'q1'") as err:
        read_run(path)
    _check(err, path, 3, "docid")


def test_qrels_wrong_column_count(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "q.txt", ["q1 0 d1 1", "q1 0 d2 1 extra"])
    with pytest.raises(InputError, match="got 5 columns") as err:
        read_qrels(path)
    _check(err, path, 2, None)


def test_qrels_non_integer_grade(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "q.tsv", ["query-id\tcorpus-id\tscore", "q1\td1\tyes"])
    with pytest.raises(InputError) as err:
        read_qrels(path)
    _check(err, path, 2, "relevance")


def test_qrels_duplicates(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    same = _write_lines(tmp_path / "same.txt", ["q1 0 d1 1", "q1 0 d2 0", "q1 0 d1 1"])
    with caplog.at_level(logging.WARNING, logger="inpars.datasets"):
        assert read_qrels(same) == [Qrel("q1", "d1", 1), Qrel("q1", "d2", 0)]
    assert "duplicate judgement (q1, d1) ignored" in caplog.text
    conflict = _write_lines(tmp_path / "conflict.txt", ["q1 0 d1 1", "q1 0 d2 0", "q1 0 d1 2"])
    with pytest.raises(InputError, match="judged twice with different grades 1 and 2") as err:
        read_qrels(conflict)
    _check(err, conflict, 3, "relevance")


def test_qrels_formats_round_trip(tmp_path: Path) -> None:
    rows = [Qrel("q1", "d1", 2), Qrel("q1", "d2", 0), Qrel("q10", "d3", 1)]
    for fmt in ("trec", "beir"):
        path = tmp_path / f"q.{fmt}"
        write_qrels(path, rows, fmt=fmt)
        assert read_qrels(path) == rows
    (tmp_path / "bom.tsv").write_bytes("\ufeffquery-id\tcorpus-id\tscore\r\nq1\td1\t1\r\n".encode())
    assert read_qrels(tmp_path / "bom.tsv") == [Qrel("q1", "d1", 1)]


def test_run_round_trip_in_trec_eval_order(tmp_path: Path) -> None:
    run = {"2": {"a": 1.0, "b": 3.0}, "10": {"x": 0.5}, "1": {"a": 2.0, "c": 2.0, "b": 2.0, "d": 9.0}}
    # trec_eval: score descending, ties by doc id descending
    assert ranked(run["1"]) == [("d", 9.0), ("c", 2.0), ("b", 2.0), ("a", 2.0)]
    path = tmp_path / "run.trec"
    write_run(path, run, tag="t", depth=3)
    lines = path.read_text().splitlines()
    assert [ln.split()[:4] for ln in lines] == [  # numeric query ids in numeric order
        ["1", "Q0", "d", "1"],
        ["1", "Q0", "c", "2"],
        ["1", "Q0", "b", "3"],
        ["2", "Q0", "b", "1"],
        ["2", "Q0", "a", "2"],
        ["10", "Q0", "x", "1"],
    ]
    assert all(ln.endswith(" t") for ln in lines)
    assert read_run(path)[0] == ScoredDoc("1", "d", 9.0)
    assert read_run_dict(path) == {"1": {"d": 9.0, "c": 2.0, "b": 2.0}, "2": {"b": 3.0, "a": 1.0}, "10": {"x": 0.5}}


# ------------------------------------------------------------------------------- corpus held by offsets


@pytest.fixture(autouse=False)
def offsets_always(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold every corpus as offsets, however small."""
    monkeypatch.setattr("inpars.datasets.EAGER_CORPUS_BYTES", 0)


def _corpus_folder(tmp_path: Path, n: int, bom: bool = False) -> Path:
    folder = tmp_path / "big"
    folder.mkdir()
    lines = [json.dumps({"_id": f"d{i}", "title": f"T{i % 7}", "text": f"ünïcode text {i} " * (1 + i % 5)})
             for i in range(n)]
    lines.insert(3, "")  # a blank line between documents
    (folder / "corpus.jsonl").write_bytes((b"\xef\xbb\xbf" if bom else b"") + "\n".join(lines).encode() + b"\n")
    return folder


@pytest.mark.parametrize("bom", [False, True])
def test_corpus_view_is_the_corpus_as_a_mapping(tmp_path: Path, bom: bool, offsets_always: None) -> None:
    from inpars.datasets import CorpusView

    ds = load_dataset(_corpus_folder(tmp_path, 50, bom=bom))
    eager = {d.doc_id: d for d in ds.docs_iter()}
    view = ds.docs()
    assert isinstance(view, CorpusView) and ds.docs() is view  # built once
    assert len(view) == 50 and list(view) == list(eager) and "d7" in view and "nope" not in view
    assert view == eager and dict(view.items()) == eager
    for doc_id in ["d49", "d0", "d13", "d0", "d13"]:  # any order, repeated (cache)
        assert view[doc_id] == eager[doc_id]
    assert view.get("nope") is None
    with pytest.raises(KeyError):
        view["nope"]
    CorpusView.CACHE_SIZE, old = 3, CorpusView.CACHE_SIZE
    try:
        assert [view[d] for d in reversed(list(view))] == list(reversed(eager.values()))  # evicting
    finally:
        CorpusView.CACHE_SIZE = old
    again = pickle.loads(pickle.dumps(view))  # no open file is carried
    assert again == eager and "50 documents" in repr(again)


def test_corpus_view_keeps_offsets_not_texts(tmp_path: Path, offsets_always: None) -> None:
    ds = load_dataset(_corpus_folder(tmp_path, 200))
    view = ds.docs()
    view["d5"]
    state = pickle.dumps(view)
    assert b"text 5" not in state and len(state) < 200 * 40


def test_sample_documents_unchanged_by_the_corpus_view(tmp_path: Path, offsets_always: None) -> None:
    """The documented sample (sorted eligible ids, permuted by ``random.Random(seed).sample``), computed
    from a plain dict of every document, equals what the streamed corpus gives."""
    import random

    from inpars.generate import sample_documents

    ds = load_dataset(_corpus_folder(tmp_path, 300))
    eager = {d.doc_id: d for d in ds.docs_iter()}
    for n, seed, min_chars in [(10, 1, 0), (300, 7, 0), (25, 3, 40)]:
        ids = sorted(i for i, d in eager.items() if len(d.full_text) >= min_chars)
        expected = [eager[i] for i in random.Random(seed).sample(ids, len(ids))[:n]]
        assert sample_documents(ds, n, seed=seed, min_doc_chars=min_chars) == expected


def test_read_jsonl_offsets_point_at_their_lines(tmp_path: Path) -> None:
    from inpars.io import parse_jsonl_line, read_jsonl_offsets

    path = _write_lines(tmp_path / "x.jsonl", ['{"a": 1}', "", '{"a": "é"}'])
    got = list(read_jsonl_offsets(path))
    assert [(line, obj) for line, _, obj in got] == [(1, {"a": 1}), (3, {"a": "é"})]
    with open(path, "rb") as f:
        for line, offset, obj in got:
            f.seek(offset)
            assert parse_jsonl_line(f.readline(), path, line) == obj
    assert parse_jsonl_line(b"\n", path) is None


def test_small_corpus_is_held_as_a_dict(tmp_path: Path) -> None:
    ds = load_dataset(_corpus_folder(tmp_path, 20))
    assert type(ds.docs()) is dict and ds.docs() == {d.doc_id: d for d in ds.docs_iter()}


def _messy_corpus(tmp_path: Path) -> Path:
    """Duplicates up to whitespace, blank documents, a one-word one and odd ids."""
    folder = tmp_path / "messy"
    folder.mkdir()
    texts = ["alpha beta gamma", "alpha  beta\ngamma", "", "   ", "delta", "alpha beta gamma", "epsilon zeta",
             "eta theta iota kappa", "delta "] + [f"filler text number {i} about lambda" for i in range(40)]
    lines = [json.dumps({"_id": f"id {i}/é" if i % 5 == 0 else str(i), "text": t}) for i, t in enumerate(texts)]
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_text_columns_of_the_view_equal_those_of_the_dict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The view's own arrays (taken while it is built) answer as the pass over a plain dict does: lengths
    (0 for a blank text), keys, the eligible ids, the duplicate groups; ``items()`` reads the file in order."""
    from inpars.corpus_view import CorpusView, same_text_groups, text_columns
    from inpars.generation.selection import EligibleIds

    folder = _messy_corpus(tmp_path)
    eager = {d.doc_id: d for d in load_dataset(folder).docs_iter()}
    monkeypatch.setattr("inpars.datasets.EAGER_CORPUS_BYTES", 0)
    view = load_dataset(folder).docs()
    assert isinstance(view, CorpusView)
    a, b = text_columns(view), text_columns(eager)
    assert list(a.ids) == list(b.ids) and a.lengths.tolist() == b.lengths.tolist() == [
        len(d.full_text) if d.full_text.strip() else 0 for d in eager.values()]
    assert a.keys.tolist() == b.keys.tolist()
    for min_chars in (0, 6, 17):
        expected = sorted(i for i, d in eager.items() if d.full_text.strip() and len(d.full_text) >= min_chars)
        assert list(EligibleIds(a, min_chars)) == list(EligibleIds(b, min_chars)) == expected
    assert a.duplicate_groups(blank=False) == b.duplicate_groups(blank=False) == [[0, 1, 5], [4, 8]]
    assert a.duplicate_groups(blank=True) == [[0, 1, 5], [2, 3], [4, 8]]
    assert same_text_groups(view) == same_text_groups(eager) and same_text_groups(view)["id 5/é"] == {
        "id 0/é", "1", "id 5/é"}
    assert a.key("nope") is None and a.key("1") == b.key("1") == a.key("id 0/é")
    assert list(view.items()) == list(eager.items()) and list(view.values()) == list(eager.values())
    assert ("1", eager["1"]) in view.items() and len(view.values()) == len(eager)


def test_negatives_unchanged_by_the_corpus_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mining over the view (text keys from its arrays) draws what mining over a plain dict draws."""
    from inpars.negatives import mine_negatives
    from inpars.records import GeneratedQuery

    folder = _messy_corpus(tmp_path)
    records = [GeneratedQuery.from_json({"doc_id": d, "query": q}) for d, q in
               [("id 0/é", "alpha beta"), ("4", "delta"), ("7", "theta kappa"), ("12", "lambda filler")]]
    outs = []
    for eager_bytes in (1 << 40, 0):
        monkeypatch.setattr("inpars.datasets.EAGER_CORPUS_BYTES", eager_bytes)
        out = tmp_path / f"train{eager_bytes}.jsonl"
        mine_negatives(records, out, dataset=load_dataset(folder), n_negatives=5, depth=30, seed=3,
                       index_dir=tmp_path / "idx")
        outs.append(out.read_text(encoding="utf-8"))
    assert outs[0] == outs[1]
    first = json.loads(outs[0].splitlines()[0])
    assert not {"1", "id 5/é"} & set(first["neg_doc_ids"])  # the positive's duplicates are never negatives
