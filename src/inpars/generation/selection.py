"""Which documents the generate stage writes queries for: the registry :data:`SELECTIONS`.

``generate.doc_selection`` names a method, ``generate.selection_options`` are its options (checked: an
unknown key is a :class:`~inpars.errors.ConfigError`). Every method sees only the eligible documents
(``full_text`` at least ``min_doc_chars`` long) and returns at most ``n_docs`` of them, in the order in
which queries are generated.

- ``random`` (the default; no options): the sorted eligible ids permuted by ``random.Random(seed).sample``,
  the first ``n_docs`` kept, so a larger ``n_docs`` extends a smaller one. Only those first ``n_docs`` of
  the permutation are drawn (:func:`sample_prefix`), and the eligible ids are positions in the corpus's
  columns until then (:class:`EligibleIds`), so a sample of a few thousand documents from millions holds
  no string per document.
- ``clusters`` (DUQGen, Chandradevan and Agichtein 2024: documents that represent the collection, spread
  over its topics): every eligible document is embedded by a bi-encoder (option ``model``, default
  ``minilm-l6``; ``max_length`` 256 tokens), the embeddings are split into ``clusters`` groups by k-means
  (default ``min(n_docs, 100)``; k-means++ start seeded by ``seed``, fitted on a seeded sample of at most
  ``fit_sample`` = 50,000 documents, then every document assigned to its nearest centre), each cluster gets
  a share of ``n_docs`` proportional to its size (largest remainders, ties to the lower cluster number),
  and inside a cluster documents are drawn without replacement with probability proportional to
  ``exp(cosine(document, centre) / temperature)`` (default 0.1), by a generator seeded with
  ``(seed, cluster)``. The chosen documents are ordered by cluster, then by draw. A larger ``n_docs`` does
  not extend a smaller one, so ``n_docs`` is part of the file's identity under this method.

- ``ids`` (option ``doc_ids``: a list of document ids): those documents, in the given order (a repeated id
  counts once), at most ``n_docs`` of them; an id the collection lacks is a :class:`ConfigError`, an
  ineligible one (shorter than ``min_doc_chars``) is left out with a warning. For queries written for
  chosen documents, for example a second generator's queries for a run's held-out ones.

  Embeddings depend slightly on the machine (thread counts change float sums), so the chosen ids are
  written once to ``<out>.docs.json`` beside the queries file and read back when the stage resumes.
"""

from __future__ import annotations

import functools
import json
import logging
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inpars.catalog import SELECTION_OPTIONS, check_selection  # noqa: F401  (re-exported)
from inpars.catalog import SELECTIONS as _SELECTIONS
from inpars.corpus_view import TextColumns, text_columns
from inpars.errors import ConfigError, InputError
from inpars.fingerprint import fingerprint_strings, versioned
from inpars.id_table import take
from inpars.io import write_json
from inpars.models import resolve_model
from inpars.registry import Registry

if TYPE_CHECKING:
    import numpy as np

    from inpars.datasets import Dataset
    from inpars.records import Document

log = logging.getLogger(__name__)

Selector = Callable[["Dataset", "EligibleIds", int, int, dict[str, Any]], list[str]]

# The registry, the options of each method and their check are plain data of the bottom layer
# (inpars.catalog, which the configuration checks against); the methods register themselves below.
SELECTIONS: Registry[Selector] = _SELECTIONS


class EligibleIds(Sequence[str]):
    """The ids of the documents a selection may choose, sorted (as ``sorted`` orders them): positions in a
    corpus's :class:`~inpars.corpus_view.TextColumns`, decoded when read. Membership is one lookup.

    >>> from inpars.records import Document
    >>> docs = {"b": Document("b", "two words"), "a": Document("a", "one"), "c": Document("c", " ")}
    >>> ids = EligibleIds(text_columns(docs))
    >>> list(ids), ids[1], "c" in ids, ids.take([1, 0])
    (['a', 'b'], 'b', False, ['b', 'a'])
    """

    _CHUNK = 1 << 16

    def __init__(self, columns: TextColumns, min_chars: int = 0) -> None:
        self._columns = columns
        self._min_chars = min_chars
        self._positions = columns.eligible_positions(min_chars)

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, i: Any) -> Any:
        return self.take(i) if isinstance(i, slice) else self.take([i])[0]

    def take(self, indices: slice | Sequence[int] | np.ndarray) -> list[str]:
        """The ids at ``indices`` (indices into this sorted sequence, or a slice of it), decoded in one pass."""
        import numpy as np

        where = indices if isinstance(indices, slice) else np.asarray(indices, dtype=np.int64)
        return take(self._columns.ids, self._positions[where])

    def chunks(self) -> Iterator[list[str]]:
        """The ids in order, a bounded list at a time."""
        for lo in range(0, len(self), self._CHUNK):
            yield self.take(slice(lo, lo + self._CHUNK))

    def __iter__(self) -> Iterator[str]:
        for chunk in self.chunks():
            yield from chunk

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self._columns.is_eligible(doc_id, self._min_chars)

    def fingerprint(self) -> str:
        """:func:`~inpars.fingerprint.fingerprint` of the ids as one list, without building it."""
        return fingerprint_strings(self.chunks())


