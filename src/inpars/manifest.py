"""Stage bookkeeping: each stage writes its outputs into its own folder with a ``manifest.json``.

The manifest records the stage's config slice, the hashes of its inputs and outputs, package versions,
the seed, timings and counts. Its *fingerprint* (:func:`stage_fingerprint`:
:func:`inpars.fingerprint.versioned` of the stage's code version ``VERSIONS[stage]``, the
:func:`~inpars.fingerprint.identity` of its config slice and its input hashes) decides whether a finished
stage can be skipped: same fingerprint and intact outputs, same result, nothing to do. Runtime-only
settings (threads, batch sizes) are not part of it, and neither is the package version: bumping
``VERSIONS[stage]`` invalidates that stage only.

A stage folder has three states:

- ``manifest.json`` readable, with the current fingerprint, and every output it records present with the
  recorded hash: finished; skipped.
- ``pending.json`` present with the current fingerprint: interrupted; the stage resumes in place
  (stages append crash-safely or checkpoint, so nothing is lost or duplicated).
- anything else (another fingerprint, an output deleted or modified, a corrupt ``manifest.json``,
  ``force``): the stage runs from scratch in an empty folder. A finished folder is first moved aside
  (``.NN-stage.previous``) and deleted only once the new work has succeeded; if the stage raises, the
  finished folder is put back. An interrupted run (Ctrl-C, a kill) keeps the new folder, to resume.
  One exception: a stage that declares growable settings (``grow``: ``generate.n_docs`` with the random
  sample) and whose only change is a larger value of them, or a change of settings it declares reusable
  (``train.average_start``), starts from a copy of its finished outputs, which it extends or reuses (the
  finished folder is still kept aside until the new work succeeds).

Secrets written into the config (``http://user:PASS@host``, ``?api_key=``) are masked in the manifest
(:func:`inpars.safety.mask_obj`).
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

from inpars.fingerprint import VERSIONS, fingerprint, identity
from inpars.io import sha256_path, write_json
from inpars.safety import mask_obj, mask_secrets

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
    """The stage's manifest, or ``None`` when it is missing or unreadable (a corrupt one is logged)."""
    import json

    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s is unreadable (%s); the stage will run again", path, exc)
        return None
    if not isinstance(data, dict):
        log.warning("%s is not a JSON object; the stage will run again", path)
        return None
    return data


def stage_fingerprint(name: str, config: Any, input_hashes: Mapping[str, str]) -> str:
    """What decides a stage's result: its code version, its config's identity and its input hashes.

    Stages without an entry in :data:`~inpars.fingerprint.VERSIONS` have version 0.
    """
    return fingerprint(
        {"kind": name, "version": VERSIONS.get(name, 0)}, identity(config), dict(sorted(input_hashes.items()))
    )


def outputs_intact(folder: str | Path, manifest: Mapping[str, Any]) -> bool:
    """Whether every output a manifest records is still in ``folder`` with the recorded hash."""
    folder = Path(folder)
    outputs = manifest.get("outputs")
    if not isinstance(outputs, dict):
        return False
    for name, digest in outputs.items():
        path = folder / str(name)
        if not path.exists():
            log.info("%s: recorded output %s is missing", folder, name)
            return False
        if sha256_path(path) != digest:
            log.info("%s: recorded output %s was modified", folder, name)
            return False
    return True


