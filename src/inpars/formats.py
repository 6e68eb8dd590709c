"""The original InPars toolkit's files, both ways: training triples/pairs TSV and generated-query JSONL.

Formats (as the original toolkit, github.com/zetaalphavector/InPars, writes and reads them):

- **triples** TSV, no header: ``query<TAB>positive text<TAB>negative text``, one line per negative. The
  toolkit writes it with ``csv.writer(delimiter='\\t', lineterminator='\\n', quoting=csv.QUOTE_MINIMAL)``
  (``inpars/generate_triples.py``; InPars-v1's ``generate_triples_train.py``, which InPars-v2's
  ``train_inpars.py`` runs too, writes the same columns with a plain f-string) and
  reads it with ``datasets.load_dataset('csv', sep='\\t', names=('query', 'positive', 'negative'))``
  (``inpars/train.py``), i.e. with CSV quoting: that is how it is read here too.
- **pairs** TSV, no header: ``query<TAB>passage<TAB>label`` with label ``0`` or ``1`` (``inpars/train.py``
  reads it with ``names=('query', 'passage', 'label')``).
- **monoT5 pairs**, InPars-v2's training input: ``Query: q Document: d Relevant:<TAB>true`` (or ``false``).
- **generated queries** JSONL: the toolkit's ``generate.py`` writes ``query``, ``log_probs``,
  ``prompt_text``, ``doc_id``, ``fewshot_examples`` (+ the corpus columns, e.g. ``text``); InPars-v1's
  published files (``generate_queries_openai.py``) write ``doc_id``, ``doc_text``, ``question``,
  ``log_probs``. Both load as :class:`~inpars.records.GeneratedQuery` (``question`` is read as ``query``).

Triples and pairs carry no document ids: a text's id here is ``tsv:`` + the first 16 hex digits of its
SHA-256, so that the same text always gets the same id. Reading groups the lines of one (query,
positive) into one :class:`~inpars.records.TrainingExample` with all its negatives, in file order.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from inpars.errors import InputError
from inpars.io import atomic_write
from inpars.records import TrainingExample
from inpars.runfiles import open_binary

log = logging.getLogger(__name__)

#: Training-file formats :func:`read_training_file` understands.
TRAINING_FORMATS: tuple[str, ...] = ("jsonl", "triples", "pairs", "monot5")


def text_id(text: str) -> str:
    """A stable id for a text that has none: ``tsv:`` + 16 hex digits of its SHA-256."""
    return "tsv:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _clean_query(text: str) -> str:
    return " ".join(text.split())  # the original: ' '.join(row["query"].split())


def _clean_doc(text: str) -> str:
    # the original: corpus[id].replace('\n', ' ').strip(); a CR too, which a TSV reader also takes for a
    # line break (csv quotes neither)
    return text.replace("\r", " ").replace("\n", " ").strip()


def _rows(path: Path, width: int, names: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """CSV rows of a TAB-separated file (the quoting pandas and the original apply), checked for width."""
    import io

    with open_binary(path) as raw:
        try:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.reader(text, delimiter="\t", quotechar='"', strict=True)
            for row in reader:
                line = reader.line_num
                if not row or row == [""]:
                    continue
                if len(row) != width:
                    raise InputError(
                        f"expected {width} TAB-separated columns ({', '.join(names)}), got {len(row)}", path, line
                    )
                for name, value in zip(names, row, strict=True):
                    if not value.strip():
                        raise InputError("empty", path, line, name)
                yield line, row
        except UnicodeDecodeError as exc:  # decoded by blocks: the line is found in the bytes
            raise InputError(f"invalid UTF-8 ({exc.reason})", path, _bad_utf8_line(path)) from None
        except csv.Error as exc:
            raise InputError(f"malformed TSV ({exc})", path, reader.line_num) from None


def _bad_utf8_line(path: Path) -> int | None:
    """The line (counted as the csv reader counts them: CR, LF or CRLF ends one) of the first invalid UTF-8."""
    with open_binary(path) as f:
        data = f.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = data[: exc.start]
        return 1 + head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n")
    return None


def read_triples(path: str | Path) -> list[TrainingExample]:
    """Training examples from the original's triples TSV (``query<TAB>positive<TAB>negative``)."""
    path = Path(path)
    groups: dict[tuple[str, str], TrainingExample] = {}
    for _, (query, positive, negative) in _rows(path, 3, ("query", "positive", "negative")):
        ex = groups.get((query, positive))
        if ex is None:
            ex = groups[(query, positive)] = TrainingExample(
                query=query, pos_doc_id=text_id(positive), positive=positive, query_id=text_id(query)
            )
        if negative == positive:
            continue
        ex.negatives.append(negative)
        ex.neg_doc_ids.append(text_id(negative))
    if not groups:
        raise InputError("no triple in the file", path)
    return list(groups.values())


