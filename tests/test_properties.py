"""Property-based tests (hypothesis) of every reader and writer.

Round trips: what a writer writes, its reader gives back (same records, same order, same values), or the
documented transformation of it (whitespace normalised in triples/pairs queries, query texts stripped, ...).
Rejections: a bad line inserted at a random position of a good file gives an :class:`~inpars.errors.InputError`
naming the file and that line, never a bare KeyError/ValueError/UnicodeDecodeError/RecursionError.

Each example gets its own temporary folder (hypothesis does not reset ``tmp_path`` between examples).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from inpars import datasets as datasets_mod
from inpars.config import load_config, load_config_dict
from inpars.corpus_view import CorpusView
from inpars.datasets import BeirDataset, evaluation_access
from inpars.errors import ConfigError, InputError
from inpars.formats import (
    read_pairs,
    read_training_file,
    read_triples,
    sniff_training_format,
    text_id,
    write_pairs,
    write_triples,
)
from inpars.generate import read_generated
from inpars.io import JsonlAppender, parse_jsonl_line, read_jsonl, repair_jsonl, write_jsonl
from inpars.records import _GENERATED_FIELDS, GeneratedQuery, Qrel, ScoredDoc, TrainingExample
from inpars.runfiles import (
    _natural_key,
    check_id,
    ranked,
    read_qrels,
    read_queries_file,
    read_run,
    read_run_dict,
    write_qrels,
    write_run,
)
from inpars.training.common import load_training_examples

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder per hypothesis example."""
    with tempfile.TemporaryDirectory(prefix="inpars-prop-") as d:
        yield Path(d)


def assert_names(exc: BaseException, path: Path, line: int | None) -> None:
    """``exc`` is the project's InputError and names ``path`` and ``line`` as ``path:line:``."""
    assert isinstance(exc, InputError), f"{type(exc).__name__}: {exc}"
    assert exc.path == str(path), str(exc)
    assert exc.line == line, str(exc)
    assert (f"{path}:{line}:" if line is not None else f"{path}:") in str(exc)


def insert(lines: list[bytes], at: int, bad: bytes) -> tuple[bytes, int]:
    """The file of ``lines`` with ``bad`` inserted before line ``at`` (0-based); and its 1-based number."""
    at = min(at, len(lines))
    return b"".join(x + b"\n" for x in [*lines[:at], bad, *lines[at:]]), at + 1


# ---------------------------------------------------------------------------------------- strategies

#: what ids may hold: printable, no whitespace, no control or format character (runfiles.check_id)
ID_CHARS = st.characters(codec="utf-8", exclude_categories=("C", "Z"))
IDS = st.text(ID_CHARS, min_size=1, max_size=8).filter(lambda s: not any(c.isspace() for c in s))
#: every whitespace a reader may split on
WHITESPACE = st.sampled_from([" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2028",
                              "\u3000"])
#: ids check_id refuses: empty, holding whitespace, or starting with a byte-order mark (dropped at a file start)
REFUSED_IDS = st.one_of(
    st.just(""),
    st.builds(lambda a, w, b: a + w + b, st.text(ID_CHARS, max_size=3), WHITESPACE, st.text(ID_CHARS, max_size=3)),
    IDS.map(lambda s: "\ufeff" + s),
)
#: arbitrary unicode (surrogates cannot be written as UTF-8)
TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
NONBLANK = TEXT.filter(lambda s: bool(s.strip()))
#: a text that fits on one line of a line-based file (no "\n"; a "\r" before it would be a CRLF)
ONE_LINE = st.text(st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=20)
SCORES = st.floats(allow_nan=False, allow_infinity=False)
GRADES = st.integers(min_value=-(2**63), max_value=2**63)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | SCORES | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)
JSON_OBJECTS = st.dictionaries(TEXT, JSON_VALUES, max_size=4)
BOM = st.sampled_from([b"", b"\xef\xbb\xbf"])


