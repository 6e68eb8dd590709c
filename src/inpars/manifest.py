"""Stage bookkeeping: each stage writes its outputs into its own folder with a ``manifest.json``.

The manifest records the stage's config slice, the hashes of its inputs, package versions, the seed,
timings and counts. Its *fingerprint* (a hash of config slice + input hashes + the code's version) decides
whether a finished stage can be skipped: same fingerprint, same result, nothing to do.

A stage folder has three states:

- ``manifest.json`` present with the current fingerprint: finished; skipped.
- ``pending.json`` present with the current fingerprint: interrupted; the stage resumes in place
  (stages append crash-safely or checkpoint, so nothing is lost or duplicated).
- anything else (another fingerprint, ``force``): the folder is cleared and the stage runs from scratch.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inpars import __version__
from inpars.io import hash_obj, sha256_path, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PENDING = "pending.json"
_PACKAGES = (
    "inpars-toolkit", "torch", "transformers", "sentence-transformers", "accelerate", "bm25s", "PyStemmer",
    "ir_measures", "pytrec-eval-terrier", "xllamacpp", "numpy", "scipy", "onnxruntime",
)


def package_versions(packages: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that decide a result (absent ones are left out)."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


@dataclass
class StageResult:
    name: str
    folder: Path
    skipped: bool
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.manifest.get("summary", {}))


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    import json

    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def fingerprint(config: Any, input_hashes: Mapping[str, str]) -> str:
    return hash_obj({"config": config, "inputs": dict(input_hashes), "inpars": __version__})


def run_stage(
    name: str,
    folder: str | Path,
    config: Any,
    inputs: Mapping[str, str | Path],
    fn: Callable[[Path], Mapping[str, Any]],
    *,
    seed: int | None = None,
    force: bool = False,
    extra_hashes: Mapping[str, str] | None = None,
) -> StageResult:
    """Run ``fn(folder)`` unless a manifest with the same fingerprint says it is done.

    ``inputs`` maps names to files or folders whose contents the stage depends on; ``extra_hashes`` adds
    precomputed hashes (e.g. of a dataset). ``fn`` returns a JSON-able summary (counts, figures).
    """
    folder = Path(folder)
    t0 = time.perf_counter()
    hashes = {k: sha256_path(v) for k, v in inputs.items()}
    hashes.update(extra_hashes or {})
    fp = fingerprint(config, hashes)
    done = read_manifest(folder)
    if done is not None and done.get("fingerprint") == fp and not force:
        log.info("stage %s: up to date (%s), skipped", name, folder)
        return StageResult(name, folder, skipped=True, manifest=done)
    pending = folder / PENDING
    resume = False
    if pending.is_file() and not force:
        import json

        resume = json.loads(pending.read_text(encoding="utf-8")).get("fingerprint") == fp
    if folder.exists() and not resume:
        if done is not None or pending.is_file() or force:
            log.info("stage %s: inputs or config changed%s; starting afresh", name, " (forced)" if force else "")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if resume:
        log.info("stage %s: resuming an interrupted run in %s", name, folder)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(pending, {"stage": name, "fingerprint": fp, "started": started})
    log.info("stage %s: running", name)
    summary = dict(fn(folder))
    outputs = {
        p.name: sha256_path(p)
        for p in sorted(folder.iterdir())
        if p.name not in (MANIFEST, PENDING) and not p.name.startswith(".")
    }
    manifest = {
        "stage": name,
        "fingerprint": fp,
        "config": config,
        "inputs": {k: {"path": str(v), "sha256": hashes[k]} for k, v in inputs.items()}
        | {k: {"sha256": v} for k, v in (extra_hashes or {}).items()},
        "outputs": outputs,
        "seed": seed,
        "versions": package_versions(),
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 3),
        "resumed": resume,
        "summary": summary,
    }
    write_json(folder / MANIFEST, manifest)
    pending.unlink(missing_ok=True)
    log.info("stage %s: done in %.1f s", name, manifest["seconds"])
    return StageResult(name, folder, skipped=False, manifest=manifest)
