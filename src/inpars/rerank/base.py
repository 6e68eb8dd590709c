"""The scorer interface, now :mod:`inpars.scoring.base` (the protocol below both :mod:`inpars.families` and
:mod:`inpars.rerank`); its names are re-exported here."""

from __future__ import annotations

from inpars.scoring.base import (
    FALLBACK_MAX_LENGTH,
    LENGTH_FROM_MODEL,
    Pair,
    RunDict,
    Scorer,
    TorchScorer,
    model_max_length,
    progress,
    release,
)

__all__ = ["FALLBACK_MAX_LENGTH", "LENGTH_FROM_MODEL", "Pair", "RunDict", "Scorer", "TorchScorer", "model_max_length",
           "progress", "release"]
