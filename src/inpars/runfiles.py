"""Run, qrels and query files: TREC and MS MARCO runs, TREC and BEIR qrels, TSV/JSONL query lists.

Every reader takes plain or gzip-compressed files (by the ``.gz`` suffix or the gzip magic bytes) and
raises :class:`~inpars.errors.InputError` naming file, line and field on a malformed line.

- runs: TREC (``qid Q0 docid rank score tag``, whitespace-separated) or MS MARCO
  (``qid<TAB>docid<TAB>rank``, score taken as ``1/rank`` so that trec_eval's order is the file's rank
  order, as Pyserini converts them); one file holds one of the two formats;
- qrels: TREC (``qid 0 docid rel``) or BEIR TSV (``query-id<TAB>corpus-id<TAB>score``, header line);
- queries: TSV ``id<TAB>text`` or JSONL ``{"_id": ..., "text": ...}``.

Ids are written into whitespace-separated files, so an id holding whitespace cannot be represented:
a TAB-separated line whose id field holds a space, and any attempt to write such an id, is an error.
"""

from __future__ import annotations

import gzip
import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from inpars.errors import InputError
from inpars.io import atomic_write, parse_jsonl_line
from inpars.records import Qrel, Run, ScoredDoc

log = logging.getLogger(__name__)


_WHITESPACE = re.compile(r"\s")


def _natural_key(s: str) -> tuple[int, str]:
    return (len(s), s) if s.isdigit() else (1 << 30, s)


def open_binary(path: str | Path) -> IO[bytes]:
    """Open ``path`` for reading bytes, decompressing gzip transparently."""
    f = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    if f.peek(2)[:2] == b"\x1f\x8b":
        f.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return f


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    with open_binary(path) as f:
        try:
            for i, raw in enumerate(f, start=1):
                try:
                    text = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    raise InputError(f"invalid UTF-8 at byte {exc.start}", path, i) from None
                yield i, text.removeprefix("\ufeff") if i == 1 else text
        except (gzip.BadGzipFile, EOFError) as exc:
            raise InputError(f"corrupt gzip file ({exc})", path) from None


def check_id(value: str, what: str) -> str:
    """``value`` unchanged; :class:`InputError` when it is empty or holds whitespace (TREC files cannot), or
    starts with a byte-order mark (U+FEFF, which every reader drops at the start of a file)."""
    if not value or _WHITESPACE.search(value):
        raise InputError(
            f"{what} {value!r} is empty or holds whitespace: TREC run and qrels files separate columns by "
            "whitespace and cannot represent it; rename the id"
        )
    if value.startswith("\ufeff"):
        raise InputError(f"{what} {value!r} starts with a byte-order mark (U+FEFF), which readers drop at the "
                         "start of a file; rename the id")
    return value


# --------------------------------------------------------------------------------------------- qrels


def read_qrels(path: str | Path) -> list[Qrel]:
    """Read qrels in TREC (``qid 0 docid rel``) or BEIR tsv (``query-id corpus-id score``, header) format."""
    path = Path(path)
    out: list[Qrel] = []
    seen: dict[tuple[str, str], int] = {}
    for i, line in _read_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [p.strip() for p in parts]
        if i == 1 and parts and parts[0].lower() in {"query-id", "query_id", "qid"} and not _is_number(parts[-1]):
            continue  # BEIR header (a judgement of a query named 'qid' has a number last)
        if len(parts) == 4:
            qid, _, did, rel = parts
        elif len(parts) == 3:
            qid, did, rel = parts
        else:
            raise InputError(
                f"expected 'qid 0 docid relevance' (TREC) or 'query-id<TAB>corpus-id<TAB>score' (BEIR), "
                f"got {len(parts)} columns",
                path,
                i,
            )
        try:
            grade = int(rel) if rel.lstrip("+-").isdigit() else int(float(rel))  # '2.0' too; never through a float
        except (ValueError, OverflowError):  # OverflowError: 'inf', '1e400'
            raise InputError(f"relevance must be an integer, got '{rel}'", path, i, "relevance") from None
        key = (qid, did)
        if key in seen:
            if seen[key] != grade:
                raise InputError(
                    f"({qid}, {did}) judged twice with different grades {seen[key]} and {grade}",
                    path,
                    i,
                    "relevance",
                )
            log.warning("%s:%d: duplicate judgement (%s, %s) ignored", path, i, qid, did)
            continue
        seen[key] = grade
        out.append(Qrel(qid, did, grade))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_qrels(path: str | Path, qrels: Iterable[Qrel], fmt: str = "trec") -> None:
    """Write qrels as TREC (``qid 0 docid rel``) or BEIR tsv (with header), atomically."""
    if fmt not in ("trec", "beir"):
        raise ValueError(f"unknown qrels format '{fmt}' (trec or beir)")
    with atomic_write(path) as f:
        if fmt == "beir":
            f.write("query-id\tcorpus-id\tscore\n")
        for q in qrels:
            check_id(q.query_id, "query id")
            check_id(q.doc_id, "document id")
            if fmt == "beir":
                f.write(f"{q.query_id}\t{q.doc_id}\t{q.relevance}\n")
            else:
                f.write(f"{q.query_id} 0 {q.doc_id} {q.relevance}\n")


