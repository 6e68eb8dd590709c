"""The ``monot5`` family: a seq2seq model that reads ``Query: {q} Document: {d} Relevant:``.

The score is the probability of ``true`` in a softmax over the ``true``/``false`` logits at the first
decoder step (:func:`inpars.training.monot5.monot5_scores`, shared with training). Runs in torch only.
Detection: an encoder-decoder checkpoint (``is_encoder_decoder`` in its config). Trains pointwise
(``bce``: ``true``/``false`` targets; :mod:`inpars.training.monot5`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inpars.families.base import Family, register
from inpars.records import TrainingExample
from inpars.rerank.base import Pair, Scorer, TorchScorer, progress


class MonoT5Scorer(TorchScorer):
    """A monoT5-style seq2seq reranker (torch); the score is P(``true``)."""

    model_type = "monot5"

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        from inpars.training.monot5 import load_monot5, monot5_token_ids

        self._model, self.tokenizer = load_monot5(model, device=self.device)
        monot5_token_ids(self.tokenizer)  # fail now, not at the first batch, if 'true'/'false' are not tokens

    def _score(self, pairs: list[Pair], show_progress: bool | None) -> list[float]:
        from inpars.training.monot5 import monot5_scores

        # monot5_scores sorts by length itself; chunk only to show progress on long inputs.
        chunk = self.batch_size * 16
        out: list[float] = []
        starts = range(0, len(pairs), chunk)
        for s in progress(starts, len(starts), show_progress, "rerank"):
            out.extend(
                monot5_scores(self._model, self.tokenizer, pairs[s : s + chunk], self.batch_size, self.max_length)
            )
        return out


@register
class MonoT5Family(Family):
    name = "monot5"
    description = "seq2seq (T5-like) model; score = P('true') at the first decoder step"
    losses = ("bce",)
    loss_reason = "true/false targets"

    def detect(self, path: str, config: Any = None) -> bool:
        if config is None:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(path)
        return bool(getattr(config, "is_encoder_decoder", False))

    @property
    def scorer(self) -> type[Scorer]:
        return MonoT5Scorer

    def build(self, base_model: str, examples: list[TrainingExample], *, loss: str, max_length: int) -> Any:
        from inpars.training.monot5 import build

        return build(base_model, examples, loss=loss, max_length=max_length)

    def usage(self, where: Path) -> str:
        return (
            "```python\n"
            "from inpars.training.monot5 import load_monot5, monot5_scores\n"
            f'model, tok = load_monot5("{where}")\n'
            'monot5_scores(model, tok, [("a query", "a document")], batch_size=32, max_length=512)\n'
            "```\n"
            'Input: `Query: {q} Document: {d} Relevant:`; score = P("true") against "false" at the first decoder step.\n'
        )