def _jsonable(config: Any) -> Any:
    """``config`` for the manifest: pydantic sections dumped (runtime fields included), recursively."""
    from pydantic import BaseModel

    if isinstance(config, BaseModel):
        return config.model_dump(mode="json")
    if isinstance(config, Mapping):
        return {str(k): _jsonable(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [_jsonable(v) for v in config]
    if isinstance(config, Path):
        return str(config)
    return config


#: ``grow`` of :func:`run_stage`: a config identity -> (the identity without its growable and reusable
#: settings, {growable setting: value})
Split = Callable[[Mapping[str, Any]], tuple[Any, Mapping[str, Any]]]


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
    grow: Split | None = None,
) -> StageResult:
    """Run ``fn(folder)`` unless a manifest with the same fingerprint and intact outputs says it is done.

    ``config`` is the stage's config slice: pydantic sections (their runtime-only fields are left out of
    the fingerprint), mappings of them, or plain JSON values. ``inputs`` maps names to files or folders
    whose contents the stage depends on; ``extra_hashes`` adds precomputed hashes (e.g. of a dataset).
    ``fn`` returns a JSON-able summary (counts, figures).

    ``grow`` declares settings whose increase extends the finished outputs: it splits a config identity (the
    current one, or one a manifest records) into ``(key, sizes)``, the identity without the growable (and
    reusable) settings and the growable settings' values. When a finished folder's growth record (the
    manifest's ``grow``, or derived from its recorded config for a manifest written before its stage
    declared it) has the same key (and inputs) and sizes no larger than these, its outputs (intact) are
    copied into the new folder before ``fn`` runs, and ``fn`` extends them.
    """
    folder = Path(folder)
    t0 = time.perf_counter()
    hashes, fp, grown = _identify(name, config, inputs, extra_hashes, grow)
    _restore_previous(name, folder, fp)
    done = read_manifest(folder)
    how = None if force else _taken_over(name, folder, done, fp, grow, grown)
    if how == "skip":
        assert done is not None  # "skip" comes from a manifest
        log.info("stage %s: up to date (%s), skipped", name, folder)
        return StageResult(name, folder, skipped=True, manifest=done)
    pending = folder / PENDING
    resume = pending.is_file() and not force and _pending_fingerprint(pending) == fp
    extend = how == "extend"
    previous = folder.with_name(f".{folder.name}.previous")
    if folder.exists() and not resume:
        _clear(name, folder, previous, done=done, force=force, extend=extend, grown=grown)
    folder.mkdir(parents=True, exist_ok=True)
    if extend and previous.is_dir():
        _copy_outputs(previous, folder)
    if resume:
        log.info("stage %s: resuming an interrupted run in %s", name, folder)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(pending, {"stage": name, "fingerprint": fp, "started": started})
    log.info("stage %s: running", name)
    summary = _run_or_restore(name, folder, previous, fn)
    # Interrupted (Ctrl-C; a kill never gets here): both stay, the new work to resume under its config and
    # the finished outputs aside, put back by the next start under the config that made them.
    outputs = {p.name: sha256_path(p) for p in _output_paths(folder)}
    manifest = {
        "stage": name,
        "fingerprint": fp,
        "config": mask_obj(_jsonable(config)),
        "inputs": {k: {"path": mask_secrets(v), "sha256": hashes[k]} for k, v in inputs.items()}
        | {k: {"sha256": v} for k, v in (extra_hashes or {}).items()},
        "outputs": outputs,
        "seed": seed,
        "versions": package_versions(),
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 3),
        "resumed": resume,
        "extended": extend,
        "summary": summary,
    }
    if grown is not None:
        manifest["grow"] = grown
    write_json(folder / MANIFEST, manifest)
    pending.unlink(missing_ok=True)
    if previous.exists():
        shutil.rmtree(previous, ignore_errors=True)
    log.info("stage %s: done in %.1f s", name, manifest["seconds"])
    return StageResult(name, folder, skipped=False, manifest=manifest)


def _clear(
    name: str, folder: Path, previous: Path, *, done: Mapping[str, Any] | None, force: bool, extend: bool,
    grown: Mapping[str, Any] | None,
) -> None:
    """Empty the place of a stage that does not resume: a finished folder moved aside, any other removed."""
    pending = folder / PENDING
    if extend:
        grown_names = ", ".join(grown["sizes"] if grown else ())
        log.info("stage %s: %s", name, f"{grown_names} grew; extending the finished outputs" if grown_names
                 else "only settings it reuses its finished outputs for changed; starting from them")
    elif done is not None or pending.is_file() or force:
        log.info("stage %s: inputs or config changed%s; starting afresh", name, " (forced)" if force else "")
    if done is not None and not pending.is_file():
        # finished work is kept aside until the new work succeeds
        if previous.exists():
            shutil.rmtree(previous)
        folder.rename(previous)
    else:
        shutil.rmtree(folder)


def _output_paths(folder: Path) -> list[Path]:
    """A stage folder's outputs, sorted: every entry but the manifest, ``pending.json`` and hidden ones."""
    return [
        p for p in sorted(folder.iterdir()) if p.name not in (MANIFEST, PENDING) and not p.name.startswith(".")
    ]


def _copy_outputs(previous: Path, folder: Path) -> None:
    """Copy the finished outputs kept aside in ``previous`` into ``folder``, for the stage to extend them."""
    for p in _output_paths(previous):
        (shutil.copytree if p.is_dir() else shutil.copy2)(p, folder / p.name)


def _run_or_restore(
    name: str, folder: Path, previous: Path, fn: Callable[[Path], Mapping[str, Any]]
) -> dict[str, Any]:
    """``fn(folder)``'s summary; if it raises, the finished folder kept aside in ``previous`` is put back."""
    try:
        return dict(fn(folder))
    except Exception:
        if previous.is_dir():  # the new work failed: put the finished folder back
            shutil.rmtree(folder, ignore_errors=True)
            previous.rename(folder)
            log.info("stage %s failed; its previous outputs are kept in %s", name, folder)
        raise