def json_line(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


#: bad JSONL lines: (kind, raw line) built from a good object
@st.composite
def bad_json_lines(draw: st.DrawFn, good: dict[str, Any]) -> tuple[str, bytes]:
    raw = json_line(good)
    kind = draw(st.sampled_from(["truncated", "nul", "utf8", "constant", "overflow", "not-object", "huge-int",
                                 "deep"]))
    if kind == "truncated":
        return kind, raw[: draw(st.integers(1, len(raw) - 1))]
    if kind == "nul":
        at = draw(st.integers(0, len(raw)))
        return kind, raw[:at] + b"\x00" + raw[at:]
    if kind == "utf8":
        at = draw(st.integers(0, len(raw)))
        junk = draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xc0\x80", b"\xe2\x82", b"\x80"]))
        return kind, raw[:at] + junk + raw[at:]
    if kind == "constant":
        return kind, json_line({**good, "x": 0}).replace(b'"x": 0', b'"x": ' + draw(
            st.sampled_from([b"NaN", b"Infinity", b"-Infinity"])))
    if kind == "overflow":  # a float literal beyond the double range reads as inf
        return kind, json_line({**good, "x": 0}).replace(b'"x": 0', b'"x": ' + draw(
            st.sampled_from([b"1e400", b"-2.5E+999", b"1" * 400 + b".0"])))
    if kind == "not-object":
        return kind, json_line(draw(st.lists(JSON_VALUES, max_size=2) | st.integers() | TEXT))
    if kind == "huge-int":  # beyond Python's int/str conversion limit
        return kind, json_line({**good, "x": 0}).replace(b'"x": 0', b'"x": ' + b"7" * 5000)
    return kind, b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


# --------------------------------------------------------------------------------------- inpars.io


@FAST
@given(records=st.lists(JSON_OBJECTS, max_size=6), blank=st.lists(st.sampled_from(["", "  ", "\t", "\r"]),
                                                                    max_size=3), bom=BOM)
def test_jsonl_round_trip(records: list[dict[str, Any]], blank: list[str], bom: bytes) -> None:
    """write_jsonl then read_jsonl: the same objects, numbered by their lines; blank lines are skipped but
    counted; parse_jsonl_line reads each line alone the same; a byte-order mark is accepted."""
    with scratch() as d:
        p = d / "x.jsonl"
        assert write_jsonl(p, records) == len(records)
        assert [obj for _, obj in read_jsonl(p)] == records
        lines = p.read_bytes().split(b"\n")[:-1]
        for i, raw in enumerate(lines, start=1):
            assert parse_jsonl_line(raw + b"\n", p, i) == records[i - 1]
        # blank lines after the first keep their numbers
        data = bom + b"".join(x + b"\n" + "".join(b + "\n" for b in blank).encode() for x in lines)
        p.write_bytes(data)
        step = 1 + len(blank)
        assert list(read_jsonl(p)) == [(1 + i * step, r) for i, r in enumerate(records)]


@FAST
@given(records=st.lists(JSON_OBJECTS, min_size=1, max_size=5), at=st.integers(0, 5),
       kind_bad=JSON_OBJECTS.flatmap(bad_json_lines))
@example(records=[{}], at=1, kind_bad=("deep", b"[" * 100_000 + b"]" * 100_000)).via("RecursionError escaped")
@example(records=[{}], at=1, kind_bad=("huge-int", b'{"x": ' + b"7" * 5000 + b"}")).via("ValueError escaped")
@example(records=[{}], at=1, kind_bad=("overflow", b'{"x": 1e400}')).via("1e400 was read as inf")
def test_jsonl_rejects_a_bad_line(records: list[dict[str, Any]], at: int, kind_bad: tuple[str, bytes]) -> None:
    """Any bad line (invalid JSON, NUL, invalid UTF-8, NaN/Infinity, a float beyond the double range, a
    non-object, an integer beyond the conversion limit, nesting beyond the recursion limit) is an
    InputError naming the file and its line, from read_jsonl and from parse_jsonl_line."""
    _, bad = kind_bad
    with scratch() as d:
        p = d / "bad.jsonl"
        content, line = insert([json_line(r) for r in records], at, bad)
        p.write_bytes(content)
        with pytest.raises(InputError) as err:
            list(read_jsonl(p))
        assert_names(err.value, p, line)
        with pytest.raises(InputError) as err:
            parse_jsonl_line(bad + b"\n", p, line)
        assert_names(err.value, p, line)


@FAST
@given(records=st.lists(JSON_OBJECTS, min_size=1, max_size=4), cut=st.integers(0, 10_000), bom=BOM,
       more=st.lists(JSON_OBJECTS, max_size=2))
@example(records=[{}], cut=2, bom=b"\xef\xbb\xbf", more=[]).via("a BOM-prefixed whole line was cut off")
def test_repair_jsonl_cuts_only_a_torn_tail(records: list[dict[str, Any]], cut: int, bom: bytes,
                                            more: list[dict[str, Any]]) -> None:
    """A file whose last record lost its tail (a killed writer): repair_jsonl removes exactly the torn line
    (a whole line that only lacks its newline is kept), and an appender reopened on it continues it."""
    *head, last = records
    lines = [json_line(r) for r in head]
    torn = json_line(last)[: cut % (len(json_line(last)) + 1)]
    content = b"".join(x + b"\n" for x in lines) + torn
    if not content:
        return
    with scratch() as d:
        p = d / "x.jsonl"
        p.write_bytes(bom + content)
        whole = torn == json_line(last)
        removed = repair_jsonl(p)
        assert removed == (0 if whole or not torn else len(torn) + (len(bom) if not lines else 0))
        with JsonlAppender(p) as out:
            for r in more:
                out.write(r)
        assert [obj for _, obj in read_jsonl(p)] == [*head, *([last] if whole else []), *more]


@FAST
@given(records=st.lists(JSON_OBJECTS, max_size=3), value=st.sampled_from([math.nan, math.inf, -math.inf]))
def test_jsonl_writers_refuse_what_the_reader_refuses(records: list[dict[str, Any]], value: float) -> None:
    """NaN and infinities are not JSON: the writers refuse them (the reader would refuse the file), and
    write_jsonl leaves no file."""
    with scratch() as d:
        p = d / "x.jsonl"
        with pytest.raises(InputError):
            write_jsonl(p, [*records, {"score": value}])
        assert not p.exists()
        with JsonlAppender(p) as out, pytest.raises(InputError):
            for r in records:
                out.write(r)
            out.write({"log_probs": [value]})
        assert [obj for _, obj in read_jsonl(p)] == records


# -------------------------------------------------------------------------------------------- runs


RUNS = st.dictionaries(IDS, st.dictionaries(IDS, SCORES, min_size=1, max_size=5), min_size=1, max_size=4)


@FAST
@given(run=RUNS, tag=IDS, gz=st.booleans())
@example(run={"q": {"a": 0.100000002, "b": 0.100000001}}, tag="t", gz=False).via("scores were cut to 8 decimals")
@example(run={"q": {"a": 1e-9}}, tag="t", gz=False)
def test_run_round_trip(run: dict[str, dict[str, float]], tag: str, gz: bool) -> None:
    """write_run then read_run: every (query, doc, score) exactly, queries in natural order, documents as
    trec_eval ranks them, and trec_eval's ranking of the file is the ranking that was written."""
    with scratch() as d:
        p = d / "run.trec"
        write_run(p, run, tag=tag)
        if gz:
            p.write_bytes(gzip.compress(p.read_bytes()))
        got = read_run(p)
        as_dict = read_run_dict(p)
    assert [(r.query_id, r.doc_id) for r in got] == [
        (q, did) for q in sorted(run, key=_natural_key) for did, _ in ranked(run[q])
    ]
    assert all(r.score == run[r.query_id][r.doc_id] for r in got)
    assert as_dict == run
    for q in run:
        assert [did for did, _ in ranked(as_dict[q])] == [r.doc_id for r in got if r.query_id == q]


@FAST
@given(qid=st.text(st.characters(codec="utf-8"), max_size=6), did=st.text(st.characters(codec="utf-8"), max_size=6),
       score=SCORES)
@example(qid="\ufeffq", did="d", score=1.0).via("a BOM-prefixed query id lost its BOM on line 1")
def test_run_ids_either_round_trip_or_are_refused(qid: str, did: str, score: float) -> None:
    """Any id check_id accepts comes back unchanged; any other is refused before a file is written."""
    try:
        check_id(qid, "query id")
        check_id(did, "document id")
    except InputError:
        accepted = False
    else:
        accepted = True
    with scratch() as d:
        p = d / "run.trec"
        if not accepted:
            with pytest.raises(InputError):
                write_run(p, [ScoredDoc(qid, did, score)])
            assert not p.exists()
            return
        write_run(p, [ScoredDoc(qid, did, score)])
        assert read_run(p) == [ScoredDoc(qid, did, score)]


@FAST
@given(run=RUNS, bad=REFUSED_IDS, where=st.sampled_from(["query", "doc", "tag"]),
       value=st.sampled_from([math.nan, math.inf, -math.inf]), score_is_bad=st.booleans())
def test_run_writer_refuses_what_no_reader_reads(run: dict[str, dict[str, float]], bad: str, where: str,
                                                 value: float, score_is_bad: bool) -> None:
    """An id that cannot be written (empty, whitespace, a leading BOM) or a non-finite score is an
    InputError, and nothing is written."""
    run = {q: dict(docs) for q, docs in run.items()}
    tag = "t"
    q0 = next(iter(run))
    if score_is_bad:
        run[q0][next(iter(run[q0]))] = value
    elif where == "query":
        run[bad] = {"d": 1.0}
    elif where == "doc":
        run[q0][bad] = 1.0
    else:
        tag = bad
    with scratch() as d:
        p = d / "run.trec"
        with pytest.raises(InputError):
            write_run(p, run, tag=tag)
        assert not p.exists()


@FAST
@given(run=st.dictionaries(IDS, st.lists(IDS, min_size=1, max_size=4, unique=True), min_size=1, max_size=3))
def test_msmarco_run_reads_as_reciprocal_ranks(run: dict[str, list[str]]) -> None:
    """An MS MARCO run (qid TAB docid TAB rank) reads in file order with score 1/rank."""
    lines = [f"{q}\t{did}\t{rank}" for q, docs in run.items() for rank, did in enumerate(docs, start=1)]
    with scratch() as d:
        p = d / "run.tsv"
        p.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
        assert read_run(p) == [ScoredDoc(q, did, 1.0 / rank) for q, docs in run.items()
                               for rank, did in enumerate(docs, start=1)]


@FAST
@given(run=RUNS, at=st.integers(0, 30), data=st.data())
def test_run_rejects_a_bad_line(run: dict[str, dict[str, float]], at: int, data: st.DataObject) -> None:
    """A malformed run line (columns, rank, score, a non-finite score, a duplicate document, a MS MARCO line
    among TREC lines, a TAB-separated id with a space, invalid UTF-8) is an InputError naming file and line."""
    with scratch() as d:
        p = d / "run.trec"
        write_run(p, run, tag="t")
        lines = p.read_bytes().split(b"\n")[:-1]
        at = min(at, len(lines))
        kinds = ["columns", "rank", "score", "finite", "tab-space", "utf8"] + (["dup", "width"] if at else [])
        kind = data.draw(st.sampled_from(kinds), label="kind")
        q, did = lines[0].decode().split()[0], lines[0].decode().split()[2]
        bad = {
            "columns": f"{q} Q0 {did} 1 2.0".encode(),
            "rank": f"{q} Q0 x{did} {data.draw(st.sampled_from(['first', '1.5', 'x1']))} 2.0 t".encode(),
            "score": f"{q} Q0 x{did} 1 {data.draw(st.sampled_from(['high', '1,5', '--1', '0x1']))} t".encode(),
            "finite": f"{q} Q0 x{did} 1 {data.draw(st.sampled_from(['nan', 'inf', '-Infinity', '1e400']))} t".encode(),
            "tab-space": f"{q} x\tQ0\tx{did}\t1\t2.0\tt".encode(),
            "utf8": f"{q} Q0 x{did} 1 2.0 t".encode().replace(b" Q0", b"\xff Q0"),
            "dup": lines[data.draw(st.integers(0, at - 1), label="copied")] if at else b"",
            "width": f"{q}\tx{did}\t1".encode(),
        }[kind]
        content, line = insert(lines, at, bad)
        p.write_bytes(content)
        with pytest.raises(InputError) as err:
            read_run(p)
        assert_names(err.value, p, line)


# ------------------------------------------------------------------------------------------- qrels


QRELS = st.lists(st.tuples(IDS, IDS, GRADES), max_size=8, unique_by=lambda r: (r[0], r[1]))


@FAST
@given(rows=QRELS, fmt=st.sampled_from(["trec", "beir"]), gz=st.booleans())
@example(rows=[("qid", "d", 1), ("q", "d", 0)], fmt="trec", gz=False).via("a first query 'qid' read as a header")
@example(rows=[("q", "d", 2**60 + 1)], fmt="trec", gz=False).via("grades went through float")
def test_qrels_round_trip(rows: list[tuple[str, str, int]], fmt: str, gz: bool) -> None:
    """write_qrels then read_qrels (TREC or BEIR, plain or gzip): the same judgements in the same order."""
    qrels = [Qrel(*r) for r in rows]
    with scratch() as d:
        p = d / "qrels.txt"
        write_qrels(p, qrels, fmt=fmt)
        if gz:
            p.write_bytes(gzip.compress(p.read_bytes()))
        assert read_qrels(p) == qrels


@FAST
@given(rows=QRELS, bad=REFUSED_IDS, doc=st.booleans(), fmt=st.sampled_from(["trec", "beir"]))
def test_qrels_writer_refuses_unwritable_ids(rows: list[tuple[str, str, int]], bad: str, doc: bool,
                                             fmt: str) -> None:
    qrels = [Qrel(*r) for r in rows] + [Qrel("q", bad, 1) if doc else Qrel(bad, "d", 1)]
    with scratch() as d:
        p = d / "qrels.txt"
        with pytest.raises(InputError):
            write_qrels(p, qrels, fmt=fmt)
        assert not p.exists()


@FAST
@given(rows=QRELS.filter(bool), fmt=st.sampled_from(["trec", "beir"]), at=st.integers(0, 10), data=st.data())
def test_qrels_reject_a_bad_line(rows: list[tuple[str, str, int]], fmt: str, at: int, data: st.DataObject) -> None:
    """Wrong column count, a grade that is not an integer, a conflicting grade, a header below line 1,
    invalid UTF-8: an InputError naming file and line."""
    with scratch() as d:
        p = d / "qrels.txt"
        write_qrels(p, [Qrel(*r) for r in rows], fmt=fmt)
        lines = p.read_bytes().split(b"\n")[:-1]
        at = min(at, len(lines))
        if fmt == "beir":
            at = max(at, 1)  # below the header
        q, did, grade = rows[0]
        kinds = ["columns", "grade", "conflict", "utf8"] + (["header"] if at else [])
        kind = data.draw(st.sampled_from(kinds), label="kind")
        if kind == "conflict" and at <= (1 if fmt == "beir" else 0):
            kind = "grade"  # the original must come first
        grade_text = data.draw(st.sampled_from(["yes", "nan", "inf", "1e400", "", "1/2"]), label="grade")
        bad = {
            "columns": data.draw(st.sampled_from([f"{q} {did}", f"{q} 0 {did} 1 extra", f"{q}\t{did}"])),
            "grade": f"{q}\t{did}\t{grade_text}" if fmt == "beir" else f"{q} 0 x{did} {grade_text}",
            "conflict": f"{q}\t{did}\t{grade + 1}" if fmt == "beir" else f"{q} 0 {did} {grade + 1}",
            "utf8": f"{q} 0 x{did} 1",
            "header": "query-id\tcorpus-id\tscore",
        }[kind].encode()
        if kind == "utf8":
            bad = bad.replace(b" 0 ", b" \xff0 ")
        content, line = insert(lines, at, bad)
        p.write_bytes(content)
        with pytest.raises(InputError) as err:
            read_qrels(p)
        assert_names(err.value, p, line)


# ----------------------------------------------------------------------------------------- queries


QUERY_TEXTS = st.dictionaries(IDS, st.text(st.characters(codec="utf-8", exclude_characters="\n\t"), max_size=20),
                              min_size=1, max_size=5)


@FAST
@given(queries=QUERY_TEXTS, bom=BOM, crlf=st.booleans())
def test_queries_tsv_round_trip(queries: dict[str, str], bom: bytes, crlf: bool) -> None:
    """``id<TAB>text`` lines read back as {id: stripped text}, empty texts skipped (documented); a file
    whose first id starts with '{' is taken for JSONL (documented) and refused at line 1."""
    end = "\r\n" if crlf else "\n"
    with scratch() as d:
        p = d / "queries.tsv"
        p.write_bytes(bom + "".join(f"{q}\t{t}{end}" for q, t in queries.items()).encode())
        expected = {q: t.strip() for q, t in queries.items() if t.strip()}
        if next(iter(queries)).startswith("{") or not expected:
            with pytest.raises(InputError) as err:
                read_queries_file(p)
            assert str(p) in str(err.value)
            return
        assert read_queries_file(p) == expected


@FAST
@given(queries=st.dictionaries(IDS | st.integers(), TEXT, min_size=1, max_size=5), metadata=JSON_OBJECTS, bom=BOM)
def test_queries_jsonl_round_trip(queries: dict[str | int, str], metadata: dict[str, Any], bom: bytes) -> None:
    """``{"_id", "text", "metadata"}`` lines read back as {str(id): stripped text}; metadata is never read."""
    if len({str(q) for q in queries}) < len(queries):
        return
    with scratch() as d:
        p = d / "queries.jsonl"
        p.write_bytes(bom + b"".join(json_line({"_id": q, "text": t, "metadata": metadata}) + b"\n"
                                     for q, t in queries.items()))
        expected = {str(q): t.strip() for q, t in queries.items() if t.strip()}
        if not expected:
            with pytest.raises(InputError):
                read_queries_file(p)
            return
        assert read_queries_file(p) == expected


@FAST
@given(queries=QUERY_TEXTS.map(lambda q: {k: v + "x" for k, v in q.items() if not k.startswith("{")}).filter(bool),
       jsonl=st.booleans(), at=st.integers(0, 6), data=st.data())
def test_queries_file_rejects_a_bad_line(queries: dict[str, str], jsonl: bool, at: int, data: st.DataObject) -> None:
    """TSV: no TAB, three columns, an id with whitespace, a duplicate id, invalid UTF-8; JSONL: those of
    read_jsonl, a missing or non-string _id/text. Each is an InputError naming file and line."""
    q0 = next(iter(queries))
    if jsonl:
        lines = [json_line({"_id": q, "text": t}) for q, t in queries.items()]
        kind = data.draw(st.sampled_from(["json", "no-id", "bad-id", "no-text", "bad-text", "dup"]), label="kind")
        if kind == "json":
            _, bad = data.draw(bad_json_lines({"_id": "zz", "text": "t"}))
            if at == 0 and not bad.lstrip().startswith(b"{"):
                at = 1  # a first line that does not start with '{' makes the file TSV
        else:
            bad = json_line({
                "no-id": {"text": "t"}, "bad-id": {"_id": [q0], "text": "t"}, "no-text": {"_id": "zz"},
                "bad-text": {"_id": "zz", "text": 3}, "dup": {"_id": q0, "text": "again"},
            }[kind])
            if kind == "dup":
                at = max(at, 1)
    else:
        lines = [f"{q}\t{t}".encode() for q, t in queries.items()]
        kind = data.draw(st.sampled_from(["no-tab", "columns", "space-id", "dup", "utf8"]), label="kind")
        bad = {"no-tab": b"zz text", "columns": b"zz\ta\tb", "space-id": b"z z\ttext", "dup": f"{q0}\tagain".encode(),
               "utf8": b"zz\t\xfftext"}[kind]
        if kind == "dup":
            at = max(at, 1)
    with scratch() as d:
        p = d / ("queries.jsonl" if jsonl else "queries.tsv")
        content, line = insert(lines, at, bad)
        p.write_bytes(content)
        with pytest.raises(InputError) as err:
            read_queries_file(p)
        assert_names(err.value, p, line)


# -------------------------------------------------------------------------------------- BEIR folder


DOC_IDS = IDS | st.integers(min_value=-(2**63), max_value=2**63)
DOCS = st.dictionaries(DOC_IDS, st.tuples(TEXT | st.none(), TEXT | st.none()), min_size=1, max_size=6)


def write_folder(root: Path, docs: dict[str | int, tuple[str | None, str | None]], queries: dict[str, str],
                 qrels: list[tuple[str, str, int]], bom: bytes = b"") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_bytes(bom + b"".join(
        json_line({"_id": i, **({} if title is None else {"title": title}), "text": text}) + b"\n"
        for i, (title, text) in docs.items()))
    (root / "queries.jsonl").write_bytes(bom + b"".join(
        json_line({"_id": q, "text": t, "metadata": {"relevant": ["secret"]}}) + b"\n" for q, t in queries.items()))
    write_qrels(root / "qrels" / "test.tsv", [Qrel(*r) for r in qrels], fmt="beir")
    return root


@FAST
@given(docs=DOCS, queries=st.dictionaries(IDS, TEXT, max_size=5), grades=st.lists(GRADES, max_size=6), bom=BOM)
def test_beir_folder_round_trip(docs: dict[str | int, tuple[str | None, str | None]], queries: dict[str, str],
                                grades: list[int], bom: bytes) -> None:
    """A BEIR folder reads back: documents in corpus order (numeric ids as strings, a missing title or text
    empty), the same through the offset-backed CorpusView; queries in file order without the empty ones
    (text unstripped); the qrels, whose queries are the test split's queries."""
    if len({str(i) for i in docs}) < len(docs):
        return
    doc_ids = [str(i) for i in docs]
    qrels = [(q, doc_ids[k % len(doc_ids)], g) for k, (q, g) in enumerate(zip(queries, grades, strict=False))]
    with scratch() as d:
        ds = BeirDataset(write_folder(d / "ds", docs, queries, qrels, bom))
        expected = [(str(i), title or "", text or "") for i, (title, text) in docs.items()]
        assert [(x.doc_id, x.title, x.text) for x in ds.docs_iter()] == expected
        with mock.patch.object(datasets_mod, "EAGER_CORPUS_BYTES", 0):
            view = BeirDataset(ds.path).docs()
        assert isinstance(view, CorpusView)
        assert [(k, v.doc_id, v.title, v.text) for k, v in view.items()] == [(e[0], *e) for e in expected]
        assert [(q.query_id, q.text) for q in ds.queries_iter()] == [(q, t) for q, t in queries.items() if t.strip()]
        judged = {q for q, _, _ in qrels}
        assert ds.queries("test") == {q: t for q, t in queries.items() if t.strip() and q in judged}
        with evaluation_access():
            assert ds.qrels("test") == [Qrel(*r) for r in qrels]


@FAST
@given(docs=DOCS.filter(lambda d: len({str(i) for i in d}) == len(d)), at=st.integers(0, 7), data=st.data())
def test_corpus_rejects_a_bad_line(docs: dict[str | int, tuple[str | None, str | None]], at: int,
                                   data: st.DataObject) -> None:
    """A bad corpus line (any bad JSONL line, a missing _id, an id or title or text of the wrong type, a
    duplicate id) is an InputError naming corpus.jsonl and the line."""
    first = str(next(iter(docs)))
    kind = data.draw(st.sampled_from(["json", "no-id", "id-type", "title-type", "text-type", "dup"]), label="kind")
    if kind == "json":
        _, bad = data.draw(bad_json_lines({"_id": "zz", "text": "t"}))
    else:
        wrong = data.draw(st.sampled_from([[1], {"a": 1}, True]), label="wrong")
        bad = json_line({
            "no-id": {"title": "t", "text": "x"}, "id-type": {"_id": wrong, "text": "x"},
            "title-type": {"_id": "zz", "title": wrong, "text": "x"}, "text-type": {"_id": "zz", "text": wrong},
            "dup": {"_id": first, "text": "again"},
        }[kind])
        if kind == "dup":
            at = max(at, 1)
    with scratch() as d:
        root = write_folder(d / "ds", docs, {"q": "text"}, [])
        corpus = root / "corpus.jsonl"
        content, line = insert(corpus.read_bytes().split(b"\n")[:-1], at, bad)
        corpus.write_bytes(content)
        with pytest.raises(InputError) as err:
            list(BeirDataset(root).docs_iter())
        assert_names(err.value, corpus, line)


@FAST
@given(queries=st.dictionaries(IDS, NONBLANK, min_size=1, max_size=5), at=st.integers(0, 6), data=st.data())
def test_beir_queries_reject_a_bad_line(queries: dict[str, str], at: int, data: st.DataObject) -> None:
    """A bad queries.jsonl line (any bad JSONL line, a missing _id or text, a wrong type, a duplicate id) is an
    InputError naming queries.jsonl and the line."""
    kind = data.draw(st.sampled_from(["json", "no-id", "no-text", "text-type", "dup"]), label="kind")
    if kind == "json":
        _, bad = data.draw(bad_json_lines({"_id": "zz", "text": "t"}))
    else:
        bad = json_line({"no-id": {"text": "t"}, "no-text": {"_id": "zz"}, "text-type": {"_id": "zz", "text": [1]},
                         "dup": {"_id": next(iter(queries)), "text": "again"}}[kind])
        if kind == "dup":
            at = max(at, 1)
    with scratch() as d:
        root = write_folder(d / "ds", {"d": ("", "x")}, queries, [])
        path = root / "queries.jsonl"
        content, line = insert(path.read_bytes().split(b"\n")[:-1], at, bad)
        path.write_bytes(content)
        with pytest.raises(InputError) as err:
            list(BeirDataset(root).queries_iter())
        assert_names(err.value, path, line)


# -------------------------------------------------------------------------------- triples and pairs


#: texts of triples and pairs: mostly writable, sometimes empty once normalised (then refused)
TSV_TEXT = NONBLANK | TEXT
EXAMPLES = st.lists(
    st.builds(TrainingExample, query=TSV_TEXT, pos_doc_id=st.just(""), positive=TSV_TEXT,
              negatives=st.lists(TSV_TEXT, max_size=3)),
    min_size=1, max_size=4,
)


def clean_query(text: str) -> str:
    return " ".join(text.split())


def clean_doc(text: str) -> str:
    """Line breaks become spaces and the ends are stripped (documented in write_triples)."""
    return text.replace("\r", " ").replace("\n", " ").strip()


def writable(examples: list[TrainingExample], pairs: bool = True) -> bool:
    """Whether every line written holds no empty field (the readers refuse them; triples has a line per
    negative only)."""
    return all(clean_query(ex.query) and clean_doc(ex.positive) and all(clean_doc(n) for n in ex.negatives)
               for ex in examples if pairs or ex.negatives)


def sniffed(first_line_fields: list[str], lasts: list[str]) -> str:
    """What sniff_training_format documents: jsonl when the first line starts with '{', monot5 when it is a
    monoT5 pair, pairs when every last column (of up to 100 lines) is 0 or 1, else triples."""
    query = first_line_fields[0]
    if query.startswith("{") and '"' not in query:
        return "jsonl"
    line = "\t".join(first_line_fields)
    if line.startswith("Query: ") and line.endswith(("Relevant:\ttrue", "Relevant:\tfalse")) and '"' not in line:
        return "monot5"
    return "pairs" if all(x in ("0", "1") for x in lasts[:100]) else "triples"


def expected_triples(examples: list[TrainingExample]) -> list[TrainingExample]:
    groups: dict[tuple[str, str], TrainingExample] = {}
    for ex in examples:
        q, pos = clean_query(ex.query), clean_doc(ex.positive)
        for neg in map(clean_doc, ex.negatives):
            g = groups.setdefault((q, pos), TrainingExample(q, text_id(pos), pos, query_id=text_id(q)))
            if neg != pos:
                g.negatives.append(neg)
                g.neg_doc_ids.append(text_id(neg))
    return list(groups.values())


def grouped_pairs(rows: list[tuple[str, str, bool]]) -> list[TrainingExample]:
    """Pairs (query, passage, relevant) as read_pairs documents it: per query (first-seen order), one example
    per distinct relevant passage, whose negatives are the query's distinct irrelevant passages."""
    pos: dict[str, list[str]] = {}
    neg: dict[str, list[str]] = {}
    for q, passage, relevant in rows:
        pos.setdefault(q, [])
        (pos if relevant else neg).setdefault(q, []).append(passage)
    out = []
    for q, positives in pos.items():
        negatives = list(dict.fromkeys(neg.get(q, [])))
        out += [TrainingExample(q, text_id(p), p, [text_id(n) for n in negatives], negatives, text_id(q))
                for p in dict.fromkeys(positives)]
    return out


def expected_pairs(examples: list[TrainingExample]) -> list[TrainingExample]:
    rows = []
    for ex in examples:
        q = clean_query(ex.query)
        rows += [(q, clean_doc(ex.positive), True)] + [(q, clean_doc(n), False) for n in ex.negatives]
    return grouped_pairs(rows)


@FAST
@given(examples=EXAMPLES, bom=BOM)
@example(examples=[TrainingExample("q", "", "a\rb", negatives=["n"])], bom=b"").via("a CR split a record")
@example(examples=[TrainingExample("q", "", "p", negatives=["n"])], bom=b"\xef\xbb\xbf").via("BOM kept in a query")
def test_triples_round_trip(examples: list[TrainingExample], bom: bytes) -> None:
    """write_triples then read_triples: one example per (query, positive) with its negatives in file order
    (a negative equal to the positive dropped), queries whitespace-normalised, line breaks in texts turned
    into spaces; an example with an empty text is refused before anything is written."""
    with scratch() as d:
        p = d / "triples.tsv"
        if not writable(examples, pairs=False):
            with pytest.raises(InputError):
                write_triples(p, examples)
            assert not p.exists()
            return
        n = write_triples(p, examples)
        assert n == sum(len(ex.negatives) for ex in examples)
        if n == 0:
            return
        p.write_bytes(bom + p.read_bytes())
        expected = expected_triples(examples)
        assert read_triples(p) == expected
        first = next(ex for ex in examples if ex.negatives)
        fmt = sniffed([clean_query(first.query), clean_doc(first.positive), clean_doc(first.negatives[0])],
                      [clean_doc(neg) for ex in examples for neg in ex.negatives])
        assert sniff_training_format(p) == fmt
        if fmt == "triples":
            assert read_training_file(p) == expected


@FAST
@given(examples=EXAMPLES, bom=BOM)
def test_pairs_round_trip(examples: list[TrainingExample], bom: bytes) -> None:
    """write_pairs then read_pairs: per query (first-seen order), one example per distinct positive whose
    negatives are that query's distinct label-0 passages; the file sniffs as pairs."""
    with scratch() as d:
        p = d / "pairs.tsv"
        if not writable(examples):
            with pytest.raises(InputError):
                write_pairs(p, examples)
            assert not p.exists()
            return
        assert write_pairs(p, examples) == sum(1 + len(ex.negatives) for ex in examples)
        p.write_bytes(bom + p.read_bytes())
        expected = expected_pairs(examples)
        assert read_pairs(p) == expected
        fmt = sniffed([clean_query(examples[0].query), clean_doc(examples[0].positive), "1"], ["1"])
        assert sniff_training_format(p) == fmt
        if fmt == "pairs":
            assert read_training_file(p) == expected


@FAST
@given(examples=EXAMPLES.filter(writable).filter(lambda exs: any(ex.negatives for ex in exs)),
       pairs=st.booleans(), at=st.integers(0, 12), data=st.data())
@example(examples=[TrainingExample("q", "", "p", negatives=["n"])], pairs=False, at=1, data=None).via(
    "invalid UTF-8 was reported without a line")
def test_triples_and_pairs_reject_a_bad_line(examples: list[TrainingExample], pairs: bool, at: int,
                                             data: st.DataObject | None) -> None:
    """Wrong column count, an empty field, a bad label (pairs), invalid UTF-8: an InputError naming file
    and line."""
    kind = data.draw(st.sampled_from(["columns", "empty", "utf8"] + (["label"] if pairs else [])),
                     label="kind") if data else "utf8"
    with scratch() as d:
        p = d / "train.tsv"
        (write_pairs if pairs else write_triples)(p, examples)
        lines = p.read_bytes().split(b"\n")[:-1]
        bad = {"columns": b"a\tb", "empty": b"a\t \tc" if pairs else b"a\tb\t", "utf8": b"a\tb\xff\t" + (
            b"1" if pairs else b"c"), "label": b"a\tb\t2"}[kind]
        content, line = insert(lines, at, bad)
        p.write_bytes(content)
        with pytest.raises(InputError) as err:
            (read_pairs if pairs else read_triples)(p)
        assert_names(err.value, p, line)


@FAST
@given(rows=st.lists(st.tuples(ONE_LINE.filter(lambda q: f"{q} Document: ".find(" Document: ") == len(q)),
                               ONE_LINE, st.booleans()), min_size=1, max_size=6), bom=BOM)
@example(rows=[("q", "d", True)], bom=b"\xef\xbb\xbf").via("a BOM made line 1 malformed")
def test_monot5_pairs_read_as_written(rows: list[tuple[str, str, bool]], bom: bytes) -> None:
    """monoT5 pairs as InPars-v2 writes them (``Query: q Document: d Relevant:<TAB>true|false``) read as pairs
    do, texts unchanged; the file sniffs as monot5."""
    expected = grouped_pairs(rows)
    with scratch() as d:
        p = d / "monot5.tsv"
        p.write_bytes(bom + "".join(f"Query: {q} Document: {doc} Relevant:\t{'true' if rel else 'false'}\n"
                                    for q, doc, rel in rows).encode())
        assert sniff_training_format(p) == "monot5"
        if not any(rel for _, _, rel in rows):
            with pytest.raises(InputError):
                read_training_file(p)
            return
        assert read_training_file(p) == expected


# ------------------------------------------------------------------------------ generated queries


GENERATED = st.builds(
    GeneratedQuery,
    doc_id=TEXT, query=TEXT, log_probs=st.lists(SCORES, max_size=4), prompt_text=TEXT,
    fewshot_examples=st.lists(JSON_VALUES, max_size=2), query_index=st.integers(-(2**63), 2**63),
    flags=st.lists(TEXT, max_size=2), filter_scores=st.dictionaries(TEXT, SCORES, max_size=2),
    extra=st.dictionaries(TEXT.filter(lambda k: k not in _GENERATED_FIELDS), JSON_VALUES, max_size=2),
)


@FAST
@given(records=st.lists(GENERATED, max_size=5), bom=BOM)
def test_generated_round_trip(records: list[GeneratedQuery], bom: bytes) -> None:
    """GeneratedQuery records appended as generation writes them read back equal (extra fields included)."""
    with scratch() as d:
        p = d / "queries.jsonl"
        with JsonlAppender(p) as out:
            for r in records:
                out.write(r.to_json())
        p.write_bytes(bom + p.read_bytes())
        assert read_generated(p) == records


@FAST
@given(records=st.lists(GENERATED, min_size=1, max_size=4), at=st.integers(0, 5), data=st.data())
def test_generated_rejects_a_bad_line(records: list[GeneratedQuery], at: int, data: st.DataObject) -> None:
    """Any bad JSONL line, a missing doc_id/query, a wrong type of doc_id, query, log_probs, fewshot_examples,
    flags, query_index or prompt_text: an InputError naming file and line."""
    good = records[0].to_json()
    kind = data.draw(st.sampled_from(["json", "missing", "type"]), label="kind")
    if kind == "json":
        _, bad = data.draw(bad_json_lines(good))
    elif kind == "missing":
        drop = data.draw(st.sampled_from(["doc_id", "query"]), label="drop")
        bad = json_line({k: v for k, v in good.items() if k not in (drop, "question" if drop == "query" else drop)})
    else:
        key, value = data.draw(st.sampled_from([
            ("doc_id", [1]), ("doc_id", True), ("doc_id", 1.5), ("query", 3), ("log_probs", 0.5),
            ("log_probs", ["x"]), ("log_probs", [True]), ("fewshot_examples", "x"), ("flags", {"a": 1}),
            ("query_index", "2"), ("query_index", 1.0), ("query_index", False), ("prompt_text", []),
        ]), label="field")
        bad = json_line({**good, key: value})
    with scratch() as d:
        p = d / "queries.jsonl"
        content, line = insert([json_line(r.to_json()) for r in records], at, bad)
        p.write_bytes(content)
        with pytest.raises(InputError) as err:
            read_generated(p)
        assert_names(err.value, p, line)


@pytest.mark.parametrize("scores", [{"a": "x"}, [1.0], {"a": None}, {"a": True}])
def test_generated_rejects_bad_filter_scores(scores: Any) -> None:
    with scratch() as d:
        p = d / "queries.jsonl"
        p.write_bytes(json_line({"doc_id": "d", "query": "q"}) + b"\n" + json_line(
            {"doc_id": "d", "query": "q", "filter_scores": scores}) + b"\n")
        with pytest.raises(InputError) as err:
            read_generated(p)
        assert_names(err.value, p, 2)


# ---------------------------------------------------------------------------- training examples


@st.composite
def training_examples(draw: st.DrawFn) -> TrainingExample:
    negatives = draw(st.lists(NONBLANK, max_size=3))
    ids = draw(st.just([]) | st.lists(TEXT, min_size=len(negatives), max_size=len(negatives)))
    scores = draw(st.none() | st.lists(SCORES, min_size=len(negatives) + 1, max_size=len(negatives) + 1))
    return TrainingExample(query=draw(NONBLANK), pos_doc_id=draw(NONBLANK), positive=draw(NONBLANK),
                           neg_doc_ids=ids, negatives=negatives, query_id=draw(TEXT), scores=scores)


@FAST
@given(examples=st.lists(training_examples(), min_size=1, max_size=4), bom=BOM)
@example(examples=[TrainingExample("q", "d", "p")], bom=b"\xef\xbb\xbf").via("a BOM made JSONL sniff as triples")
def test_training_examples_round_trip(examples: list[TrainingExample], bom: bytes) -> None:
    """TrainingExample JSONL (the negatives stage's output) reads back equal through load_training_examples."""
    with scratch() as d:
        p = d / "train.jsonl"
        write_jsonl(p, [ex.to_json() for ex in examples])
        p.write_bytes(bom + p.read_bytes())
        assert load_training_examples(p) == examples


@FAST
@given(examples=st.lists(training_examples(), min_size=1, max_size=4), at=st.integers(0, 5), data=st.data())
def test_training_examples_reject_a_bad_line(examples: list[TrainingExample], at: int, data: st.DataObject) -> None:
    """Any bad JSONL line, a missing or empty query/positive/pos_doc_id, negatives that are not a list of
    strings, neg_doc_ids of another length: an InputError naming file and line."""
    good = examples[0].to_json()
    kind = data.draw(st.sampled_from(["json", "missing", "empty", "type", "lengths"]), label="kind")
    name = data.draw(st.sampled_from(["query", "positive", "pos_doc_id"]), label="name")
    if kind == "json":
        _, bad = data.draw(bad_json_lines(good))
    elif kind == "missing":
        bad = json_line({k: v for k, v in good.items() if k != name})
    elif kind == "empty":
        bad = json_line({**good, name: data.draw(st.sampled_from(["", " ", "\t\n"]))})
    elif kind == "type":
        key, value = data.draw(st.sampled_from([("query", 1), ("positive", ["p"]), ("pos_doc_id", 1.5),
                                                ("negatives", "n"), ("negatives", [1]), ("neg_doc_ids", [None])]))
        bad = json_line({**good, key: value, **({"negatives": ["n"]} if key == "neg_doc_ids" else {})})
    else:
        bad = json_line({**good, "negatives": ["a", "b"], "neg_doc_ids": ["x"]})
    with scratch() as d:
        p = d / "train.jsonl"
        content, line = insert([json_line(ex.to_json()) for ex in examples], at, bad)
        p.write_bytes(content)
        with pytest.raises(InputError) as err:
            load_training_examples(p)
        assert_names(err.value, p, line)


@pytest.mark.parametrize("scores", ["ab", 5, [None], [1.0, "x"], [1.0, 2.0]])
def test_training_examples_reject_bad_scores(scores: Any) -> None:
    with scratch() as d:
        p = d / "train.jsonl"
        good = {"query": "q", "pos_doc_id": "d", "positive": "p"}
        p.write_bytes(json_line(good) + b"\n" + json_line({**good, "scores": scores}) + b"\n")
        with pytest.raises(InputError) as err:
            load_training_examples(p)
        assert_names(err.value, p, 2)


# ------------------------------------------------------------------------------------------ configs


FINITE = st.floats(allow_nan=False, allow_infinity=False)
UNIT = st.floats(0, 1)
POSITIVE = st.floats(min_value=0, exclude_min=True, allow_infinity=False)
#: valid values of a selection of settings, by section and key
VALID: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "": {"run_dir": TEXT, "seed": st.integers(min_value=0), "threads": st.none() | st.integers(min_value=1)},
    "dataset": {"train_split": st.none() | TEXT, "max_eval_queries": st.none() | st.integers(min_value=1)},
    "retrieve": {"k": st.integers(min_value=1), "k1": POSITIVE, "b": UNIT, "stopwords": st.none() | TEXT},
    "generate": {"model": TEXT, "temperature": st.floats(min_value=0, allow_infinity=False), "chat": st.booleans(),
                 "top_p": st.floats(0, 1, exclude_min=True), "queries_per_doc": st.integers(1, 1000),
                 "max_new_tokens": st.integers(1, 4096), "backend_options": st.dictionaries(TEXT, JSON_VALUES,
                                                                                            max_size=3)},
    "filter": {"min_words": st.integers(min_value=0), "max_words": st.integers(min_value=1),
               "copy_threshold": st.none() | st.floats(0, 1, exclude_min=True)},
    "negatives": {"method": st.sampled_from(["bm25", "random", "dense"]), "n_negatives": st.integers(1, 1000),
                  "teacher_weight": UNIT, "teacher": st.sampled_from(["none", "fused"])},
    "train": {"loss": st.sampled_from(["bce", "listwise", "margin-mse"]), "learning_rate": POSITIVE,
              "epochs": POSITIVE, "bf16": st.booleans(), "average_start": UNIT, "weight_decay": st.floats(min_value=0,
                                                                                                          allow_infinity=False)},
    "rerank": {"alphas": st.lists(UNIT, min_size=1, max_size=4), "alpha": st.none() | UNIT,
               "depth": st.integers(min_value=1), "decision_p": st.floats(0, 1, exclude_min=True)},
    "evaluate": {"permutations": st.integers(min_value=100), "baseline": st.none() | TEXT,
                 "tests": st.lists(st.sampled_from(["ttest", "permutation"]), max_size=2)},
}
#: invalid values: (section, key, strategy of values the key refuses)
WORDS = st.text(st.sampled_from("abcdxyz"), min_size=1, max_size=5)
BAD_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf])
INVALID: list[tuple[str, str, st.SearchStrategy[Any]]] = [
    ("", "seed", st.integers(max_value=-1) | WORDS),
    ("dataset", "max_eval_queries", st.integers(max_value=0) | st.floats(0.1, 0.9)),
    ("retrieve", "k", st.integers(max_value=0) | WORDS | st.just([1])),
    ("retrieve", "b", st.floats(min_value=1, exclude_min=True) | st.floats(max_value=0, exclude_max=True) | BAD_FLOATS),
    ("generate", "top_p", st.floats(max_value=0) | st.floats(min_value=1, exclude_min=True) | BAD_FLOATS),
    ("generate", "queries_per_doc", st.integers(min_value=1001) | st.integers(max_value=0)),
    ("generate", "backend_options", st.lists(st.integers(), max_size=2) | WORDS),
    ("negatives", "method", WORDS),
    ("train", "loss", WORDS),
    ("train", "learning_rate", st.floats(max_value=0) | BAD_FLOATS),
    ("rerank", "alphas", st.just([]) | st.lists(st.floats(min_value=1, exclude_min=True), min_size=1, max_size=2)),
    ("evaluate", "permutations", st.integers(max_value=99)),
    ("evaluate", "tests", st.lists(WORDS, min_size=1, max_size=2)),
]


