"""Cross-encoder rerankers: any BERT-like checkpoint as a sequence classifier with one output logit.

Two losses:

- ``bce`` (pointwise): every (query, positive) pair has label 1 and every (query, negative) pair label
  0; binary cross-entropy on the logit. ``batch_size`` counts pairs.
- ``listwise`` (softmax cross-entropy, "InfoNCE"/ListNet with a one-hot target): for each group
  (query, positive, negatives...) the logits are soft-maxed over the group and the loss is
  ``-log softmax(logits)[positive]``. ``batch_size`` counts groups, so a batch holds
  ``batch_size * (1 + negatives)`` pairs. Groups may hold different numbers of negatives.

Inputs are tokenized as text pairs (``[CLS] query [SEP] document [SEP]``), truncated longest-first to
``max_length`` and padded to the longest pair of the batch (dynamic padding), exactly as
``sentence_transformers.CrossEncoder.predict`` tokenizes them, so the saved model scores in the same way.
The saved folder loads with ``CrossEncoder(path)`` (whose ``predict`` adds a sigmoid) and with
``AutoModelForSequenceClassification`` + ``AutoTokenizer`` (the single logit is the score).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from inpars.records import TrainingExample

log = logging.getLogger(__name__)


def listwise_softmax_loss(scores: Any, group_sizes: list[int]) -> Any:
    """Softmax cross-entropy with the positive first in each group.

    ``scores`` is a flat tensor of logits, groups laid end to end (positive first in each); groups are
    padded with ``-inf`` so that they may differ in size.

    >>> import torch
    >>> round(float(listwise_softmax_loss(torch.tensor([2.0, 0.0, 1.0, 1.0]), [2, 2])), 4)
    0.41
    """
    import torch
    import torch.nn.functional as F
    from torch.nn.utils.rnn import pad_sequence

    groups = list(torch.split(scores, group_sizes))
    matrix = pad_sequence(groups, batch_first=True, padding_value=float("-inf"))
    target = torch.zeros(len(group_sizes), dtype=torch.long, device=scores.device)
    return F.cross_entropy(matrix.float(), target)


class PairDataset:
    """(query, document, label) pairs: each example gives its positive (1) and each negative (0)."""

    def __init__(self, examples: list[TrainingExample]) -> None:
        self.items: list[dict[str, Any]] = []
        for ex in examples:
            self.items.append({"query": ex.query, "doc": ex.positive, "label": 1.0})
            for neg in ex.negatives:
                self.items.append({"query": ex.query, "doc": neg, "label": 0.0})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


class GroupDataset:
    """(query, [positive, negatives...]) groups for the listwise loss."""

    def __init__(self, examples: list[TrainingExample]) -> None:
        self.items = [{"query": ex.query, "docs": [ex.positive, *ex.negatives], "scores": ex.scores}
                      for ex in examples]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


@dataclass
class CrossEncoderCollator:
    """Tokenizes a batch of pairs or groups as text pairs with dynamic padding."""

    tokenizer: Any
    max_length: int

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        if "docs" in items[0]:
            queries = [it["query"] for it in items for _ in it["docs"]]
            docs = [d for it in items for d in it["docs"]]
            extra = {"group_sizes": torch.tensor([len(it["docs"]) for it in items], dtype=torch.long)}
        else:
            queries = [it["query"] for it in items]
            docs = [it["doc"] for it in items]
            extra = {"labels": torch.tensor([it["label"] for it in items], dtype=torch.float)}
        enc = self.tokenizer(
            queries, docs, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
        )
        return {**dict(enc), **extra}


def bce_loss(model: Any, inputs: dict[str, Any]) -> Any:
    import torch.nn.functional as F

    labels = inputs.pop("labels")
    logits = model(**inputs).logits.view(-1)
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


def listwise_loss(model: Any, inputs: dict[str, Any]) -> Any:
    sizes = inputs.pop("group_sizes").tolist()
    logits = model(**inputs).logits.view(-1)
    return listwise_softmax_loss(logits, sizes)


@dataclass
class TrainingParts:
    model: Any
    tokenizer: Any
    dataset: Any
    collator: Any
    loss_fn: Any
    pairs_per_instance: float


def load_cross_encoder(path: str, *, num_labels: int = 1) -> tuple[Any, Any]:
    """A sequence classifier with ``num_labels`` outputs and its tokenizer from a local folder or hub id.

    A plain encoder checkpoint (e.g. the all-MiniLM-L6-v2 bi-encoder) gets a newly initialised
    classification head: seed torch before calling for a reproducible start.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from inpars.errors import ConfigError

    config = AutoConfig.from_pretrained(path)
    if getattr(config, "is_encoder_decoder", False):
        raise ConfigError(f"{path} is an encoder-decoder (seq2seq) model: train it with model_type 'monot5'")
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer


def pairs_per_group(examples: list[TrainingExample]) -> float:
    """Mean (query, document) pairs per (positive, negatives...) group."""
    return sum(1 + len(ex.negatives) for ex in examples) / len(examples)


#: the losses a cross-encoder trains with (the family's ``losses``), by name: the loss, and whether it
#: scores each example's documents as one group (else each (query, document) pair on its own)
LOSSES: dict[str, tuple[Any, bool]] = {"bce": (bce_loss, False), "listwise": (listwise_loss, True)}


def build(base_model: str, examples: list[TrainingExample], *, loss: str, max_length: int) -> TrainingParts:
    """Model, tokenizer, dataset, collator and loss for a cross-encoder run (``loss``: a key of :data:`LOSSES`)."""
    model, tokenizer = load_cross_encoder(base_model)
    loss_fn, grouped = LOSSES[loss]
    dataset: Any = GroupDataset(examples) if grouped else PairDataset(examples)
    pairs = pairs_per_group(examples) if grouped else 1.0
    return TrainingParts(model, tokenizer, dataset, CrossEncoderCollator(tokenizer, max_length), loss_fn, pairs)