def _restore_previous(name: str, folder: Path, fp: str) -> None:
    """Put a stage's finished outputs, kept aside in ``.NN-stage.previous`` while new work ran, back in
    place when that new work did not finish (killed, interrupted) and either nothing of it is left or the
    config now asks for what the finished outputs were made with (the change was reverted)."""
    previous = folder.with_name(f".{folder.name}.previous")
    if not previous.is_dir() or read_manifest(folder) is not None:
        return
    kept = read_manifest(previous)
    if folder.exists() and not (kept is not None and kept.get("fingerprint") == fp):
        return  # the unfinished work is another config's: it resumes or starts afresh, the copy stays aside
    if folder.exists():
        shutil.rmtree(folder)
        log.info("stage %s: the unfinished work of another config is dropped; its finished outputs are back", name)
    previous.rename(folder)


def takes_over(
    name: str,
    folder: str | Path,
    config: Any,
    inputs: Mapping[str, str | Path],
    *,
    extra_hashes: Mapping[str, str] | None = None,
    grow: Split | None = None,
) -> str | None:
    """How :func:`run_stage` called with these arguments (``force`` off) would take ``folder``'s finished
    outputs as its own: ``"skip"`` (up to date), ``"extend"`` (it extends or reuses them, so its outputs
    will differ), or ``None`` (it starts afresh: no manifest, damaged outputs, another config or input, or
    an interrupted run where it would extend)."""
    folder = Path(folder)
    _, fp, grown = _identify(name, config, inputs, extra_hashes, grow)
    return _taken_over(name, folder, read_manifest(folder), fp, grow, grown)


def _identify(
    name: str, config: Any, inputs: Mapping[str, str | Path], extra_hashes: Mapping[str, str] | None,
    grow: Split | None,
) -> tuple[dict[str, str], str, dict[str, Any] | None]:
    """A stage call's input hashes (``extra_hashes`` included), fingerprint and growth record."""
    hashes = {k: sha256_path(v) for k, v in inputs.items()}
    hashes.update(extra_hashes or {})
    grown = None if grow is None else _growth(name, grow, identity(config), hashes)
    return hashes, stage_fingerprint(name, config, hashes), grown


def _taken_over(
    name: str, folder: Path, done: Mapping[str, Any] | None, fp: str, grow: Split | None, grown: Any
) -> str | None:
    """:func:`run_stage`'s decision on a folder whose manifest is ``done``, for fingerprint ``fp`` and
    growth record ``grown`` (see :func:`takes_over`)."""
    if done is None:
        return None
    if done.get("fingerprint") == fp:
        return "skip" if outputs_intact(folder, done) else None
    if grown is None or (folder / PENDING).is_file() or not _grows_from(_growth_record(name, done, grow), grown):
        return None
    return "extend" if outputs_intact(folder, done) else None


def _growth(name: str, split: Split, config: Mapping[str, Any], hashes: Mapping[str, str]) -> dict[str, Any]:
    """The growth record of a config identity: the fingerprint of its key (with the inputs) and its sizes."""
    key, sizes = split(config)
    return {"key": stage_fingerprint(name, key, hashes), "sizes": dict(sizes)}


def _growth_record(name: str, done: Mapping[str, Any], grow: Split | None) -> Any:
    """A finished manifest's ``grow`` record; for one written before its stage declared growable settings,
    derived from its recorded config and input hashes with ``grow`` (``None`` when it cannot be).

    A derived record is only trusted when the recorded config and hashes give the manifest's own
    fingerprint again under the current code: a manifest written by another version of the stage (or
    whose config was masked) is not extended, it is redone.
    """
    if "grow" in done or grow is None:
        return done.get("grow")
    try:
        hashes = {k: v["sha256"] for k, v in done["inputs"].items()}
        if stage_fingerprint(name, done["config"], hashes) != done.get("fingerprint"):
            return None
        return _growth(name, grow, done["config"], hashes)
    except (KeyError, TypeError, AttributeError):
        return None


def _grows_from(old: Any, new: Mapping[str, Any]) -> bool:
    """Whether a finished stage recorded with growth record ``old`` can be extended to ``new``: same key,
    the same growable settings, none smaller."""
    if not isinstance(old, dict) or old.get("key") != new["key"] or not isinstance(old.get("sizes"), dict):
        return False
    sizes = old["sizes"]
    try:
        return set(sizes) == set(new["sizes"]) and all(new["sizes"][k] >= sizes[k] for k in sizes)
    except TypeError:
        return False


def _pending_fingerprint(pending: Path) -> str | None:
    """The fingerprint an interrupted run recorded, or ``None`` when ``pending.json`` is unreadable."""
    import json

    try:
        data = json.loads(pending.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data.get("fingerprint") if isinstance(data, dict) else None