def sample_prefix(n: int, k: int, seed: int) -> list[int]:
    """The first ``k`` items of ``random.Random(seed).sample(range(n), n)``, drawn without the other ``n - k``.

    ``random.sample`` permutes a copy of its population by ``k`` steps of one ``_randbelow`` draw and one
    swap; the first ``k`` items depend only on the first ``k`` steps, so those are replayed here with the
    swapped slots kept in a dict. This follows CPython's ``sample`` (the same since 3.9), a private method
    included: :func:`_prefix_matches_sample` compares both on small cases first, and where they differ the
    whole sample is drawn.

    >>> import random
    >>> sample_prefix(10, 4, seed=3) == random.Random(3).sample(range(10), 10)[:4]
    True
    """
    k = min(k, n)
    if not _prefix_matches_sample():
        return random.Random(seed).sample(range(n), n)[:k]
    return _replay(n, k, seed)


def _replay(n: int, k: int, seed: int) -> list[int]:
    randbelow = random.Random(seed)._randbelow  # type: ignore[attr-defined]
    moved: dict[int, int] = {}
    out: list[int] = []
    for i in range(k):
        j = randbelow(n - i)
        out.append(moved.get(j, j))
        last = n - i - 1
        moved[j] = moved.pop(last, last)
    return out


@functools.cache
def _prefix_matches_sample() -> bool:
    """Whether :func:`_replay` gives ``random.sample``'s prefix on this Python (checked once per process)."""
    try:
        return all(_replay(n, k, seed) == random.Random(seed).sample(range(n), n)[:k]
                   for n, k, seed in ((1, 1, 0), (7, 7, 1), (50, 10, 2), (300, 299, 3), (1000, 5, 4)))
    except AttributeError:  # no ``_randbelow``
        return False


@SELECTIONS.register("random")
def _random(dataset: Dataset, eligible: EligibleIds, n_docs: int, seed: int, options: dict[str, Any]) -> list[str]:
    return eligible.take(sample_prefix(len(eligible), n_docs, seed))


def cluster_shares(sizes: list[int], n: int) -> list[int]:
    """``n`` split over clusters proportionally to ``sizes`` by largest remainders (ties: lower index);
    no cluster gets more than its size.

    >>> cluster_shares([6, 3, 1], 5)
    [3, 2, 0]
    """
    total = sum(sizes)
    n = min(n, total)
    if total == 0:
        return [0] * len(sizes)
    exact = [s * n / total for s in sizes]
    shares = [int(x) for x in exact]
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[: n - sum(shares)]:
        shares[i] += 1
    return shares


def kmeans(vectors: Any, k: int, seed: int, fit_sample: int) -> tuple[Any, Any]:
    """(centres, labels): k-means (scipy ``kmeans2``, k-means++ start, ``seed``) fitted on at most
    ``fit_sample`` rows drawn with ``seed``, then every row labelled with its nearest centre."""
    import numpy as np
    from scipy.cluster.vq import kmeans2, vq

    rng = np.random.default_rng(seed)
    rows = vectors if len(vectors) <= fit_sample else vectors[np.sort(rng.choice(len(vectors), fit_sample, replace=False))]
    centres, _ = kmeans2(rows.astype(np.float64), k, minit="++", seed=rng)
    labels, _ = vq(vectors.astype(np.float64), centres)
    return centres, labels


@SELECTIONS.register("ids")
def _ids(dataset: Dataset, eligible: EligibleIds, n_docs: int, seed: int, options: dict[str, Any]) -> list[str]:
    docs = dataset.docs()
    missing = [d for d in options["doc_ids"] if d not in docs]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConfigError(f"generate.selection_options.doc_ids: the collection has no document '{missing[0]}'{more}")
    chosen = list(dict.fromkeys(options["doc_ids"]))
    kept = [d for d in chosen if d in eligible]
    if len(kept) < len(chosen):
        log.warning("doc_selection ids: %d of the given documents are shorter than min_doc_chars; left out",
                    len(chosen) - len(kept))
    return kept[:n_docs]