def read_pairs(path: str | Path) -> list[TrainingExample]:
    """Training examples from the original's pairs TSV (``query<TAB>passage<TAB>label``, label 0 or 1).

    Each relevant pair is an example whose negatives are that query's label-0 passages; a query without
    a relevant passage is skipped with a warning.
    """
    path = Path(path)
    rows = []
    for line, (query, passage, label) in _rows(path, 3, ("query", "passage", "label")):
        if label.strip() not in ("0", "1"):
            raise InputError(f"label must be 0 or 1, got {label!r}", path, line, "label")
        rows.append((query, passage, label.strip() == "1"))
    return _group_pairs(rows, path)


def read_monot5_pairs(path: str | Path) -> list[TrainingExample]:
    """Training examples from monoT5 text-to-text pairs (``Query: q Document: d Relevant:<TAB>true|false``),
    the file InPars-v2 trained on (its train_inpars.py runs pygaggle's create_msmarco_monot5_train.py,
    which writes ``f'Query: {query} Document: {document} Relevant:\\t{label}\\n'``)."""
    path = Path(path)
    rows = []
    with open_binary(path) as f:
        for i, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if i == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise InputError(f"invalid UTF-8 at byte {exc.start}", path, i) from None
            if not line.strip():
                continue
            text, tab, label = line.rpartition("\t")
            query, sep, doc = text.removeprefix("Query: ").partition(" Document: ")
            if not tab or not text.startswith("Query: ") or not sep or not doc.endswith(" Relevant:"):
                raise InputError("expected 'Query: ... Document: ... Relevant:<TAB>true|false'", path, i)
            if label not in ("true", "false"):
                raise InputError(f"label must be true or false, got {label!r}", path, i, "label")
            rows.append((query, doc.removesuffix(" Relevant:"), label == "true"))
    return _group_pairs(rows, path)


def _group_pairs(rows: list[tuple[str, str, bool]], path: Path) -> list[TrainingExample]:
    pos: dict[str, list[str]] = {}
    neg: dict[str, list[str]] = {}
    for query, passage, relevant in rows:
        pos.setdefault(query, [])
        (pos if relevant else neg).setdefault(query, []).append(passage)
    out = []
    for query, positives in pos.items():
        negatives = list(dict.fromkeys(neg.get(query, [])))
        for p in dict.fromkeys(positives):
            out.append(TrainingExample(query=query, pos_doc_id=text_id(p), positive=p, query_id=text_id(query),
                                       neg_doc_ids=[text_id(n) for n in negatives], negatives=list(negatives)))
    skipped = sum(1 for q in pos if not pos[q])
    if skipped:
        log.warning("%s: %d queries have no relevant passage; skipped", path, skipped)
    if not out:
        raise InputError("no relevant pair in the file", path)
    return out


def sniff_training_format(path: str | Path) -> str:
    """``jsonl`` when the first non-empty line starts with ``{`` (or there is none), ``monot5`` when it is a
    monoT5 pair; else ``pairs`` when every last column of the first lines is 0 or 1; else ``triples``."""
    labels: list[str] = []
    with open_binary(path) as f:
        for i, raw in enumerate(f):
            line = raw.decode("utf-8-sig" if i == 0 else "utf-8", errors="replace").strip("\r\n")
            if not line.strip():
                continue
            if not labels and line.lstrip().startswith("{"):
                return "jsonl"
            if not labels and line.startswith("Query: ") and line.endswith(("Relevant:\ttrue", "Relevant:\tfalse")):
                return "monot5"
            labels.append(line.rsplit("\t", 1)[-1].strip())
            if len(labels) >= 100:
                break
    if not labels:
        return "jsonl"  # an empty file: its reader says there is no example in it
    return "pairs" if all(x in ("0", "1") for x in labels) else "triples"


