"""One rule for "is this cached result still valid", on the model of HF datasets' fingerprinting.

Every cache in the toolkit (stage manifests, the generation sidecar, the training run file, the rerank
score cache, the BM25 index, the ONNX export) is keyed by :func:`fingerprint` of

- the *identity* of the config that produced it: :func:`identity` drops the fields marked runtime-only
  (threads, batch sizes, save steps: they change speed, never results), so a change of thread count never
  throws away finished work;
- the hashes of its inputs (files by content, datasets by :func:`dataset_fingerprint`, models by
  :func:`model_fingerprint`);
- a version constant of the code that writes it (:data:`VERSIONS`): bumping one invalidates exactly that
  kind of cache, and nothing else.

Runtime-only fields are declared once, where the field is declared, with :func:`runtime_field`::

    >>> from pydantic import BaseModel
    >>> class Params(BaseModel):
    ...     temperature: float = 0.0
    ...     batch_size: int = runtime_field(8)
    >>> identity(Params(batch_size=32))
    {'temperature': 0.0}
    >>> fingerprint(identity(Params(batch_size=1))) == fingerprint(identity(Params(batch_size=32)))
    True

Per-item seeds come from the item, never from the batch it happens to be in::

    >>> item_seed(1, "doc-7", 0) == item_seed(1, "doc-7", 0)
    True
    >>> item_seed(1, "doc-7", 0) != item_seed(1, "doc-7", 1)
    True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inpars.datasets import BeirDataset
from inpars.io import sha256_path

if TYPE_CHECKING:
    from pydantic import BaseModel

    from inpars.datasets import Dataset

#: Code versions, one per kind of cached result. Bump the entry whose writer changed what it writes.
VERSIONS: dict[str, int] = {
    "retrieve": 1,
    "generate": 3,  # 2: per-(seed, doc_id, query_index) sampling seeds; 3: llama.cpp decodes on decode_threads (1)
    "filter": 1,
    "pseudo-dev": 1,  # the label-free tuning set, a stage of its own (it was written by 'negatives')
    "negatives": 3,  # 2: pseudo-dev drawn from all generated documents, always-on checks only; teacher scores;
    # 3: the pseudo-dev documents read from the pseudo-dev stage
    "train": 1,
    "rerank": 4,  # 2: label-free choice between the trained and the start checkpoint (select_start); 3: on evidence
    # (inpars.decision: the start model unless the trained one is significantly better; ranker.json); 4: one
    # reranking path (inpars.reranking), fusion.json with query_ids, tuning score caches
    "evaluate": 1,
    "report": 1,
    "bm25-index": 1,
    "onnx-export": 1,
    "rerank-scores": 1,
    # formats of the records beside a result, checked when it is reused
    "generate-meta": 2,  # <out>.meta.json of a generation file
    "index-manifest": 2,  # inpars_index.json of a BM25 or Lucene index; 2: keyed by index_fingerprint
    "doc-selection": 1,  # <out>.docs.json: a non-random document selection (clusters, ids)
}

#: Keys of free-form option dicts (``generate.backend_options``) that change speed or robustness only.
RUNTIME_OPTIONS = frozenset(
    {"n_threads", "n_threads_batch", "poll", "verbosity", "concurrency", "max_retries", "timeout", "backoff",
     "max_backoff", "n_parallel"}
)

_RUNTIME = "runtime_only"
_ADDED = "identity_when_set"


def runtime_field(default: Any = None, **kwargs: Any) -> Any:
    """A pydantic ``Field`` that is left out of every fingerprint (threads, batch sizes, save steps)."""
    from pydantic import Field

    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[_RUNTIME] = True
    return Field(default, json_schema_extra=extra, **kwargs)


def added_field(default: Any = None, **kwargs: Any) -> Any:
    """A pydantic ``Field`` added after results were made with the behaviour its default keeps: it is part of
    a fingerprint only when set to something else, so adding it leaves finished stages and generation
    files valid. ``default_factory`` may be passed instead of ``default``."""
    from pydantic import Field

    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[_ADDED] = True
    if "default_factory" in kwargs:
        return Field(json_schema_extra=extra, **kwargs)
    return Field(default, json_schema_extra=extra, **kwargs)


def _at_added_default(model: type[BaseModel], name: str, value: Any) -> bool:
    info = model.model_fields[name]
    extra = info.json_schema_extra
    if not (isinstance(extra, dict) and extra.get(_ADDED)):
        return False
    return bool(value == info.get_default(call_default_factory=True))


def is_runtime(model: type[BaseModel], name: str) -> bool:
    """Whether field ``name`` of ``model`` was declared with :func:`runtime_field`."""
    info = model.model_fields[name]
    extra = info.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(_RUNTIME))


def identity(section: BaseModel | Mapping[str, Any] | Any) -> Any:
    """The part of a config that decides a result: its JSON dump minus runtime-only fields, recursively.

    Fields declared with :func:`added_field` are left out while they hold their default. Free-form
    ``backend_options`` mappings lose their :data:`RUNTIME_OPTIONS` keys. Plain values pass through
    unchanged.
    """
    from pydantic import BaseModel

    if isinstance(section, BaseModel):
        out: dict[str, Any] = {}
        for name in type(section).model_fields:
            if is_runtime(type(section), name):
                continue
            value = getattr(section, name)
            if _at_added_default(type(section), name, value):
                continue
            if name == "backend_options" and isinstance(value, Mapping):
                value = {k: v for k, v in sorted(value.items()) if k not in RUNTIME_OPTIONS}
            out[name] = identity(value)
        return out
    if isinstance(section, Mapping):
        return {str(k): identity(v) for k, v in section.items()}
    if isinstance(section, (list, tuple)):
        return [identity(v) for v in section]
    if isinstance(section, Path):
        return str(section)
    return section


def fingerprint(*parts: Any) -> str:
    """A stable SHA-256 (hex) of JSON-serialisable parts (mapping keys sorted)."""
    blob = json.dumps(list(parts), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def fingerprint_strings(chunks: Iterable[list[str]]) -> str:
    """:func:`fingerprint` of one list of strings given in chunks (their concatenation), without holding it:
    ``fingerprint_strings([a, b]) == fingerprint(a + b)``.

    >>> fingerprint_strings([["d1", "é"], [], ["d3"]]) == fingerprint(["d1", "é", "d3"])
    True
    """
    digest = hashlib.sha256(b"[[")
    sep = b""
    for chunk in chunks:
        if chunk:
            digest.update(sep + json.dumps(chunk, ensure_ascii=False)[1:-1].encode("utf-8"))
            sep = b", "
    digest.update(b"]]")
    return digest.hexdigest()


def versioned(kind: str, *parts: Any) -> str:
    """:func:`fingerprint` of ``parts`` together with the code version of cache kind ``kind``."""
    return fingerprint({"kind": kind, "version": VERSIONS[kind]}, *parts)


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes, or of a folder's files (relative names and contents, sorted)."""
    return sha256_path(path)


