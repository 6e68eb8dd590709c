"""Sequence-classification heads of cross-encoder checkpoints: detection, loading, logits to scores."""

from __future__ import annotations

from typing import Any

from inpars.errors import ConfigError


def has_classification_head(config: Any) -> bool:
    """Whether a checkpoint's config names a sequence-classification architecture (a cross-encoder head)."""
    archs = getattr(config, "architectures", None) or []
    return any(a.endswith("ForSequenceClassification") for a in archs)


def head_labels(config: Any) -> int:
    """Labels of an existing classification head, or 1 for a bare encoder (a new one-logit head)."""
    if has_classification_head(config):
        n = int(getattr(config, "num_labels", 1))
        if n not in (1, 2):
            raise ConfigError(f"a cross-encoder needs a 1- or 2-label head; this checkpoint has {n} labels")
        return n
    return 1


def load_sequence_classifier(model: str, num_labels: int, **kwargs: Any) -> Any:
    """The classifier; a head missing from the checkpoint is initialised from a fixed seed, so that every
    engine (and every load) of a bare encoder scores alike."""
    import torch
    from transformers import AutoModelForSequenceClassification

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return AutoModelForSequenceClassification.from_pretrained(model, num_labels=num_labels, **kwargs)


def logits_to_scores(logits: list[list[float]], num_labels: int) -> list[float]:
    """The score of each row: the logit of a one-label head, ``logit[1] - logit[0]`` of a two-label one
    (the same order as the softmax probability of the positive class)."""
    if num_labels == 1:
        return [row[0] for row in logits]
    return [row[1] - row[0] for row in logits]