def read_training_file(path: str | Path, fmt: str | None = None) -> list[TrainingExample] | None:
    """Examples of a triples, pairs or monoT5 file (``fmt`` or sniffed); None for JSONL, which its caller reads."""
    fmt = fmt or sniff_training_format(path)
    if fmt not in TRAINING_FORMATS:
        raise InputError(f"unknown training-file format '{fmt}' (one of {', '.join(TRAINING_FORMATS)})", path)
    if fmt == "triples":
        return read_triples(path)
    if fmt == "pairs":
        return read_pairs(path)
    if fmt == "monot5":
        return read_monot5_pairs(path)
    return None


def _writer(f):  # type: ignore[no-untyped-def]
    # the original's writer (inpars/generate_triples.py)
    return csv.writer(f, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)


def _row(texts: list[str], names: tuple[str, ...], k: int) -> list[str]:
    """``texts`` as they are written, each refused when empty (the readers refuse an empty field)."""
    for name, value in zip(names, texts, strict=True):
        if not value:
            raise InputError(f"example {k}: empty {name} after normalisation: a training file cannot hold it")
    return texts


def write_triples(path: str | Path, examples: Iterable[TrainingExample]) -> int:
    """Write examples as the original's triples TSV (one line per negative); returns the lines written.

    Queries are whitespace-normalised and line breaks in texts become spaces, as the original does; an
    example without negatives has no triple and is left out (counted in a warning). A text left empty by
    this (which :func:`read_triples` would refuse) is an :class:`InputError`, and nothing is written.
    """
    n = skipped = 0
    with atomic_write(path, encoding="utf-8") as f:
        w = _writer(f)
        for k, ex in enumerate(examples, start=1):
            if not ex.negatives:
                skipped += 1
            for negative in ex.negatives:
                w.writerow(_row([_clean_query(ex.query), _clean_doc(ex.positive), _clean_doc(negative)],
                                ("query", "positive", "negative"), k))
                n += 1
    if skipped:
        log.warning("%s: %d examples without negatives have no triple", path, skipped)
    return n


def write_pairs(path: str | Path, examples: Iterable[TrainingExample]) -> int:
    """Write examples as the original's pairs TSV: the positive with label 1, each negative with 0.

    Texts are normalised as :func:`write_triples` does; an empty one is an :class:`InputError`."""
    n = 0
    with atomic_write(path, encoding="utf-8") as f:
        w = _writer(f)
        for k, ex in enumerate(examples, start=1):
            query = _clean_query(ex.query)
            w.writerow([*_row([query, _clean_doc(ex.positive)], ("query", "positive"), k), 1])
            for negative in ex.negatives:
                w.writerow([*_row([query, _clean_doc(negative)], ("query", "negative"), k), 0])
            n += 1 + len(ex.negatives)
    return n


def generated_as_training(obj: dict[str, Any]) -> dict[str, Any]:
    """A generated-query line of the original toolkit as a training-example object (positive only).

    InPars-v1's ``question``/``doc_text``/``doc_id`` and the toolkit's ``query``/``text``/``doc_id`` (its
    generate.py keeps the corpus columns) become ``query``/``positive``/``pos_doc_id``; an object that
    already has ``positive``, or is neither, is returned unchanged.

    >>> generated_as_training({"doc_id": "7", "doc_text": "a doc", "question": "q?", "log_probs": [-0.1]})
    {'query': 'q?', 'pos_doc_id': '7', 'positive': 'a doc'}
    """
    if "positive" in obj or "doc_id" not in obj:
        return obj
    text = obj.get("doc_text", obj.get("text") if "log_probs" in obj else None)
    query = obj.get("query", obj.get("question"))
    if text is None or query is None:
        return obj
    return {"query": query, "pos_doc_id": obj["doc_id"], "positive": text}
