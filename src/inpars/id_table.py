"""Document ids in compact arrays, for collections of millions of documents (MS MARCO passage: 8.8M).

A Python ``list``, ``dict`` or ``set`` of ids costs 60 to 130 bytes per id (the string object and the table
slots), so it grows by that much per million documents wherever a stage keeps every id. Here:

- :class:`IdList`: ids in order as one UTF-8 blob and the end offset of each (8 bytes plus the id's own
  bytes); saved as two ``.npy`` files that load memory-mapped (:class:`IdListWriter` streams them to disk).
- :class:`IdIndex`: the position of an id in an :class:`IdList`, from the ids' sorted 64-bit hashes
  (16 bytes per id), each hit checked against the id itself.
- :class:`SeenIds`: the ids met so far in one pass, to find a repeated one, in 8 bytes per id plus a
  bounded set of the most recent ones.

The hash (:func:`id_hash`) is Python's ``hash`` of the ``str``: fast, and the same within one process but
not across processes (``PYTHONHASHSEED``), so hashes are never stored or sent: an :class:`IdIndex` or a
:class:`SeenIds` lives in the process that built it. Ids are encoded with ``surrogatepass``: an id holding a
lone surrogate (JSON allows one) round-trips.

>>> ids = IdList.from_strings(["d1", "é", "d3"])
>>> len(ids), ids[1], list(ids)
(3, 'é', ['d1', 'é', 'd3'])
>>> index = IdIndex(ids)
>>> index.find("d3"), index.find("x")
(2, None)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, overload

if TYPE_CHECKING:  # numpy is imported where it is used: ``inpars --help`` imports no numpy
    import numpy as np

_ENCODING = ("utf-8", "surrogatepass")
_CHUNK = 1 << 16


def _encode(doc_id: str) -> bytes:
    return doc_id.encode(*_ENCODING)


def id_hash(doc_id: str) -> int:
    """The 64-bit hash of an id in this process (``hash``; never stored, never sent to another process)."""
    return hash(doc_id)


def id_hashes(ids: Iterable[str]) -> np.ndarray:
    """:func:`id_hash` of each id, as ``int64``."""
    import numpy as np

    return np.fromiter(map(hash, ids), dtype=np.int64)


def _batches(items: Iterable[str], size: int = _CHUNK) -> Iterator[list[str]]:
    it = iter(items)
    while batch := [s for _, s in zip(range(size), it, strict=False)]:
        yield batch


def _pack(ids: Iterable[str], offset: int) -> tuple[bytes, np.ndarray]:
    """The ids' bytes joined, and each id's end offset counted from ``offset``."""
    import numpy as np

    encoded = [_encode(s) for s in ids]
    ends = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    np.cumsum(ends, out=ends)
    return b"".join(encoded), ends + offset


def take(ids: Sequence[str], positions: np.ndarray) -> list[str]:
    """The ids at ``positions`` of an :class:`IdList` (:meth:`IdList.take`) or of any sequence of ids."""
    return ids.take(positions) if isinstance(ids, IdList) else [ids[i] for i in positions.tolist()]


class IdList(Sequence[str]):
    """Ids in order: ``blob`` (``uint8``, the UTF-8 bytes one after another) and ``ends`` (``int64``, where
    each id's bytes end). Indexing decodes one id; iteration decodes them in order."""

    def __init__(self, blob: np.ndarray, ends: np.ndarray) -> None:
        import numpy as np

        if blob.dtype != np.uint8 or (ends.dtype.kind, ends.dtype.itemsize) != ("i", 8) or blob.ndim != 1 or ends.ndim != 1:
            raise ValueError("an IdList is a 1-D uint8 blob and 1-D int64 end offsets")
        if len(ends) and int(ends[-1]) != len(blob):
            raise ValueError(f"the last id ends at byte {int(ends[-1])}, the blob holds {len(blob)}")
        self._blob = blob
        self._ends = ends

    @classmethod
    def from_strings(cls, ids: Iterable[str]) -> IdList:
        """An IdList of ``ids`` (read in chunks, so an iterator is never held as a list)."""
        import numpy as np

        blobs: list[bytes] = []
        ends: list[np.ndarray] = []
        size = 0
        for chunk in _batches(ids):
            blob, chunk_ends = _pack(chunk, size)
            blobs.append(blob)
            ends.append(chunk_ends)
            size += len(blob)
        return cls(np.frombuffer(b"".join(blobs), dtype=np.uint8),
                   np.concatenate(ends) if ends else np.empty(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self._ends)

    def _one(self, i: int) -> str:
        start = int(self._ends[i - 1]) if i else 0
        return bytes(self._blob[start : int(self._ends[i])]).decode(*_ENCODING)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self._one(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        j = int(i) + n if int(i) < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"id {i} out of range for {n} ids")
        return self._one(j)

    def __iter__(self) -> Iterator[str]:
        start = 0
        for lo in range(0, len(self), _CHUNK):
            ends = self._ends[lo : lo + _CHUNK].tolist()
            raw = bytes(self._blob[start : ends[-1]]) if ends else b""
            prev = 0
            for end in ends:
                yield raw[prev : end - start].decode(*_ENCODING)
                prev = end - start
            start = ends[-1] if ends else start

    def take(self, positions: np.ndarray | Sequence[int]) -> list[str]:
        """The ids at ``positions``, decoded in one pass (what a search does with its top rows)."""
        import numpy as np

        rows = np.asarray(positions, dtype=np.int64)
        if rows.size and int(rows.min()) < 0:
            raise IndexError("IdList.take: negative position")
        stops = self._ends[rows]
        starts = self._starts(rows)
        raw = memoryview(self._blob)  # type: ignore[arg-type]
        return [str(raw[a:b], *_ENCODING) for a, b in zip(starts.tolist(), stops.tolist(), strict=True)]

    def _starts(self, rows: np.ndarray) -> np.ndarray:
        """Where the ids at ``rows`` (non-negative positions) start in the blob, as ``int64``."""
        import numpy as np

        before = rows.astype(np.int64)
        before -= 1
        starts = self._ends[np.maximum(before, 0)]
        starts[before < 0] = 0
        return starts

    def sorted_positions(self, positions: np.ndarray | Sequence[int] | None = None) -> np.ndarray:
        """``positions`` (default: all) ordered by their ids as ``sorted`` orders the strings (code point
        order, which is the byte order of their UTF-8), without decoding an id.

        The ids' bytes are compared 16 at a time (two big-endian 64-bit words and how many of the 16 bytes
        the id has): the first 16 for all, the next 16 only for the ids still tied, and so on; about 40 bytes
        per position while it runs (positions held as 32-bit integers below 2**31 ids). Repeated
        positions keep their order among themselves.

        >>> IdList.from_strings(["b", "a\\x00", "ab", "a", "é", "aé"]).sorted_positions().tolist()
        [3, 1, 2, 5, 0, 4]
        """
        import numpy as np

        width = 16
        n_ids = len(self)
        small = np.int32 if n_ids < 2**31 else np.int64
        order = np.arange(n_ids, dtype=small) if positions is None else np.array(positions, dtype=small)
        todo: np.ndarray | None = None  # the slots of ``order`` still tied with a neighbour (None: all of them), ascending
        run: np.ndarray | None = None  # for each slot of ``todo``: which run of tied slots it is in (None: one run)
        offset = 0
        while todo is None or len(todo):
            rows = order if todo is None else order[todo]
            first = self._starts(rows)
            first += offset
            have = self._ends[rows]
            have -= first
            np.clip(have, 0, width, out=have)
            have = have.astype(np.uint8)  # how many bytes of this window the id has
            window = np.zeros((len(rows), width), dtype=np.uint8)
            for k in range(width):
                inside = np.flatnonzero(have > k)
                window[inside, k] = self._blob[first[inside] + k]
            del first, inside
            words = window.view(">u8")
            keys = (have, words[:, 1], words[:, 0]) + (() if run is None else (run,))
            sort = np.lexsort(keys)  # the run last (the primary key): each run stays in its slots
            del keys
            if todo is None:
                order = order[sort]
            else:
                order[todo] = rows[sort]
            del rows
            new = np.zeros(len(sort), dtype=bool)
            new[:1] = True
            for column in (words[:, 0], words[:, 1], have) + (() if run is None else (run,)):
                ordered = column[sort]
                new[1:] |= ordered[1:] != ordered[:-1]
                del ordered
            del window, words
            have_sorted = have[sort]
            del sort
            tied = ~new
            tied[:-1] |= ~new[1:]
            more = np.flatnonzero(tied & (have_sorted == width))
            del tied, have_sorted
            run = np.cumsum(new, dtype=small)[more]
            todo = more.astype(small) if todo is None else todo[more]
            offset += width
        return order.astype(np.int64)

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same strings in the same order (a list of ids included)."""
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        if len(other) != len(self):
            return False
        return all(a == b for a, b in zip(self, other, strict=True))

    # compared by content, as a list is, so not hashable
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"IdList({len(self)} ids)"

    @staticmethod
    def paths(folder: str | Path, stem: str) -> tuple[Path, Path]:
        """The two files of a saved IdList: ``<stem>.blob.npy`` and ``<stem>.ends.npy``."""
        return Path(folder) / f"{stem}.blob.npy", Path(folder) / f"{stem}.ends.npy"

    @classmethod
    def load(cls, folder: str | Path, stem: str, *, mmap: bool = False) -> IdList:
        """Read the files :class:`IdListWriter` wrote (``mmap``: the arrays stay on disk)."""
        import numpy as np

        blob, ends = cls.paths(folder, stem)
        mode: Any = "r" if mmap else None
        return cls(np.load(blob, mmap_mode=mode), np.load(ends, mmap_mode=mode))

    def save(self, folder: str | Path, stem: str) -> None:
        with IdListWriter(folder, stem) as out:
            for batch in _batches(self):
                out.write(batch)


def write_npy_header(f: IO[bytes], dtype: Any, length: int) -> None:
    """The header ``np.save`` writes for a 1-D array of ``length`` items of ``dtype`` (the items follow)."""
    import numpy as np

    header = np.lib.format.header_data_from_array_1_0(np.empty(0, dtype=dtype))
    header["shape"] = (int(length),)
    np.lib.format.write_array_header_1_0(f, header)


class IdListWriter:
    """Streams ids into the two files of :meth:`IdList.load`, holding one batch at a time: the bytes go to
    raw files first and become ``.npy`` files (header, then the bytes) on :meth:`close`."""

    def __init__(self, folder: str | Path, stem: str) -> None:
        self._paths = IdList.paths(folder, stem)
        self._raw = [p.with_suffix(".raw") for p in self._paths]
        self._files = [open(p, "wb") for p in self._raw]  # noqa: SIM115  (closed by close())
        self._size = 0
        self._count = 0

    def write(self, ids: Sequence[str]) -> None:
        blob, ends = _pack(ids, self._size)
        self._files[0].write(blob)
        self._files[1].write(ends.astype("<i8").tobytes())
        self._size += len(blob)
        self._count += len(ids)

    def close(self) -> None:
        import numpy as np

        for f in self._files:
            f.close()
        dtypes: list[Any] = [np.dtype("u1"), np.dtype("<i8")]
        for raw, path, dtype, length in zip(self._raw, self._paths, dtypes, (self._size, self._count), strict=True):
            with open(path, "wb") as out, open(raw, "rb") as src:
                write_npy_header(out, dtype, length)
                shutil.copyfileobj(src, out, 1 << 20)
            os.unlink(raw)

    def __enter__(self) -> IdListWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class IdIndex:
    """Where each id of an :class:`IdList` sits: the ids' hashes sorted, with their positions."""

    def __init__(self, ids: IdList) -> None:
        import numpy as np

        self._ids = ids
        hashes = id_hashes(ids)
        order = np.argsort(hashes, kind="stable")
        self._hashes = hashes[order]
        self._positions = order.astype(np.int64)

    def find(self, doc_id: str) -> int | None:
        """The position of ``doc_id`` (its first, if it repeats), or None."""
        import numpy as np

        h = id_hash(doc_id)
        i = int(np.searchsorted(self._hashes, h))
        while i < len(self._hashes) and self._hashes[i] == h:
            pos = int(self._positions[i])
            if self._ids[pos] == doc_id:
                return pos
            i += 1
        return None


class SeenIds:
    """The ids met so far in one pass, to tell whether an id repeats: their hashes in a sorted array, the most
    recent ones (up to ``recent``) in a dict from hash to id, merged into the array when it fills up.

    :meth:`add` takes a batch (one vectorised search of the array per batch); it is exact for a repeat
    within the batch or among the recent ids; for an earlier one it answers from the hash
    (a different id with the same 64-bit hash is as rare as 1 in about 2 million at 8.8M ids), so a caller
    that must be exact confirms a ``"maybe"`` against the ids themselves.
    """

    def __init__(self, recent: int = 1 << 18) -> None:
        import numpy as np

        self._sorted = np.empty(0, dtype=np.int64)
        self._recent: dict[int, str] = {}
        self._limit = recent

    def add(self, ids: Sequence[str]) -> list[str | None]:
        """Record ``ids`` in order; for each, None when it is new, ``"yes"`` when it certainly came before
        (in this batch or among the recent ones), ``"maybe"`` when an earlier id has its hash."""
        import numpy as np

        hashes = id_hashes(ids)
        where = np.searchsorted(self._sorted, hashes)
        in_sorted = (self._sorted[np.minimum(where, len(self._sorted) - 1)] == hashes) if len(self._sorted) else \
            np.zeros(len(ids), dtype=bool)
        out: list[str | None] = []
        for doc_id, h, hit in zip(ids, hashes.tolist(), in_sorted.tolist(), strict=True):
            earlier = self._recent.get(h)
            if earlier is not None:
                out.append("yes" if earlier == doc_id else "maybe")
                continue
            out.append("maybe" if hit else None)
            self._recent[h] = doc_id
        if len(self._recent) >= self._limit:
            recent = np.fromiter(self._recent, dtype=np.int64)
            recent.sort()
            merged = np.concatenate([self._sorted, recent])
            merged.sort(kind="stable")  # two sorted runs: the stable sort (timsort) merges them in linear time
            self._sorted = merged
            self._recent = {}
        return out