def dataset_fingerprint(ds: Dataset, *, splits: Iterable[str] = ()) -> str:
    """What the non-evaluation stages of ``ds`` may read: corpus and queries, plus the named qrels splits.

    A label-free run names no split; a run that opts in to train judgements names that split, so adding or
    changing them invalidates exactly the stages that read them. Datasets that are not folders on disk
    (``irds:`` ids) are keyed by name.
    """
    if isinstance(ds, BeirDataset):
        queries = file_hash(ds.queries_path) if ds.queries_path.is_file() else "none"  # a corpus alone
        parts: dict[str, str] = {"corpus": file_hash(ds.corpus_path), "queries": queries}
        for split in sorted(set(splits)):
            if ds.has_split(split):
                parts[f"qrels/{split}"] = file_hash(ds.qrels_path(split))
        return fingerprint(parts)
    return fingerprint({"dataset": ds.name, "splits": sorted(set(splits))})


def model_fingerprint(model: str | Path) -> str:
    """A checkpoint's identity: the contents of a local model folder or file, else the name (hub id)."""
    p = Path(model)
    if p.exists():
        return file_hash(p)
    return fingerprint({"model": str(model)})


def item_seed(seed: int, *key: Any) -> int:
    """A sampling seed for one item (``seed, doc_id, query_index``), in ``[0, 2**31)``.

    It depends on the item only, never on the batch it is generated in, so a resumed or re-batched run
    samples exactly what an uninterrupted one did.
    """
    return int(fingerprint("item-seed", seed, *key)[:8], 16) & 0x7FFFFFFF
