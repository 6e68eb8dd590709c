"""Scoring engines, now :mod:`inpars.scoring.engines` (the registry itself is :data:`inpars.catalog.ENGINES`);
its names are re-exported here."""

from __future__ import annotations

from inpars.scoring.engines import (
    DEFAULT_ENGINE,
    ENGINES,
    Engine,
    bf16_supported,
    check_engine,
    engine_help,
    get_engine,
)

__all__ = ["DEFAULT_ENGINE", "ENGINES", "Engine", "bf16_supported", "check_engine", "engine_help", "get_engine"]
