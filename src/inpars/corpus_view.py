"""A JSONL corpus held as byte offsets: documents are read from the file when they are looked up.

:meth:`inpars.datasets.BeirDataset.docs` returns a :class:`CorpusView`, so a stage that needs a few
documents of a large corpus (a sample, the negatives of some queries) holds their offsets, not every text.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from inpars.errors import InputError
from inpars.id_table import IdIndex, IdList
from inpars.io import parse_jsonl_line
from inpars.records import Document

if TYPE_CHECKING:  # imported where used: the command line's parser imports no numpy
    import numpy as np


def beir_document(obj: dict[str, Any], path: Path, line: int) -> Document:
    """The :class:`Document` of one BEIR corpus object (``_id`` required; a missing title or text is empty)."""
    doc_id = get_str(obj, "_id", path, line)
    text = get_str(obj, "text", path, line, required=False)
    title = get_str(obj, "title", path, line, required=False)
    return Document(doc_id=doc_id, text=text, title=title)


class CorpusView(Mapping[str, Document]):
    """The documents of a JSONL corpus by id, read from the file on lookup.

    Holds each document's id and byte offset (in corpus order) in compact arrays (an
    :class:`~inpars.id_table.IdList`, about 16 bytes per document plus its id, and, from the first lookup,
    an :class:`~inpars.id_table.IdIndex` of 16 more) and a small cache of recently read documents; the file
    was checked when the offsets were taken, and is read back unchanged (inputs are never rewritten).
    Thread-safe; picklable (the open file, the cache and the lookup index are not carried).
    """

    CACHE_SIZE = 4096

    def __init__(self, path: str | Path, ids: IdList, offsets: np.ndarray) -> None:
        if len(ids) != len(offsets):
            raise ValueError(f"{len(ids)} ids for {len(offsets)} offsets")
        self.path = Path(path)
        self._ids = ids
        self._offsets = offsets
        self._init_reader()

    @classmethod
    def from_documents(cls, path: str | Path, docs: Iterable[tuple[int, Document]]) -> CorpusView:
        """The view of ``(byte offset, document)`` pairs read from ``path``, kept as ids and offsets only."""
        import numpy as np

        offsets: list[np.ndarray] = []
        batch: list[int] = []

        def ids() -> Iterator[str]:
            for offset, doc in docs:
                batch.append(offset)
                if len(batch) >= 1 << 16:
                    offsets.append(np.array(batch, dtype=np.int64))
                    batch.clear()
                yield doc.doc_id

        id_list = IdList.from_strings(ids())
        offsets.append(np.array(batch, dtype=np.int64))
        return cls(path, id_list, np.concatenate(offsets))

    def _init_reader(self) -> None:
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._cache: OrderedDict[str, Document] = OrderedDict()
        self._index: IdIndex | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_ids": self._ids, "_offsets": self._offsets}

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
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def _position(self, doc_id: object) -> int | None:
        if not isinstance(doc_id, str):
            return None
        if self._index is None:
            with self._build_lock:  # one thread builds it; the others wait for it
                if self._index is None:
                    self._index = IdIndex(self._ids)
        return self._index.find(doc_id)

    def __contains__(self, doc_id: object) -> bool:
        return self._position(doc_id) is not None

    def __getitem__(self, doc_id: str) -> Document:
        position = self._position(doc_id)
        if position is None:
            raise KeyError(doc_id)  # as a dict
        offset = int(self._offsets[position])
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
