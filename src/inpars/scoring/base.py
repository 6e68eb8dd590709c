"""The scorer interface every reranker family implements, and the set-up shared by the torch-only ones.

This is the protocol below both :mod:`inpars.families` (which implement it) and :mod:`inpars.rerank`
(which loads and runs scorers); :mod:`inpars.rerank.base` re-exports it.

Nothing here imports torch at module level: a family module that defines a scorer stays cheap to import
(the CLI builds its ``--model-type`` choices from the registry of families).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from inpars.catalog import check_engine
from inpars.errors import ConfigError, InputError
from inpars.quiet import bar, show_progress
from inpars.records import Run

Pair = tuple[str, str]
RunDict = Run


def progress(iterable: Iterable[Any], total: int, show: bool | None, desc: str, unit: str = "it") -> Iterable[Any]:
    """``iterable`` wrapped in a tqdm bar when ``show`` (None: when stderr is a terminal; never with ``-q``:
    :func:`inpars.quiet.show_progress`)."""
    if not show_progress(show):
        return iterable
    return bar(iterable, total=total, desc=desc, unit=unit, show=True)  # type: ignore[no-any-return]


#: families whose ``max_length`` is the length of a (query, document) input, read from the model by default
LENGTH_FROM_MODEL = ("cross-encoder", "monot5", "bi-encoder")
#: the length used when a model states none (T5's relative positions have no limit; monoT5 used 512)
FALLBACK_MAX_LENGTH = 512
_NO_LIMIT = 10**9  # transformers writes int(1e30) as model_max_length when a tokenizer states no limit


def _json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def model_max_length(path: str | Path, model_type: str = "cross-encoder") -> int:
    """The input length a saved model is used with, as the library that saved it reads it back.

    - ``bi-encoder``: ``max_seq_length`` of ``sentence_bert_config.json`` (what ``SentenceTransformer``
      truncates to), when there is one;
    - otherwise (and for the other families): the tokenizer's ``model_max_length``
      (``tokenizer_config.json``: what ``CrossEncoder`` and the original InPars reranker truncate to),
      capped at ``max_position_embeddings`` of ``config.json``;
    - with neither, ``max_position_embeddings``, else :data:`FALLBACK_MAX_LENGTH`.

    ``path`` is a local model folder; a hub id that is not on disk gets :data:`FALLBACK_MAX_LENGTH`.
    """
    folder = Path(path)
    if model_type == "bi-encoder":
        st = _json(folder / "sentence_bert_config.json").get("max_seq_length")
        if isinstance(st, int) and st > 0:
            return st
    positions = _json(folder / "config.json").get("max_position_embeddings")
    cap = positions if isinstance(positions, int) and positions > 0 else None
    tok = _json(folder / "tokenizer_config.json").get("model_max_length")
    if isinstance(tok, (int, float)) and 0 < tok < _NO_LIMIT:
        return int(min(tok, cap)) if cap else int(tok)
    return cap or FALLBACK_MAX_LENGTH


class Scorer(ABC):
    """Scores (query, document text) pairs; a higher score means more relevant.

    Subclasses implement :meth:`_score`; :meth:`score` checks the input. ``describe()`` names what decides
    the scores (model, family, engine, max_length) plus runtime details (threads, device), which the score
    cache leaves out of its key.
    """

    model_type: str = ""
    engine: str = "torch"

    def __init__(self, model: str, batch_size: int, max_length: int) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if max_length < 8:
            raise ConfigError(f"max_length must be >= 8, got {max_length}")
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length

    def score(self, pairs: Sequence[Pair], *, show_progress: bool | None = False) -> list[float]:
        """Relevance scores of ``(query, document)`` pairs, in input order."""
        pairs = list(pairs)
        for i, p in enumerate(pairs):
            if not (isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], str)):
                raise InputError(f"pair {i} is not a (query, document) tuple of two strings: {p!r:.80}")
        if not pairs:
            return []
        return self._score(pairs, show_progress)

    @abstractmethod
    def _score(self, pairs: list[Pair], show_progress: bool | None) -> list[float]: ...

    def describe(self) -> dict[str, Any]:
        """What produced the scores (for manifests, logs and the score cache's key)."""
        return {
            "model": self.model,
            "model_type": self.model_type,
            "engine": self.engine,
            "max_length": self.max_length,
        }

    def __repr__(self) -> str:
        d = self.describe()
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in d.items())})"


def release(scorer: Any) -> bool:
    """Close ``scorer`` if it holds resources outside this process (it has ``close()``: a
    :class:`~inpars.rerank.ray_scoring.RayScorer`'s actors); whether it was closed. A scorer without
    ``close`` holds only memory and stays usable."""
    close = getattr(scorer, "close", None)
    if not callable(close):
        return False
    close()
    return True


class TorchScorer(Scorer):
    """Set-up shared by the scorers that run in this process (in torch; the cross-encoder also in
    onnxruntime): the engine checked against the family (``engine_spec``), torch's CPU threads, and the
    device: ``device`` when given, else CUDA when available and the engine is not an onnxruntime one."""

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 32,
        max_length: int = 256,
        engine: str = "torch",
        threads: int | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(model, batch_size, max_length)
        import torch

        self.engine_spec = check_engine(engine, self.model_type)
        if threads is not None:
            torch.set_num_threads(threads)
        self.threads = threads
        self.device = device or (
            "cuda" if torch.cuda.is_available() and self.engine_spec.runtime != "onnx" else "cpu"
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "threads": self.threads, "device": self.device}
