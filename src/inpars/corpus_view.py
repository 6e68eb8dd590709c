"""A JSONL corpus held as byte offsets: documents are read from the file when they are looked up.

:meth:`inpars.datasets.BeirDataset.docs` returns a :class:`CorpusView`, so a stage that needs a few
documents of a large corpus (a sample, the negatives of some queries) holds their offsets, not every text.
:func:`text_columns` gives every document's id, text length and text key in corpus order (a view's own
arrays, or computed once from any mapping): what the document sample and the duplicate-text checks read,
with no lookup per document.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from inpars.errors import InputError
from inpars.id_table import IdIndex, IdList
from inpars.io import parse_jsonl_line
from inpars.records import Document
from inpars.text import text_key

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

    Holds each document's id, byte offset, text length and text key (in corpus order) in compact arrays
    (an :class:`~inpars.id_table.IdList`, about 32 bytes per document plus its id, and, from the first
    lookup, an :class:`~inpars.id_table.IdIndex` of 16 more) and a small cache of recently read documents;
    the file was checked when the offsets were taken, and is read back unchanged (inputs are never
    rewritten). ``items()`` and ``values()`` read the file in order, once. Thread-safe; picklable (the open
    file, the cache and the lookup index are not carried).
    """

    CACHE_SIZE = 4096

    def __init__(self, path: str | Path, ids: IdList, offsets: np.ndarray, lengths: np.ndarray,
                 keys: np.ndarray) -> None:
        if not len(ids) == len(offsets) == len(lengths) == len(keys):
            raise ValueError(f"{len(ids)} ids for {len(offsets)} offsets, {len(lengths)} lengths, {len(keys)} keys")
        self.path = Path(path)
        self._ids = ids
        self._offsets = offsets
        self._lengths = lengths
        self._keys = keys
        self._init_reader()

    @classmethod
    def from_documents(cls, path: str | Path, docs: Iterable[tuple[int, Document]]) -> CorpusView:
        """The view of ``(byte offset, document)`` pairs read from ``path``, kept as ids, offsets, text
        lengths and text keys only (:func:`text_columns`)."""
        import numpy as np

        # offsets, lengths and keys: each a list of int64 arrays of 65,536 documents, joined at the end
        done: tuple[list[np.ndarray], ...] = ([], [], [])
        batch: tuple[list[int], ...] = ([], [], [])

        def flush() -> None:
            for column, values in zip(done, batch, strict=True):
                column.append(np.array(values, dtype=np.int64))
                values.clear()

        def ids() -> Iterator[str]:
            for offset, doc in docs:
                length, key = _text_facts(doc)
                batch[0].append(offset)
                batch[1].append(length)
                batch[2].append(key)
                if len(batch[0]) >= 1 << 16:
                    flush()
                yield doc.doc_id

        id_list = IdList.from_strings(ids())
        flush()
        offsets, lengths, keys = (np.concatenate(column) for column in done)
        return cls(path, id_list, offsets, lengths, keys)

    def _init_reader(self) -> None:
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._cache: OrderedDict[str, Document] = OrderedDict()
        self._index: IdIndex | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_ids": self._ids, "_offsets": self._offsets, "_lengths": self._lengths,
                "_keys": self._keys}

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

    def position(self, doc_id: object) -> int | None:
        """Where ``doc_id`` is in corpus order, or None when the corpus lacks it."""
        if not isinstance(doc_id, str):
            return None
        if self._index is None:
            with self._build_lock:  # one thread builds it; the others wait for it
                if self._index is None:
                    self._index = IdIndex(self._ids)
        return self._index.find(doc_id)

    def __contains__(self, doc_id: object) -> bool:
        return self.position(doc_id) is not None

    def __getitem__(self, doc_id: str) -> Document:
        position = self.position(doc_id)
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
        doc = self._document(raw, offset, doc_id)
        with self._lock:
            self._cache[doc_id] = doc
            if len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return doc


    def _document(self, raw: bytes, offset: int, doc_id: str) -> Document:
        obj = parse_jsonl_line(raw, self.path, 1 if offset == 0 else 0)
        doc = beir_document(obj or {}, self.path, 0)
        if doc.doc_id != doc_id:
            raise InputError(f"document '{doc_id}' is no longer at byte {offset}: the corpus changed", self.path)
        return doc

    def scan(self) -> Iterator[tuple[str, Document]]:
        """Every ``(id, document)`` in corpus order, read from the file in one pass (no lookups)."""
        with open(self.path, "rb") as f:
            at = 0
            offsets = (o for lo in range(0, len(self), 1 << 16) for o in self._offsets[lo : lo + (1 << 16)].tolist())
            for doc_id, offset in zip(self._ids, offsets, strict=True):
                if offset != at:  # a blank line between documents
                    f.seek(offset)
                raw = f.readline()
                at = offset + len(raw)
                yield doc_id, self._document(raw, offset, doc_id)

    def items(self) -> ItemsView[str, Document]:
        return _ScanItems(self)

    def values(self) -> ValuesView[Document]:
        return _ScanValues(self)

    def columns(self) -> TextColumns:
        """The view's own :class:`TextColumns` (no pass over the file)."""
        return TextColumns(self._ids, self._lengths, self._keys, self.position)


