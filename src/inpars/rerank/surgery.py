"""BERT last-layer surgery, now :mod:`inpars.scoring.surgery`; its names are re-exported here."""

from __future__ import annotations

from inpars.scoring.surgery import first_token_layer, prune_last_layer

__all__ = ["first_token_layer", "prune_last_layer"]
