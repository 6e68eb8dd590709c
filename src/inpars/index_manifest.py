"""What a first-stage index folder records about itself: the manifest ``inpars_index.json``, written last by
every engine's build (:mod:`inpars.retrieval` for ``bm25s``, :mod:`inpars.pyserini_backend` for ``pyserini``)
and compared by :func:`inpars.retrieval.get_index` before an index is reused.

The manifest holds ``format`` (:data:`INDEX_FORMAT`), ``fingerprint`` (:func:`index_fingerprint` of the
corpus SHA-256 and the index parameters), ``params`` and ``corpus_sha256``; an engine adds its own fields.
:mod:`inpars.retrieval` re-exports these names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inpars.fingerprint import VERSIONS, versioned

MANIFEST = "inpars_index.json"
#: the ids of a ``bm25s`` index's rows, in row order: a JSON list, and the same ids as the two arrays of
#: :class:`inpars.id_table.IdList` (``doc_ids.blob.npy``, ``doc_ids.ends.npy``), which the index loads
DOC_IDS = "doc_ids.json"
DOC_IDS_STEM = "doc_ids"
#: the manifest's ``doc_ids`` when the folder holds the ids as arrays written with it (an index written
#: before them has no such field, and any id arrays beside it are not its own)
DOC_IDS_ARRAYS = "arrays"
INDEX_FORMAT = VERSIONS["index-manifest"]


def read_manifest(path: str | Path) -> dict[str, Any] | None:
    """The manifest of an index folder, or None when there is none (or it cannot be read)."""
    try:
        obj = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def index_fingerprint(corpus_sha256: str | None, params: dict[str, Any]) -> str:
    """The key of an index: ``versioned("bm25-index", ...)`` of its corpus hash and parameters."""
    return versioned("bm25-index", {"corpus": corpus_sha256, "params": params})
