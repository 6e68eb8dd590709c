"""inpars.id_table: ids in compact arrays (the index's doc ids, the corpus view's lookup, the duplicate check)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inpars import id_table
from inpars.datasets import load_dataset
from inpars.errors import InputError
from inpars.id_table import IdIndex, IdList, IdListWriter, SeenIds

IDS = st.lists(st.text(max_size=12), max_size=40)


@settings(max_examples=60, deadline=None)
@given(ids=IDS)
def test_id_list_holds_any_ids_in_order(ids: list[str]) -> None:
    """Any strings (empty, non-ASCII, a lone surrogate) read back in order, one by one, sliced and iterated."""
    got = IdList.from_strings(iter(ids))
    assert len(got) == len(ids) and list(got) == ids and got == ids
    assert [got[i] for i in range(len(ids))] == ids and got[1:5] == ids[1:5]
    if ids:
        assert got[-1] == ids[-1]


def test_id_list_across_batches_saved_and_memory_mapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(id_table, "_CHUNK", 7)  # iteration, packing and writing in several batches
    ids = [f"doc-{i}" for i in range(50)] + ["", "é\ud800x", "last"]
    with IdListWriter(tmp_path, "ids") as out:
        out.write(ids[:20])
        out.write([])
        out.write(ids[20:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.blob.npy", "ids.ends.npy"]  # no raw file left
    for mmap in (False, True):
        loaded = IdList.load(tmp_path, "ids", mmap=mmap)
        assert isinstance(loaded._blob, np.memmap) == mmap
        assert list(loaded) == ids and loaded[-2] == "é\ud800x" and loaded[50] == ""
        assert loaded.take([52, 0, 7, 8, 50, 51]) == [ids[i] for i in (52, 0, 7, 8, 50, 51)]
    (tmp_path / "again").mkdir()
    IdList.from_strings(ids).save(tmp_path / "again", "x")
    assert IdList.load(tmp_path / "again", "x") == ids
    with pytest.raises(IndexError):
        IdList.from_strings(ids)[len(ids)]
    assert IdList.from_strings([]) == [] and list(IdList.from_strings([])) == []
    with pytest.raises(ValueError, match="ends at byte"):
        IdList(np.zeros(3, dtype=np.uint8), np.array([1, 2], dtype=np.int64))


def test_id_index_finds_each_id_and_checks_the_id_not_only_its_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = IdList.from_strings(["a", "b", "a", "c"])
    index = IdIndex(ids)
    assert [index.find(x) for x in ["a", "b", "c", "zz"]] == [0, 1, 3, None]
    monkeypatch.setattr(id_table, "id_hash", lambda s: 0)  # every id collides: the ids themselves decide
    monkeypatch.setattr(id_table, "id_hashes", lambda ids: np.zeros(len(list(ids)), dtype=np.int64))
    index = IdIndex(ids)
    assert [index.find(x) for x in ["a", "b", "c", "zz"]] == [0, 1, 3, None]


def test_id_arrays_take_a_fraction_of_a_dict_of_ids() -> None:
    """The corpus view's ids, offsets and lookup index against the dict of id -> offset it replaced, measured
    by tracemalloc (numpy reports its arrays to it): under a third of the memory."""
    import tracemalloc

    n = 100_000

    def arrays() -> tuple[IdList, np.ndarray, IdIndex]:
        ids = IdList.from_strings(f"doc-{i}" for i in range(n))
        return ids, np.arange(n, dtype=np.int64) * 120, IdIndex(ids)

    def plain() -> dict[str, int]:
        return {f"doc-{i}": i * 120 for i in range(n)}

    sizes = []
    for build in (arrays, plain):
        tracemalloc.start()
        kept = build()
        sizes.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
        del kept
    assert sizes[0] < sizes[1] / 3, sizes


def test_seen_ids_tells_a_repeat_within_a_batch_recent_and_earlier(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = SeenIds(recent=4)
    assert seen.add(["a", "b", "a"]) == [None, None, "yes"]
    assert seen.add(["c", "d", "b"]) == [None, None, "yes"]  # 4 recent: merged into the sorted hashes
    assert seen._recent == {} and len(seen._sorted) == 4
    assert seen.add(["e", "a"]) == [None, "maybe"]  # earlier: known by its hash only
    monkeypatch.setattr(id_table, "id_hashes", lambda ids: np.zeros(len(ids), dtype=np.int64))
    assert SeenIds().add(["x", "y", "x"]) == [None, "maybe", "yes"]  # same hash, another id: maybe


def _corpus(folder: Path, ids: list[str]) -> Path:
    folder.mkdir()
    rows = [json.dumps({"_id": i, "title": "", "text": f"text of {i}"}) for i in ids]
    (folder / "corpus.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("where", ["same batch", "recent", "earlier"])
def test_duplicate_id_names_its_line_wherever_the_first_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            where: str) -> None:
    import inpars.datasets as datasets

    monkeypatch.setattr(datasets, "_ID_BATCH", 4)
    monkeypatch.setattr(datasets, "SeenIds", lambda: SeenIds(recent=8))
    first = {"same batch": 41, "recent": 38, "earlier": 2}[where]
    ids = [f"d{i}" for i in range(60)]
    ids[42] = ids[first]
    ds = load_dataset(_corpus(tmp_path / "c", ids))
    with pytest.raises(InputError, match=rf"corpus.jsonl:43: field '_id': duplicate document id 'd{first}'"):
        list(ds.docs_iter())


def test_hash_collision_without_a_repeat_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ids with one hash are read back from the file to tell them apart: no false 'duplicate'."""
    import inpars.datasets as datasets

    monkeypatch.setattr(datasets, "_ID_BATCH", 3)
    monkeypatch.setattr(datasets, "SeenIds", lambda: SeenIds(recent=2))
    monkeypatch.setattr(id_table, "id_hashes", lambda ids: np.array([len(s) for s in ids], dtype=np.int64))
    ids = ["a", "b", "cc", "dd", "e"]
    ds = load_dataset(_corpus(tmp_path / "c", ids))
    assert [d.doc_id for d in ds.docs_iter()] == ids