class _ScanItems(ItemsView[str, Document]):
    _mapping: CorpusView

    def __iter__(self) -> Iterator[tuple[str, Document]]:
        return self._mapping.scan()


class _ScanValues(ValuesView[Document]):
    _mapping: CorpusView

    def __iter__(self) -> Iterator[Document]:
        return (doc for _, doc in self._mapping.scan())


@dataclass(frozen=True)
class TextColumns:
    """Every document of a corpus in corpus order: its id, the length of its ``full_text`` in characters (0
    when the text is blank) and its :func:`~inpars.text.text_key`; ``find`` gives an id's position (None when
    the corpus lacks it)."""

    ids: Sequence[str]
    lengths: np.ndarray
    keys: np.ndarray
    find: Callable[[str], int | None]

    def key(self, doc_id: str) -> int | None:
        """The text key of ``doc_id``, or None when the corpus lacks it."""
        i = self.find(doc_id)
        return None if i is None else int(self.keys[i])

    def is_eligible(self, doc_id: str, min_chars: int = 0) -> bool:
        """Whether the corpus has ``doc_id`` and its text is not blank and has at least ``min_chars`` characters."""
        i = self.find(doc_id)
        return i is not None and int(self.lengths[i]) >= max(min_chars, 1)

    def eligible_positions(self, min_chars: int = 0) -> np.ndarray:
        """The positions of the documents whose text is not blank and has at least ``min_chars`` characters,
        ordered by id (as ``sorted`` orders the ids; an :class:`~inpars.id_table.IdList` is sorted without
        decoding its ids)."""
        import numpy as np

        rows = np.flatnonzero(self.lengths >= max(min_chars, 1))
        if isinstance(self.ids, IdList):
            return self.ids.sorted_positions(rows)
        return np.array(sorted(rows.tolist(), key=self.ids.__getitem__), dtype=np.int64)

    def duplicate_groups(self, *, blank: bool) -> list[list[int]]:
        """The positions of the documents of each text shared by several documents, in corpus order
        (``blank``: the blank documents make one group too)."""
        import numpy as np

        rows = None if blank else np.flatnonzero(self.lengths > 0)
        keys = self.keys if rows is None else self.keys[rows]
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        same = keys[1:] == keys[:-1]  # a document with the text of the one before it, in key order
        del keys
        if not same.any():
            return []
        if rows is not None:
            order = rows[order]
        edges = np.diff(same.view(np.int8), prepend=0, append=0)  # +1 where a run of repeats starts, -1 after it
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) + 1
        return [order[a:b].tolist() for a, b in zip(starts.tolist(), stops.tolist(), strict=True)]


def _text_facts(doc: Document) -> tuple[int, int]:
    """A document's row of :class:`TextColumns`: the length of its ``full_text`` (0 when blank), its text key."""
    text = doc.full_text
    return (len(text) if text.strip() else 0), text_key(text)


def text_columns(docs: Mapping[str, Document]) -> TextColumns:
    """The :class:`TextColumns` of ``docs``: a :class:`CorpusView`'s own arrays, else computed in one pass."""
    if isinstance(docs, CorpusView):
        return docs.columns()
    import numpy as np

    ids: list[str] = []
    rows: list[tuple[int, int]] = []
    for doc_id, doc in docs.items():
        ids.append(doc_id)
        rows.append(_text_facts(doc))
    table = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return TextColumns(ids, np.ascontiguousarray(table[:, 0]), np.ascontiguousarray(table[:, 1]),
                       {d: i for i, d in enumerate(ids)}.get)


def same_text_groups(docs: Mapping[str, Document]) -> dict[str, frozenset[str]]:
    """For every document that has exact duplicates (same ``full_text`` up to whitespace), all their ids.

    Documents without duplicates and empty documents are left out.

    >>> docs = {d.doc_id: d for d in [Document("a", "x y"), Document("b", "x  y"), Document("c", "z")]}
    >>> sorted(same_text_groups(docs)["a"])
    ['a', 'b']
    >>> "c" in same_text_groups(docs)
    False
    """
    cols = text_columns(docs)
    out: dict[str, frozenset[str]] = {}
    for rows in cols.duplicate_groups(blank=False):
        group = frozenset(cols.ids[r] for r in rows)
        for d in group:
            out[d] = group
    return out


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
