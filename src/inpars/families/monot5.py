"""The ``monot5`` family: a seq2seq model that reads ``Query: {q} Document: {d} Relevant:``.

The score is the probability of the "relevant" token in a softmax over the (relevant, non-relevant) pair
of logits at the first decoder step (:func:`inpars.training.monot5.monot5_scores`, shared with training).
The pair is read from the model (:func:`prediction_tokens`), as the original InPars toolkit chooses it:
``true``/``false`` for monoT5, ``▁yes``/``▁no`` for mT5 rerankers (unicamp-dl's mT5 mMARCO models),
``yes``/``no`` for FLAN-T5; a model trained here records its pair in ``config.json``. Runs in torch only.
Detection: an encoder-decoder checkpoint (``is_encoder_decoder`` in its config). Trains pointwise
(``bce``: ``true``/``false`` targets; :mod:`inpars.training.monot5`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from inpars.errors import ConfigError
from inpars.records import TrainingExample
from inpars.scoring.base import Pair, Scorer, TorchScorer, progress
from inpars.scoring.family import Family, register

log = logging.getLogger(__name__)

#: the ``config.json`` key where a model trained by inpars records its (relevant, non-relevant) tokens
TOKENS_KEY = "inpars_monot5_tokens"


def prediction_tokens(path: str | Path, config: Any = None) -> tuple[str, str]:
    """The (relevant, non-relevant) target tokens of a seq2seq reranker, read from the model:

    1. ``config.json``'s ``inpars_monot5_tokens`` (written by :meth:`MonoT5Family.finalize`);
    2. an mT5 model (``model_type: mt5``): ``▁yes``/``▁no``, the tokens of unicamp-dl's mT5 rerankers in the
       original toolkit's table;
    3. a FLAN-T5 model (``flan`` in its name or path): ``yes``/``no``, as the original's ``FLANT5Reranker``;
    4. otherwise monoT5's ``true``/``false`` (the original's default).
    """
    from inpars.training.monot5 import FALSE_TOKEN, TRUE_TOKEN

    if config is None:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(path))
    recorded = getattr(config, TOKENS_KEY, None)
    if isinstance(recorded, (list, tuple)) and len(recorded) == 2 and all(isinstance(t, str) for t in recorded):
        return recorded[0], recorded[1]
    if getattr(config, "model_type", None) == "mt5":
        return "\u2581yes", "\u2581no"
    names = f"{path} {getattr(config, '_name_or_path', '')}".lower()
    if "flan" in names:
        return "yes", "no"
    return TRUE_TOKEN, FALSE_TOKEN


def token_pair_ids(tokenizer: Any, tokens: tuple[str, str]) -> tuple[int, int]:
    """Ids of the two tokens: a vocabulary entry as written (``▁yes``), else a word the tokenizer encodes as
    exactly one token (``true``); ConfigError otherwise."""
    vocab = tokenizer.get_vocab()
    ids = []
    for token in tokens:
        if token in vocab:
            ids.append(int(vocab[token]))
            continue
        enc = tokenizer.encode(token, add_special_tokens=False)
        if len(enc) != 1:
            raise ConfigError(f"the reranker's target token '{token}' is not one token of its tokenizer: {enc}")
        ids.append(int(enc[0]))
    return ids[0], ids[1]


class MonoT5Scorer(TorchScorer):
    """A monoT5-style seq2seq reranker (torch); the score is P(relevant token), the pair read from the model
    (:func:`prediction_tokens`) unless ``tokens`` names it."""

    model_type = "monot5"

    def __init__(self, model: str, tokens: tuple[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        from inpars.training.monot5 import load_monot5

        self._model, self.tokenizer = load_monot5(model, device=self.device)
        self.tokens: tuple[str, str] = (tokens[0], tokens[1]) if tokens else prediction_tokens(model, self._model.config)
        self.token_ids = token_pair_ids(self.tokenizer, self.tokens)  # fails now, not at the first batch

    def _score(self, pairs: list[Pair], show_progress: bool | None) -> list[float]:
        from inpars.training.monot5 import monot5_scores

        # monot5_scores sorts by length itself; chunk only to show progress on long inputs.
        chunk = self.batch_size * 16
        out: list[float] = []
        starts = range(0, len(pairs), chunk)
        for s in progress(starts, len(starts), show_progress, "rerank", unit="batch"):
            out.extend(
                monot5_scores(self._model, self.tokenizer, pairs[s : s + chunk], self.batch_size, self.max_length,
                              token_ids=self.token_ids)
            )
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tokens": list(self.tokens)}


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

    def finalize(self, model_dir: Path, max_length: int) -> None:
        """Record the (relevant, non-relevant) tokens the model was trained with in its ``config.json``."""
        from inpars.training.monot5 import FALSE_TOKEN, TRUE_TOKEN

        path = Path(model_dir) / "config.json"
        config = json.loads(path.read_text(encoding="utf-8"))
        config[TOKENS_KEY] = [TRUE_TOKEN, FALSE_TOKEN]
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    def usage(self, where: Path) -> str:
        return (
            "```python\n"
            "from inpars.training.monot5 import load_monot5, monot5_scores\n"
            f'model, tok = load_monot5("{where}")\n'
            'monot5_scores(model, tok, [("a query", "a document")], batch_size=32, max_length=512)\n'
            "```\n"
            'Input: `Query: {q} Document: {d} Relevant:`; score = P("true") against "false" at the first decoder step.\n'
        )