@st.composite
def config_dicts(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {"dataset": {"name": draw(TEXT)}}
    for section, fields in VALID.items():
        chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=len(fields)))
        target = data if not section else data.setdefault(section, {})
        for key in chosen:
            target[key] = draw(fields[key])
    return data


def dump(path: Path, data: Any, **kwargs: Any) -> Path:
    path.write_text(yaml.safe_dump(data, **kwargs), encoding="utf-8")
    return path


@FEW
@given(data=config_dicts())
def test_config_dump_reload_is_identity(data: dict[str, Any]) -> None:
    """Any valid config, dumped to YAML (whole, or as ``inpars run --print-config`` prints it: defaults
    left out) and loaded again, equals itself. (Dumped as the project dumps, escaping non-ASCII: PyYAML's
    ``allow_unicode=True`` writes a NEL, U+0085, raw, and its own loader reads it back as a line break.)"""
    cfg = load_config_dict(data)
    with scratch() as d:
        full = dump(d / "full.yaml", cfg.model_dump(mode="json"))
        short = dump(d / "short.yaml", cfg.model_dump(mode="json", exclude_defaults=True), sort_keys=False)
        assert load_config(full) == cfg
        assert load_config(short) == cfg
        assert load_config(full).model_dump(mode="json") == cfg.model_dump(mode="json")


