"""A JSONL corpus held as byte offsets: documents are read from the file when they are looked up.

:meth:`inpars.datasets.BeirDataset.docs` returns a :class:`CorpusView`, so a stage that needs a few
documents of a large corpus (a sample, the negatives of some queries) holds their offsets, not every text.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from inpars.errors import InputError
from inpars.io import parse_jsonl_line
from inpars.records import Document


def beir_document(obj: dict[str, Any], path: Path, line: int) -> Document:
    """The :class:`Document` of one BEIR corpus object (``_id`` required; a missing title or text is empty)."""
    doc_id = get_str(obj, "_id", path, line)
    text = get_str(obj, "text", path, line, required=False)
    title = get_str(obj, "title", path, line, required=False)
    return Document(doc_id=doc_id, text=text, title=title)


class CorpusView(Mapping[str, Document]):
    """The documents of a JSONL corpus by id, read from the file on lookup.

    Holds each document's byte offset (in corpus order) and a small cache of recently read documents;
    the file was checked when the offsets were taken, and is read back unchanged (inputs are never
    rewritten). Thread-safe; picklable (the open file and the cache are not carried).
    """

    CACHE_SIZE = 4096

    def __init__(self, path: str | Path, offsets: dict[str, int]) -> None:
        self.path = Path(path)
        self._offsets = offsets
        self._init_reader()

    def _init_reader(self) -> None:
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._cache: OrderedDict[str, Document] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_offsets": self._offsets}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_reader()

    def __del__(self) -> None:
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()

    def __repr__(self) -> str:
        return f"CorpusView({str(self.path)!r}, {len(self)} documents)"

    def __len__(self) -> int:
        return len(self._offsets)

    def __iter__(self) -> Iterator[str]:
        return iter(self._offsets)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._offsets

    def __getitem__(self, doc_id: str) -> Document:
        offset = self._offsets[doc_id]  # KeyError for an unknown id, as a dict
        with self._lock:
            doc = self._cache.get(doc_id)
            if doc is not None:
                self._cache.move_to_end(doc_id)
                return doc
            if self._file is None:
                self._file = open(self.path, "rb")  # noqa: SIM115 (kept open for later lookups)
            self._file.seek(offset)
            raw = self._file.readline()
        obj = parse_jsonl_line(raw, self.path, 1 if offset == 0 else 0)
        doc = beir_document(obj or {}, self.path, 0)
        if doc.doc_id != doc_id:
            raise InputError(f"document '{doc_id}' is no longer at byte {offset}: the corpus changed", self.path)
        with self._lock:
            self._cache[doc_id] = doc
            if len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return doc


def get_str(obj: dict, key: str, path: Path, line: int, required: bool = True) -> str:
    if key not in obj or obj[key] is None:
        if required:
            raise InputError("missing", path, line, key)
        return ""
    value = obj[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "_id":
        return str(value)
    if not isinstance(value, str):
        raise InputError(f"expected a string, got {type(value).__name__}", path, line, key)
    return value
