"""Document selection for the generate stage (``generate.doc_selection``): random, DUQGen's clusters and
given ids."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from conftest import write_beir
from inpars.datasets import load_dataset
from inpars.errors import ConfigError
from inpars.generate import generate_queries, sample_documents
from inpars.generation import selection
from inpars.generation.selection import check_selection, cluster_shares, select_documents, selection_path

TOPICS = {
    "heart": ["Statins lower cholesterol and heart attack risk.", "Aspirin prevents heart attacks in older men.",
              "Blood pressure drugs reduce strokes and heart failure.", "Cardiac arrest survival after CPR.",
              "Coronary artery disease and LDL cholesterol levels."],
    "sleep": ["Short sleep is linked to obesity in children.", "Insomnia treatment with cognitive therapy.",
              "Melatonin improves sleep onset in older adults.", "Night shift work disturbs circadian rhythm.",
              "Sleep apnea raises daytime sleepiness."],
    "plants": ["Wheat yields fall under drought stress.", "Rice paddies emit methane during flooding.",
               "Nitrogen fertiliser raises maize growth.", "Soil bacteria fix nitrogen for legumes.",
               "Photosynthesis in leaves under high light."],
}


@pytest.fixture
def topics_beir(tmp_path: Path) -> Path:
    docs = [{"_id": f"{t}{i}", "title": "", "text": text} for t, texts in TOPICS.items() for i, text in enumerate(texts)]
    return write_beir(tmp_path / "topics", docs, [{"_id": "q1", "text": "x"}], {"test": [("q1", "heart0", 1)]})


def test_cluster_shares_sum_to_n_and_never_exceed_a_cluster() -> None:
    rng = random.Random(0)
    for _ in range(500):
        sizes = [rng.randint(0, 50) for _ in range(rng.randint(1, 12))]
        n = rng.randint(0, 400)
        shares = cluster_shares(sizes, n)
        assert sum(shares) == min(n, sum(sizes))
        assert all(0 <= s <= size for s, size in zip(shares, sizes, strict=True))
        total = sum(sizes)
        if total:  # each share within one of the proportional one
            assert all(abs(s - size * min(n, total) / total) < 1 for s, size in zip(shares, sizes, strict=True))


def test_check_selection_fills_defaults_and_names_bad_options() -> None:
    assert check_selection("random", None) == {}
    opts = check_selection("clusters", {"clusters": 7})
    assert opts["clusters"] == 7 and opts["model"] == "minilm-l6" and opts["temperature"] == 0.1
    with pytest.raises(ConfigError, match="unknown option.*k .*clusters"):
        check_selection("clusters", {"k": 3})
    with pytest.raises(ConfigError, match="temperature: expected a number > 0"):
        check_selection("clusters", {"temperature": 0})
    with pytest.raises(ConfigError, match="clusters: expected a positive integer"):
        check_selection("clusters", {"clusters": "many"})
    with pytest.raises(LookupError, match="unknown document selection 'kmeans'.*clusters, ids, random"):
        check_selection("kmeans", {})


def test_random_selection_is_the_seeded_sample(tiny_beir: Path) -> None:
    ds = load_dataset(tiny_beir)
    assert [d.doc_id for d in select_documents(ds, 4, seed=3)] == [d.doc_id for d in sample_documents(ds, 4, seed=3)]


def test_ids_selection_keeps_the_given_order_and_names_an_unknown_id(tiny_beir: Path) -> None:
    ds = load_dataset(tiny_beir)
    pick = {"doc_ids": ["d5", "d2", "d5", "d1"]}
    assert [d.doc_id for d in select_documents(ds, 10, method="ids", options=pick)] == ["d5", "d2", "d1"]
    assert [d.doc_id for d in select_documents(ds, 2, method="ids", options=pick)] == ["d5", "d2"]
    # a document shorter than min_doc_chars is left out, as under every method
    short = min(ds.docs().values(), key=lambda d: len(d.full_text))
    rest = [d.doc_id for d in select_documents(ds, 10, method="ids", min_doc_chars=len(short.full_text) + 1,
                                               options={"doc_ids": [short.doc_id, "d3"]})]
    assert rest == ["d3"]
    with pytest.raises(ConfigError, match="doc_ids: the collection has no document 'd9' \\(and 1 more\\)"):
        select_documents(ds, 3, method="ids", options={"doc_ids": ["d1", "d9", "d10"]})
    for bad in (None, [], "d1", [["d1"]]):
        with pytest.raises(ConfigError, match="doc_ids: expected a non-empty list"):
            check_selection("ids", {"doc_ids": bad})


def test_generate_for_given_ids_writes_the_queries_a_random_run_writes_for_them(tiny_beir: Path, tmp_path: Path) -> None:
    """Seeds are per (seed, document, index): the queries written for chosen documents are the ones a
    run over a random sample writes for the same documents."""
    from fakes import register_fake_backend

    register_fake_backend()
    kw: dict[str, Any] = {"backend": "fake", "model": "m", "seed": 2, "queries_per_doc": 2, "temperature": 0.7}
    generate_queries(tiny_beir, tmp_path / "all.jsonl", n_docs=6, **kw)
    generate_queries(tiny_beir, tmp_path / "ids.jsonl", n_docs=6, doc_selection="ids",
                     selection_options={"doc_ids": ["d4", "d1"]}, **kw)

    def read(name: str) -> list[tuple[str, str]]:
        rows = [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
        return [(r["doc_id"], r["query"]) for r in rows]

    chosen = read("ids.jsonl")
    assert [d for d, _ in chosen] == ["d4", "d4", "d1", "d1"]
    assert sorted(chosen) == sorted(r for r in read("all.jsonl") if r[0] in {"d1", "d4"})


def test_clusters_take_one_representative_per_topic(topics_beir: Path) -> None:
    """Three topics of five documents, three clusters, three documents: one from each topic (the real
    all-MiniLM-L6-v2 embeds them), the same ids on a second call."""
    ds = load_dataset(topics_beir)
    ids = [d.doc_id for d in select_documents(ds, 3, seed=1, method="clusters", options={"clusters": 3})]
    assert sorted(i.rstrip("0123456789") for i in ids) == ["heart", "plants", "sleep"]
    again = [d.doc_id for d in select_documents(ds, 3, seed=1, method="clusters", options={"clusters": 3})]
    assert again == ids
    six = [d.doc_id for d in select_documents(ds, 6, seed=1, method="clusters", options={"clusters": 3})]
    assert sorted(i.rstrip("0123456789") for i in six) == ["heart", "heart", "plants", "plants", "sleep", "sleep"]
    assert len(set(six)) == 6


def test_generate_keeps_the_cluster_selection_for_resume(
    topics_beir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chosen ids are written once beside the queries; a resumed run reads them (never re-clusters),
    another n_docs is refused (a cluster selection does not extend), overwrite chooses again."""
    from fakes import register_fake_backend

    register_fake_backend()
    out = tmp_path / "q.jsonl"
    kw: dict[str, Any] = {"backend": "fake", "model": "m", "doc_selection": "clusters",
                          "selection_options": {"clusters": 3}, "seed": 1}
    first = generate_queries(topics_beir, out, n_docs=3, **kw)
    assert first.n_queries == 3
    saved = json.loads(selection_path(out).read_text())
    assert saved["method"] == "clusters" and len(saved["doc_ids"]) == 3
    written = [json.loads(line)["doc_id"] for line in out.read_text().splitlines()]
    assert written == saved["doc_ids"]

    def never(*args: Any) -> list[str]:
        raise AssertionError("clustered again on resume")

    monkeypatch.setitem(selection.SELECTIONS._items, "clusters", never)
    again = generate_queries(topics_beir, out, n_docs=3, **kw)
    assert again.n_generated == 0 and again.n_skipped_existing == 3
    with pytest.raises(ConfigError, match="n_docs"):
        generate_queries(topics_beir, out, n_docs=5, **kw)
    monkeypatch.undo()
    redone = generate_queries(topics_beir, out, n_docs=5, overwrite=True, **kw)
    assert redone.n_queries == 5 and len(json.loads(selection_path(out).read_text())["doc_ids"]) == 5