# ---------------------------------------------------------------------------------------------- runs


def _split_run_line(line: str, path: Path, i: int) -> list[str]:
    if "\t" in line:
        fields = line.split("\t")
        if len(fields) in (3, 6):
            for name, value in zip(("qid", "docid"), (fields[0], fields[2 if len(fields) == 6 else 1]), strict=True):
                if _WHITESPACE.search(value):
                    raise InputError(
                        f"id {value!r} holds whitespace: run files cannot represent it", path, i, name
                    )
    return line.split()


def _iter_run(path: Path) -> Iterator[tuple[str, str, float]]:
    seen: dict[str, set[str]] = defaultdict(set)
    width: int | None = None
    for i, line in _read_lines(path):
        parts = _split_run_line(line, path, i)
        if not parts:
            continue
        if len(parts) not in (3, 6):
            raise InputError(
                f"expected 6 columns 'qid Q0 docid rank score tag' (TREC) or 3 'qid docid rank' (MS MARCO), "
                f"got {len(parts)}",
                path,
                i,
            )
        if width is not None and len(parts) != width:
            raise InputError(
                f"{len(parts)} columns after lines of {width}: a run is either TREC (6) or MS MARCO (3)", path, i
            )
        width = len(parts)
        if width == 6:
            qid, _, did, rank, score, _tag = parts
        else:
            qid, did, rank = parts
            score = ""
        try:
            rank_value = int(rank)
        except ValueError:
            raise InputError(f"rank must be an integer, got '{rank}'", path, i, "rank") from None
        if width == 6:
            try:
                value = float(score)
            except ValueError:
                raise InputError(f"score must be a number, got '{score}'", path, i, "score") from None
            if not math.isfinite(value):  # measures would rank a 'nan' first (RR) or last (nDCG) at will
                raise InputError(f"score must be a finite number, got '{score}'", path, i, "score")
        else:
            if rank_value < 1:
                raise InputError(f"rank must be >= 1 in an MS MARCO run, got {rank_value}", path, i, "rank")
            value = 1.0 / rank_value
        docs = seen[qid]
        if did in docs:
            raise InputError(f"document '{did}' appears twice for query '{qid}'", path, i, "docid")
        docs.add(did)
        yield qid, did, value


def read_run(path: str | Path) -> list[ScoredDoc]:
    """Read a TREC or MS MARCO run (plain or .gz); order within a query is by score as in trec_eval."""
    return [ScoredDoc(q, d, s) for q, d, s in _iter_run(Path(path))]


def run_to_dict(run: Iterable[ScoredDoc]) -> Run:
    """``{query_id: {doc_id: score}}``."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for r in run:
        out[r.query_id][r.doc_id] = r.score
    return dict(out)


def read_run_dict(path: str | Path) -> Run:
    """Read a run as ``{query_id: {doc_id: score}}`` (same formats and checks as :func:`read_run`)."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for q, d, s in _iter_run(Path(path)):
        out[q][d] = s
    return dict(out)