@FEW
@given(data=config_dicts(), bad=st.sampled_from(INVALID).flatmap(
    lambda t: st.tuples(st.just(t[0]), st.just(t[1]), t[2])), unknown=st.booleans())
def test_config_names_the_key_path_of_a_bad_value(data: dict[str, Any], bad: tuple[str, str, Any],
                                                  unknown: bool) -> None:
    """An invalid value (out of range, non-finite, of the wrong type, not one of the choices) or an unknown
    key is a ConfigError naming the config file and the key's dotted path."""
    section, key, value = bad
    if unknown:
        key = key + "_typo"
    target = data if not section else data.setdefault(section, {})
    target[key] = value
    where = f"{section}.{key}" if section else key
    with scratch() as d:
        p = dump(d / "bad.yaml", data)
        with pytest.raises(ConfigError) as err:
            load_config(p)
    msg = str(err.value)
    assert str(p) in msg and f"  {where}" in msg, msg
    if unknown:
        assert f"{where}: unknown key" in msg


def mapping_keys(node: yaml.Node) -> Iterator[yaml.ScalarNode]:
    """The keys of every block mapping reached through mappings only (not inside a list)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield from mapping_keys(value)


@FEW
@given(data=config_dicts(), pick=st.integers(min_value=0))
def test_config_names_the_line_of_a_key_given_twice(data: dict[str, Any], pick: int) -> None:
    """A key given twice in one mapping is refused at the line of its second occurrence (path:line)."""
    text = yaml.safe_dump(load_config_dict(data).model_dump(mode="json"), sort_keys=False)
    lines = text.splitlines()
    root = yaml.compose(text)
    assert root is not None
    keys = [k for k in mapping_keys(root) if k.start_mark.line == k.end_mark.line
            and not lines[k.start_mark.line][: k.start_mark.column].strip()]
    key = keys[pick % len(keys)]
    i, col = key.start_mark.line, key.start_mark.column
    lines.insert(i, " " * col + lines[i][col: key.end_mark.column] + ": 0")  # the original is now line i + 2
    with scratch() as d:
        p = d / "dup.yaml"
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with pytest.raises(ConfigError) as err:
            load_config(p)
    assert f"{p}:{i + 2}: invalid YAML" in str(err.value), str(err.value)
    assert "given twice" in str(err.value)