@pytest.mark.parametrize(("selection", "named"), [("clusters, selection_options: {clusterz: 3}", "clusterz"),
                                                   ("ids, selection_options: {doc_ids: [d1, d77]}", "'d77'")])
def test_a_bad_selection_option_is_one_line_and_exit_2(
    tiny_beir: Path, tmp_path: Path, capsys: Any, selection: str, named: str
) -> None:
    from inpars.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"dataset: {{name: {tiny_beir}}}\ngenerate: {{doc_selection: {selection}}}\n", encoding="utf-8")
    assert main(["generate", "--config", str(cfg), "--out", str(tmp_path / "q.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "generate" in err[0] and named in err[0]
    assert not (tmp_path / "q.jsonl").exists()


def test_sample_prefix_is_the_prefix_of_random_sample() -> None:
    """The lazily drawn prefix equals the full permutation's, for every length, on this Python."""
    rng = random.Random(5)
    for _ in range(300):
        n = rng.randint(0, 2000)
        k = rng.randint(0, n + 3)
        seed = rng.randint(0, 10**6)
        assert selection.sample_prefix(n, k, seed) == random.Random(seed).sample(range(n), n)[:k]
    assert selection._prefix_matches_sample()


def test_random_selection_over_the_view_is_the_old_definition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over a corpus view (ids never decoded until chosen) and over a plain dict, the random selection is the
    seeded permutation of the sorted eligible ids, as ``random.sample`` over a list gave it; the population
    fingerprint is that of the list; membership follows ``min_doc_chars``."""
    from inpars.fingerprint import fingerprint

    texts = {f"doc-{i:05d}-with-a-long-shared-prefix-{'é' if i % 7 else ''}": "w " * (i % 9) for i in range(300)}
    texts |= {"": "empty id", "\x00odd": "text", "b": "", "a\x00": "x"}
    folder = write_beir(tmp_path / "c", [{"_id": k, "title": "", "text": v} for k, v in texts.items()],
                        [{"_id": "q", "text": "x"}], {"test": [("q", "b", 1)]})
    for eager_bytes in (1 << 40, 0):
        monkeypatch.setattr("inpars.datasets.EAGER_CORPUS_BYTES", eager_bytes)
        ds = load_dataset(folder)
        for min_chars in (0, 6):
            listed = sorted(d.doc_id for d in ds.docs_iter() if d.full_text.strip() and len(d.full_text) >= min_chars)
            eligible = selection.eligible_ids(ds, min_chars)
            assert list(eligible) == listed and eligible[-1] == listed[-1] and eligible[2:5] == listed[2:5]
            assert eligible.fingerprint() == fingerprint(listed)
            assert ("b" in eligible, listed[0] in eligible, "missing" in eligible) == (False, True, False)
            for n_docs in (0, 1, 50, 1000):
                chosen = [d.doc_id for d in select_documents(ds, n_docs, seed=11, min_doc_chars=min_chars)]
                assert chosen == random.Random(11).sample(listed, len(listed))[:n_docs]