def ranked(scores: dict[str, float]) -> list[tuple[str, float]]:
    """Documents in trec_eval's order: score descending, ties broken by doc id descending."""
    return sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def write_run(
    path: str | Path,
    run: dict[str, dict[str, float]] | Iterable[ScoredDoc],
    tag: str = "inpars",
    depth: int | None = None,
) -> None:
    """Write a TREC run atomically, each query's documents ranked as trec_eval ranks them.

    Scores are written with 8 decimals, or with every digit when 8 decimals would change them (so that the
    file reads back the same scores, and trec_eval ranks it as it was written). An id holding whitespace,
    or a score that is not finite (:func:`read_run` refuses both), raises :class:`InputError` before
    anything is written.
    """
    as_dict = run if isinstance(run, dict) else run_to_dict(run)
    for qid, docs in as_dict.items():
        check_id(qid, "query id")
        for did, score in docs.items():
            check_id(did, f"document id (query {qid})")
            if not math.isfinite(score):
                raise InputError(f"score {score} of document '{did}' (query '{qid}') is not a finite number: "
                                 "a run file cannot rank it")
    check_id(tag, "run tag")
    with atomic_write(path) as f:
        for qid in sorted(as_dict, key=_natural_key):
            for rank, (did, score) in enumerate(ranked(as_dict[qid])[:depth], start=1):
                f.write(f"{qid} Q0 {did} {rank} {_score_text(score)} {tag}\n")


def _score_text(score: float) -> str:
    """``score`` with 8 decimals when they hold it exactly, else in full (the shortest text that reads back
    as the same double)."""
    text = f"{score:.8f}"
    return text if float(text) == score else repr(float(score))


# ------------------------------------------------------------------------------------------- queries


def read_queries_file(path: str | Path) -> dict[str, str]:
    """Query texts by id from a TSV (``id<TAB>text``, no header) or JSONL (``{"_id", "text"}``) file.

    The format is read from the first non-empty line (``{`` starts JSONL). A duplicate id, a line without
    a TAB (TSV), a missing ``_id``/``text`` (JSONL) is an :class:`InputError`; a query with empty text
    is skipped with a warning. JSONL fields other than ``_id`` and ``text`` (BEIR's ``metadata``) are
    never read.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "q.tsv")
    >>> _ = open(p, "w").write("q1\\twhat is bm25?\\nq2\\tneural rerankers\\n")
    >>> read_queries_file(p)
    {'q1': 'what is bm25?', 'q2': 'neural rerankers'}
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"queries file not found: {path}")
    out: dict[str, str] = {}
    jsonl: bool | None = None
    for i, line in _read_lines(path):
        if not line.strip():
            continue
        if jsonl is None:
            jsonl = line.lstrip().startswith("{")
        if jsonl:
            obj = parse_jsonl_line(line.encode("utf-8"), path, i) or {}
            qid, text = obj.get("_id"), obj.get("text")
            if qid is None or isinstance(qid, bool) or not isinstance(qid, (str, int)):
                raise InputError("missing or not a string", path, i, "_id")
            if not isinstance(text, str):
                raise InputError("missing or not a string", path, i, "text")
            qid = str(qid)
        else:
            qid, tab, text = line.partition("\t")
            if not tab:
                raise InputError("expected 'id<TAB>text'", path, i)
            if "\t" in text:
                raise InputError("more than 2 TAB-separated columns: expected 'id<TAB>text'", path, i)
            qid = qid.strip()
        try:
            check_id(qid, "query id")
        except InputError as exc:
            raise InputError(exc.message, path, i, "id") from None
        if qid in out:
            raise InputError(f"duplicate query id '{qid}'", path, i, "id")
        if not text.strip():
            log.warning("%s:%d: query '%s' has empty text; skipped", path, i, qid)
            continue
        out[qid] = text.strip()
    if not out:
        raise InputError("no query in the file", path)
    return out
