"""Sequence-classification heads, now :mod:`inpars.scoring.classifier`; its names are re-exported here."""

from __future__ import annotations

from inpars.scoring.classifier import (
    has_classification_head,
    head_labels,
    load_sequence_classifier,
    logits_to_scores,
)

__all__ = ["has_classification_head", "head_labels", "load_sequence_classifier", "logits_to_scores"]
