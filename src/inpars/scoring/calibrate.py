"""Engine ``auto``: the faster of the exact engines on this machine, measured on the first batches.

``auto`` chooses between engines that give the same scores (torch fp32 and onnxruntime fp32 agree within
1e-4; bf16 and int8 move scores and are never chosen for the user). Which one is faster depends on the CPU,
the thread count, the model and the input length, so it is measured rather than assumed: the scorer runs
its first batch on every candidate (a warm-up: one-time allocations, kernel selection), times the next
three batches on each (the engines taking turns at going first), keeps the faster engine and closes the
others; the probe batches' scores are the chosen engine's own, so only the other engines' work is extra. The choice is cached in
``$INPARS_CACHE/engine-choice.json`` under a key of the CPU model, the thread count, the model, the batch
size and length, and the library versions, so a later scorer on the same machine loads the chosen engine
only and measures nothing. ``INPARS_ENGINE_CHOICE=off`` disables the cache (every scorer measures).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from inpars.fingerprint import fingerprint
from inpars.io import write_json
from inpars.models import cache_dir

log = logging.getLogger(__name__)

CACHE_FILE = "engine-choice.json"
#: batches a calibration uses: the first warms every engine up, the other three are timed (one timed batch
#: could not tell apart engines a few percent apart on a busy machine)
PROBE_BATCHES = 4


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :func:`platform.processor` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("torch", "onnxruntime", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "-"
    return out


def choice_key(model: str, *, threads: int, batch_size: int, max_length: int, candidates: Sequence[str]) -> str:
    """The cache key of a choice: what decides which engine is faster (not the texts scored)."""
    return fingerprint({"cpu": cpu_model(), "cores": os.cpu_count(), "threads": threads, "model": str(model),
                        "batch_size": batch_size, "max_length": max_length, "candidates": sorted(candidates),
                        "versions": _versions()})


def _cache_path() -> Path | None:
    if os.environ.get("INPARS_ENGINE_CHOICE", "").lower() == "off":
        return None
    return cache_dir() / CACHE_FILE


def cached_choice(key: str) -> str | None:
    """The engine chosen earlier under ``key``, or None (no cache, no entry, an unreadable file)."""
    path = _cache_path()
    if path is None or not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return entry.get("engine") if isinstance(entry, dict) and isinstance(entry.get("engine"), str) else None


def remember(key: str, engine: str, seconds: dict[str, float]) -> None:
    """Record a choice (and the timings it was made on) under ``key``; a cache that cannot be written is
    only logged."""
    path = _cache_path()
    if path is None:
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        if not isinstance(data, dict):
            data = {}
        data[key] = {"engine": engine, "seconds": seconds, "cpu": cpu_model(), "date": time.strftime("%Y-%m-%d")}
        write_json(path, data)
    except (OSError, ValueError) as exc:
        log.debug("engine choice not cached (%s)", exc)


def time_engines(forward: dict[str, Callable[[Any], list[float]]], batches: Sequence[Any]) -> tuple[str, dict[str, float],
                                                                                                      list[list[float]]]:
    """Run every batch on every engine of ``forward`` (name -> the engine's forward over one batch); the
    first batch warms up, the later ones are timed, the engines taking turns at going first (so that what
    one engine leaves in the caches favours each in turn). Returns the fastest engine by total timed
    seconds (ties: the first named), each engine's timed seconds, and the fastest engine's scores of every
    batch."""
    seconds = dict.fromkeys(forward, 0.0)
    values: dict[str, list[list[float]]] = {name: [] for name in forward}
    names = list(forward)
    for i, batch in enumerate(batches):
        for name in names if i % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            values[name].append(forward[name](batch))
            if i > 0 or len(batches) == 1:
                seconds[name] += time.perf_counter() - t
    best = min(names, key=lambda name: seconds[name])
    return best, {k: round(v, 4) for k, v in seconds.items()}, values[best]
