"""What a model family provides and the registry of families, now :mod:`inpars.scoring.family` (below the
families that implement it); its names are re-exported here."""

from __future__ import annotations

from inpars.scoring.family import (
    DEFAULT_FAMILY,
    FAMILIES,
    Family,
    detect_model_type,
    family_help,
    get_family,
    register,
    resolve_training,
)

__all__ = ["DEFAULT_FAMILY", "FAMILIES", "Family", "detect_model_type", "family_help", "get_family", "register",
           "resolve_training"]