@SELECTIONS.register("clusters")
def _clusters(dataset: Dataset, eligible: EligibleIds, n_docs: int, seed: int, options: dict[str, Any]) -> list[str]:
    import numpy as np

    from inpars.families.bi_encoder import BiEncoderScorer  # the bi-encoder family: only for this method

    n_docs = min(n_docs, len(eligible))
    if n_docs == 0:
        return []
    k = min(int(options["clusters"] or min(n_docs, 100)), len(eligible))
    docs = dataset.docs()
    encoder = BiEncoderScorer(resolve_model(options["model"]), batch_size=32, max_length=int(options["max_length"]),
                              device="cpu")
    log.info("doc_selection clusters: embedding %d documents with %s, k-means with %d clusters",
             len(eligible), options["model"], k)
    ids = list(eligible)
    vectors = encoder.encode([docs[d].full_text for d in ids])
    centres, labels = kmeans(np.asarray(vectors), k, seed, int(options["fit_sample"]))
    members: list[list[int]] = [[] for _ in range(len(centres))]
    for row, label in enumerate(labels):
        members[int(label)].append(row)
    shares = cluster_shares([len(m) for m in members], n_docs)
    chosen: list[str] = []
    for c, (rows, share) in enumerate(zip(members, shares, strict=True)):
        if share == 0:
            continue
        centre = centres[c] / max(float(np.linalg.norm(centres[c])), 1e-12)
        sims = vectors[rows] @ centre
        weights = np.exp((sims - sims.max()) / float(options["temperature"]))
        draw = np.random.default_rng([seed, c]).choice(len(rows), share, replace=False, p=weights / weights.sum())
        chosen.extend(ids[rows[i]] for i in draw)
    return chosen


def selection_path(out: Path) -> Path:
    """The file that keeps the chosen ids of a non-random selection: ``<out>.docs.json``."""
    return out.with_name(out.name + ".docs.json")


def eligible_ids(dataset: Dataset, min_doc_chars: int = 0) -> EligibleIds:
    """The sorted ids of the documents whose ``full_text`` has at least ``min_doc_chars`` characters and is not
    blank: a query is never written for an empty document (it would become an empty positive)."""
    return EligibleIds(text_columns(dataset.docs()), min_doc_chars)


def select_documents(
    dataset: Dataset,
    n_docs: int,
    *,
    seed: int = 1,
    min_doc_chars: int = 0,
    method: str = "random",
    options: Mapping[str, Any] | None = None,
    out: Path | None = None,
    params_hash: str | None = None,
    eligible: EligibleIds | None = None,
) -> list[Document]:
    """The documents to generate for, by ``method`` (see the module docstring).

    With ``out`` and ``params_hash``, a non-random selection is read from ``<out>.docs.json`` when that
    file was written for the same ``params_hash`` and selection code (``VERSIONS["doc-selection"]``:
    :func:`inpars.fingerprint.versioned`), else computed and written there (atomically).
    ``eligible``: :func:`eligible_ids` of ``dataset`` and ``min_doc_chars`` when the caller has them
    already (each costs a pass over the corpus).
    """
    opts = check_selection(method, options)
    docs = dataset.docs()
    if eligible is None:
        eligible = eligible_ids(dataset, min_doc_chars)
    if n_docs > len(eligible):
        log.info("n_docs=%d is more than the %d eligible documents: using all of them", n_docs, len(eligible))
    cache = selection_path(out) if (out is not None and params_hash is not None and method != "random") else None
    key = versioned("doc-selection", params_hash)
    ids: list[str] | None = None
    if cache is not None and cache.is_file():
        try:
            saved = json.loads(cache.read_text(encoding="utf-8"))
            if saved.get("key") == key:
                ids = [str(d) for d in saved["doc_ids"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"unreadable document selection ({exc})", path=cache) from None
        if ids is not None and any(d not in docs for d in ids):
            raise InputError("the saved document selection names documents the corpus does not have", path=cache)
    if ids is None:
        ids = SELECTIONS.get(method)(dataset, eligible, n_docs, seed, opts)
        if cache is not None:
            write_json(cache, {"method": method, "options": opts, "key": key, "doc_ids": ids})
    return [docs[i] for i in ids]
