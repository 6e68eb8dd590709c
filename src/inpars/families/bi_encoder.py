"""The ``bi-encoder`` family: a sentence-transformers embedding model; score = cosine of the embeddings.

Each distinct text is encoded once per scorer, so reranking costs one pass per document, not one per
pair. Runs in torch only. Detection: a sentence-transformers folder (``modules.json``) without a
classification head, such as the packaged all-MiniLM-L6-v2 or a bi-encoder trained here (read as a
cross-encoder, it would score through a randomly initialised head). Trains with ``listwise`` only
(in-batch negatives; :mod:`inpars.training.bi_encoder`), saved as a sentence-transformers model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inpars.quiet import show_progress as shown_here
from inpars.records import TrainingExample
from inpars.scoring.base import Pair, Scorer, TorchScorer
from inpars.scoring.classifier import has_classification_head
from inpars.scoring.family import Family, register


class BiEncoderScorer(TorchScorer):
    """A sentence-transformers bi-encoder; the score is the cosine of the two embeddings.

    Embeddings are kept per text for the scorer's lifetime, so documents shared by several queries (or by
    the evaluation and tuning queries) are encoded once.

    >>> scorer = load_scorer("minilm-l6", "bi-encoder", max_length=128)                # doctest: +SKIP
    >>> scorer.score([("what lowers cholesterol", "Statins reduce LDL cholesterol.")])  # doctest: +SKIP
    [0.61]
    """

    model_type = "bi-encoder"

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(model, device=self.device)
        self._model.max_seq_length = self.max_length
        self._cache: dict[str, Any] = {}
        self.encoded = 0  # texts encoded so far (the cache's misses)

    def _embed(self, texts: list[str], show_progress: bool | None) -> None:
        todo = sorted({t for t in texts if t not in self._cache}, key=lambda t: (-len(t), t))
        if not todo:
            return

        shown = shown_here(show_progress)  # sentence-transformers' own rule would follow its logger's level
        vectors = self._model.encode(
            todo, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=shown,
        )
        self._cache.update(zip(todo, vectors, strict=True))
        self.encoded += len(todo)

    def encode(self, texts: list[str], show_progress: bool | None = False) -> Any:
        """The normalised embeddings of ``texts`` (a float32 array, one row per text, in order); a text
        encoded before (by this call or :meth:`score`) is not encoded again."""
        import numpy as np

        self._embed(texts, show_progress)
        if not texts:  # sentence-transformers renamed the method (get_embedding_dimension) in version 5
            dimension = getattr(self._model, "get_embedding_dimension", self._model.get_sentence_embedding_dimension)
            return np.zeros((0, dimension() or 0), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    def _score(self, pairs: list[Pair], show_progress: bool | None) -> list[float]:
        self._embed([q for q, _ in pairs] + [d for _, d in pairs], show_progress)
        return [float(self._cache[q] @ self._cache[d]) for q, d in pairs]


@register
class BiEncoderFamily(Family):
    name = "bi-encoder"
    description = "sentence-transformers embedding model; score = cosine of query and document embeddings"
    losses = ("listwise", "margin-mse")
    loss_reason = "in-batch negatives, or distillation from teacher scores"

    def detect(self, path: str, config: Any = None) -> bool:
        if config is None:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(path)
        return (
            not has_classification_head(config)
            and not getattr(config, "is_encoder_decoder", False)
            and (Path(path) / "modules.json").is_file()
        )

    @property
    def scorer(self) -> type[Scorer]:
        return BiEncoderScorer

    def build(self, base_model: str, examples: list[TrainingExample], *, loss: str, max_length: int) -> Any:
        from inpars.training.bi_encoder import build

        return build(base_model, examples, loss=loss, max_length=max_length)

    def finalize(self, model_dir: Path, max_length: int) -> None:
        from inpars.training.bi_encoder import finalize

        finalize(model_dir, max_length)

    def usage(self, where: Path) -> str:
        return (
            "```python\n"
            "from sentence_transformers import SentenceTransformer\n"
            f'model = SentenceTransformer("{where}")  # mean pooling, normalised: score = dot product\n'
            'q, d = model.encode(["a query", "a document"])\n'
            "```\n"
            f"Rerank with: `inpars rerank --model {where} --model-type bi-encoder ...`\n"
        )