def test_corpus_view_lookup_index_is_not_pickled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The view's lookup index is built in each process that looks up (hashes differ between processes)."""
    monkeypatch.setattr("inpars.datasets.EAGER_CORPUS_BYTES", 0)
    view = load_dataset(_corpus(tmp_path / "c", [f"d{i}" for i in range(30)])).docs()
    assert view["d3"].text == "text of d3" and view._index is not None
    again = pickle.loads(pickle.dumps(view))
    assert again._index is None and again["d29"].text == "text of d29" and 5 not in again


def test_a_bad_line_after_a_duplicate_the_first_error_is_the_duplicate(tmp_path: Path) -> None:
    """Documents are read ahead in batches, yet errors come in file order and the documents before a bad line
    are handed out first (a reader that stops early never meets it)."""
    folder = tmp_path / "c"
    folder.mkdir()
    rows = [json.dumps({"_id": f"d{i}", "text": "t"}) for i in range(30)]
    rows[9] = json.dumps({"_id": "d2", "text": "t"})
    rows[19] = "{not json"
    (folder / "corpus.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    ds = load_dataset(folder)
    with pytest.raises(InputError, match=r"corpus.jsonl:10: field '_id': duplicate document id 'd2'"):
        list(ds.docs_iter())
    assert next(ds.docs_iter()).doc_id == "d0"
    rows[9] = json.dumps({"_id": "d9", "text": "t"})
    (folder / "corpus.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    got = []
    with pytest.raises(InputError, match=r"corpus.jsonl:20"):
        for doc in load_dataset(folder).docs_iter():
            got.append(doc.doc_id)
    assert got == [f"d{i}" for i in range(19)]


def test_index_reads_an_old_folder_and_maps_a_large_one(tmp_path: Path, tiny_beir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An index folder from before the id arrays (doc_ids.json only, its manifest without ``doc_ids``)
    searches the same, and so does one with id arrays its manifest does not claim (left over from an index
    it replaced); ``mmap=None`` maps the arrays from MMAP_BYTES on disk."""
    import json

    from inpars import retrieval
    from inpars.index_manifest import DOC_IDS_STEM, MANIFEST
    from inpars.retrieval import get_index

    where = tmp_path / "index"
    built = get_index(tiny_beir, where)
    queries = {"q": "vitamin infections", "r": "sleep obesity children"}
    expected = built.search(queries, k=5)
    assert isinstance(built.doc_ids, IdList)
    manifest = json.loads((where / MANIFEST).read_text())
    assert manifest.pop("doc_ids") == "arrays"
    (where / MANIFEST).write_text(json.dumps(manifest))
    stale = IdList.from_strings(reversed(list(built.doc_ids)))
    stale.save(where, DOC_IDS_STEM)
    old = get_index(tiny_beir, where)
    assert old.from_cache and isinstance(old.doc_ids, list) and old.search(queries, k=5) == expected
    for path in IdList.paths(where, DOC_IDS_STEM):
        path.unlink()
    assert get_index(tiny_beir, where).search(queries, k=5) == expected
    get_index(tiny_beir, where, rebuild=True)
    monkeypatch.setattr(retrieval, "MMAP_BYTES", 1)
    assert isinstance(get_index(tiny_beir, where).retriever.scores["data"], np.memmap)
    monkeypatch.setattr(retrieval, "MMAP_BYTES", 1 << 40)
    loaded = get_index(tiny_beir, where)
    assert not isinstance(loaded.retriever.scores["data"], np.memmap) and loaded.search(queries, k=5) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(["a", "b", "\x00", "é", "😀", "\udc80", "0"]), max_size=40),
                unique=True, max_size=40), st.data())
def test_sorted_positions_order_as_sorted_orders_the_strings(ids: list[str], data: st.DataObject) -> None:
    """Byte windows of 16 (NUL bytes, lone surrogates, ids sharing long prefixes) order as ``sorted`` does;
    a subset of positions, repeats included, too."""
    table = IdList.from_strings(ids)
    assert table.sorted_positions().tolist() == sorted(range(len(ids)), key=ids.__getitem__)
    positions = data.draw(st.lists(st.integers(0, len(ids) - 1), max_size=30)) if ids else []
    assert table.sorted_positions(positions).tolist() == sorted(positions, key=ids.__getitem__)
