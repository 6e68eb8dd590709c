"""Training checkpoints: which ``checkpoint-N`` folder a killed run resumes from.

A checkpoint counts only when it was written completely: its marker file (:data:`COMPLETE_MARKER`,
written last by the Trainer callback of :mod:`inpars.training.common`), a readable
``trainer_state.json``, and weights that are whole (:func:`safetensors_intact`). Anything newer that is
incomplete is what a kill while saving leaves behind.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

COMPLETE_MARKER = "inpars_checkpoint_complete"


def _checkpoint_step(path: Path) -> int | None:
    name = path.name
    if not name.startswith("checkpoint-"):
        return None
    try:
        return int(name.split("-", 1)[1])
    except ValueError:
        return None


def safetensors_intact(path: Path) -> bool:
    """Whether a ``.safetensors`` file is whole, from its header alone: the 8-byte header length, a JSON
    header, and a file size equal to the header's end plus the largest tensor end offset (a truncated or
    damaged file fails; its data is not read)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if size < 8 or not 2 <= n <= min(size - 8, 100 << 20):
                return False
            header = json.loads(f.read(n))
        ends = [int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"]
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return False
    return size == 8 + n + max(ends, default=0)


def _is_complete(path: Path) -> bool:
    if not (path / COMPLETE_MARKER).is_file():
        return False
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    damaged = [w.name for w in path.glob("*.safetensors") if not safetensors_intact(w)]
    if damaged:
        log.warning("checkpoint %s: %s damaged or truncated; resuming from an earlier one", path, ", ".join(damaged))
        return False
    return True


def last_complete_checkpoint(ckpt_dir: str | Path, *, clean: bool = False) -> Path | None:
    """The newest ``checkpoint-N`` folder that was written completely (marker file present).

    With ``clean`` a folder newer than it that is incomplete (a run killed while saving) is removed, so
    that the Trainer never mistakes it for a checkpoint.
    """
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return None
    found = sorted(
        ((step, p) for p in ckpt_dir.iterdir() if p.is_dir() and (step := _checkpoint_step(p)) is not None),
        key=lambda t: t[0],
    )
    best: Path | None = None
    for _, p in found:
        if _is_complete(p):
            best = p
    if clean:
        best_step = _checkpoint_step(best) if best is not None else -1
        for step, p in found:
            if step > (best_step if best_step is not None else -1) and not _is_complete(p):
                log.warning("removing incomplete checkpoint %s (the run was killed while saving it)", p)
                shutil.rmtree(p, ignore_errors=True)
    return best


def _trainer_state(checkpoint: str | Path) -> dict[str, Any]:
    return dict(json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8")))


def checkpoint_finished(checkpoint: str | Path) -> bool:
    """Whether a checkpoint was saved at its run's last step (``global_step`` reached ``max_steps``)."""
    state = _trainer_state(checkpoint)
    return int(state.get("max_steps") or 0) > 0 and int(state.get("global_step", 0)) >= int(state["max_steps"])


def trainer_state_step(checkpoint: str | Path) -> int:
    """``global_step`` recorded in a checkpoint's ``trainer_state.json``."""
    return int(_trainer_state(checkpoint).get("global_step", 0))
