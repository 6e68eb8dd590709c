"""The generation sidecar ``<out>.meta.json``: the arguments a generation file was made with.

A file is resumed or extended only with the same arguments. The record is built with
:func:`inpars.fingerprint.identity` of the stage's :class:`~inpars.config.GenerateConfig`, so runtime-only
settings (``batch_size``, and the backend options in :data:`~inpars.fingerprint.RUNTIME_OPTIONS` such as
``n_threads``) never refuse a resume; ``n_docs`` may grow (the file is extended); the code version of the
generation stage (``VERSIONS["generate"]``) is part of the record.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from inpars.errors import ConfigError, InputError
from inpars.fingerprint import RUNTIME_OPTIONS, VERSIONS, fingerprint, identity
from inpars.io import sha256_file, write_json
from inpars.safety import mask_obj

log = logging.getLogger(__name__)

META_VERSION = VERSIONS["generate-meta"]


def meta_path(out: str | Path) -> Path:
    """The sidecar holding the arguments a generation file was made with: ``<out>.meta.json``."""
    out = Path(out)
    return out.with_name(out.name + ".meta.json")


def params_record(
    config: Any, *, dataset: str, population_hash: str, seed: int, train_split: str | None
) -> dict[str, Any]:
    """The arguments that decide a file's content: the config's identity without ``n_docs``, and the rest.

    ``config`` is a :class:`~inpars.config.GenerateConfig`; a template file is recorded by its content
    (``template_sha256``), not its path.
    """
    params: dict[str, Any] = dict(identity(config))
    params.pop("n_docs", None)
    template = params.pop("template", None)
    params["template_sha256"] = sha256_file(template) if template else None
    params.update(
        {
            "dataset": dataset,
            "population_sha256": population_hash,
            "seed": seed,
            "train_split": train_split,
            "code_version": VERSIONS["generate"],
        }
    )

    return dict(mask_obj(params))  # credentials in a server URL never reach the sidecar


def check_meta(out: Path, params: dict[str, Any], n_docs: int, overwrite: bool) -> None:
    """Refuse to resume a file made with other arguments; then (re)write the sidecar atomically.

    ``overwrite`` removes an existing ``out``. A file without a sidecar is refused (its arguments are
    unknown); a sidecar that cannot be read is an :class:`~inpars.errors.InputError`.
    """
    mpath = meta_path(out)
    has_records = out.is_file() and out.stat().st_size > 0
    if overwrite:
        if out.exists():
            log.info("overwrite: removing %s", out)
            out.unlink()
        has_records = False
    elif has_records:
        if not mpath.is_file():
            raise ConfigError(
                f"{out} exists but has no {mpath.name}, so its arguments are unknown; "
                "choose another output or pass overwrite=True (--overwrite)"
            )
        try:
            old = json.loads(mpath.read_text(encoding="utf-8"))
            old_params = old["params"]
            old_n_docs = int(old["n_docs"])
            if not isinstance(old_params, dict):
                raise TypeError("params is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"unreadable generation metadata ({exc})", path=mpath) from None
        old_params = _comparable(old_params)
        if fingerprint(old_params) != fingerprint(params):
            diffs = [
                f"{k}: {old_params.get(k)!r} in the file, {params.get(k)!r} now"
                for k in sorted(set(old_params) | set(params))
                if old_params.get(k) != params.get(k)
            ]
            raise ConfigError(
                f"{out} was generated with different arguments ({'; '.join(diffs)}); "
                "use another output file or pass overwrite=True (--overwrite) to start again"
            )
        if n_docs < old_n_docs:
            raise ConfigError(
                f"{out} holds generations for n_docs={old_n_docs}; asked for n_docs={n_docs}. "
                "Use n_docs >= the file's, another output file, or overwrite=True (--overwrite)"
            )
        n_docs = max(n_docs, old_n_docs)
    write_json(
        mpath,
        {"version": META_VERSION, "params_hash": fingerprint(params), "params": params, "n_docs": n_docs},
    )


def _comparable(old: dict[str, Any]) -> dict[str, Any]:
    """A recorded params dict as it would be recorded now: drop runtime keys a sidecar may still hold."""
    out = {k: v for k, v in old.items() if k != "batch_size"}
    if isinstance(out.get("backend_options"), dict):
        out["backend_options"] = {k: v for k, v in out["backend_options"].items() if k not in RUNTIME_OPTIONS}
    return out
