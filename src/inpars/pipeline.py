"""``inpars run CONFIG.yaml``: retrieve -> generate -> filter -> negatives -> train -> rerank -> evaluate
-> report, from one config, walking the stage table of :mod:`inpars.stages`.

Each stage writes into ``<run_dir>/<NN-stage>/`` with a manifest (see :mod:`inpars.manifest`). A stage
whose config identity and inputs are unchanged is skipped; ``from_stage`` and ``force`` redo work; a run
killed at any point resumes where it stopped.

Leakage: only the ``evaluate`` stage enters :func:`inpars.datasets.evaluation_access`; every other stage
that asked for test judgements would get :class:`~inpars.errors.LeakageError`.

>>> from inpars.config import load_config              # doctest: +SKIP
>>> result = run_pipeline(load_config("examples/demo.yaml"))   # doctest: +SKIP
>>> print(result.table)                                 # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars.config import PipelineConfig
from inpars.datasets import Dataset, load_dataset
from inpars.errors import ConfigError
from inpars.families import resolve_training
from inpars.fingerprint import dataset_fingerprint
from inpars.fusion import sample_ids
from inpars.generation.base import check_backend
from inpars.io import exclusive, write_json
from inpars.layout import STAGES, stage_dir
from inpars.manifest import StageResult, run_stage, takes_over
from inpars.report import build_report
from inpars.safety import mask_obj
from inpars.stages import TABLE, Context, Stage, label_splits

log = logging.getLogger(__name__)

__all__ = ["STAGES", "PipelineResult", "reusable_stages", "run_pipeline", "stage_dir"]


@dataclass
class PipelineResult:
    run_dir: Path
    stages: dict[str, StageResult] = field(default_factory=dict)
    #: stages that did not run, and why (evaluate on a collection without judgements)
    skipped: dict[str, str] = field(default_factory=dict)
    table: str = ""
    seconds: float = 0.0


def _check_stage(name: str | None, flag: str) -> None:
    if name is not None and name not in STAGES:
        raise ConfigError(f"{flag}: unknown stage '{name}'; stages: {', '.join(STAGES)}")


def validate(cfg: PipelineConfig) -> None:
    """Check what the stages will need before the first one starts, so that a typo never costs an hour
    of generation: the models (``train.model``, ``rerank.model``, the dense ``negatives.model``, filter
    steps' ``model``), the generation backend, its options and model, the template file, the threads and
    the run folder. Raises :class:`~inpars.errors.ConfigError` naming the key path."""
    from inpars.safety import check_model, check_output_dir, check_threads

    check_threads(cfg.threads, "threads")
    check_output_dir(cfg.run_dir, [], cfg.dataset.name, flag="run_dir")
    g = cfg.generate
    check_backend(g.backend, g.model, g.backend_options)
    if g.template and not Path(g.template).expanduser().is_file():
        raise ConfigError(f"generate.template: {g.template} is not a file")
    for i, step in enumerate(cfg.filter.steps):
        for model in (step.model, step.options.get("model")):
            if isinstance(model, str):
                check_model(model, f"filter.steps.{i}.model ({step.name})")
    n = cfg.negatives
    if n.method == "dense" or getattr(n, "teacher", "none") != "none":
        check_model(n.model, "negatives.model")
    check_model(cfg.train.model, "train.model")
    check_model(cfg.rerank.model, "rerank.model")


def eval_split(cfg: PipelineConfig, ds: Dataset) -> str | None:
    """The judged split a run evaluates: ``dataset.eval_split`` (which must exist), else ``test`` when the
    dataset judges it, else None (a collection without judgements: nothing is evaluated)."""
    split = cfg.dataset.eval_split
    if split is not None:
        if not ds.has_split(split):
            raise ConfigError(f"dataset.eval_split: {ds.name} has no judgements for split '{split}' "
                              f"(no qrels/{split}.tsv; splits: {', '.join(ds.splits()) or 'none'}); leave "
                              "eval_split unset to run without evaluation")
        return split
    return "test" if ds.has_split("test") else None


def _resolved(cfg: PipelineConfig) -> PipelineConfig:
    """``cfg`` with what it leaves to the inputs filled in: ``train.model_type`` and ``train.loss`` from the
    start checkpoint when the config does not set them (:func:`inpars.families.resolve_training`)."""
    if cfg.rerank.model is not None or {"model_type", "loss"} <= cfg.train.model_fields_set:
        return cfg

    cfg = cfg.model_copy(deep=True)
    resolve_training(cfg.train)
    return cfg


def _context(cfg: PipelineConfig, ds: Dataset) -> Context:
    split = eval_split(cfg, ds)
    eval_ids = ds.query_ids(split) if split is not None else list(ds.queries())
    if cfg.dataset.max_eval_queries:
        eval_ids = eval_ids[: cfg.dataset.max_eval_queries]
    tune_ids: list[str] = []
    if cfg.rerank.interpolate and cfg.rerank.tune_split:
        ids = ds.query_ids(cfg.rerank.tune_split)
        tune_ids = sample_ids(ids, cfg.rerank.tune_queries, cfg.seed)
    return Context(cfg, ds, Path(cfg.run_dir), eval_ids, tune_ids, eval_split=split)


def run_pipeline(
    cfg: PipelineConfig,
    *,
    from_stage: str | None = None,
    force: bool = False,
    until: str | None = None,
    progress: Callable[[str, StageResult | str], None] | None = None,
) -> PipelineResult:
    """Run (or resume) the whole pipeline described by ``cfg``; returns per-stage results.

    ``progress(stage, result)`` is called after each stage (``result`` a string: the stage does not run
    here, and why; also in ``PipelineResult.skipped``). A collection without judgements runs every stage but
    ``evaluate``; its product is the ranker in ``07-rerank/ranker.json`` (:class:`inpars.ranker.Ranker`)."""
    _check_stage(from_stage, "--from")
    _check_stage(until, "--until")
    if from_stage and until and STAGES.index(from_stage) > STAGES.index(until):
        raise ConfigError(f"--from {from_stage} comes after --until {until}: nothing would run")
    t0 = time.perf_counter()
    validate(cfg)
    cfg = _resolved(cfg)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    ds = load_dataset(cfg.dataset.name)
    for split in label_splits(cfg):
        if not ds.has_split(split):
            raise ConfigError(f"the config names split '{split}' for its judgements, but {ds.name} has no "
                              f"qrels/{split}.tsv; leave it unset to run label-free")
    ctx = _context(cfg, ds)
    # The run's config is written only once the dataset is known to load: a failed start leaves an
    # existing run folder as it was.
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    # one writer per run folder: a second 'inpars run' on it gets one line, not every record twice
    with exclusive(ctx.run_dir / "run", f"the run folder {ctx.run_dir}"):
        recorded = cfg.model_dump(mode="json")
        recorded["dataset"]["eval_split"] = ctx.eval_split  # as resolved: 'test' where judged, else None
        write_json(ctx.run_dir / "config.json", mask_obj({**recorded, "label_splits": ctx.label_splits}))
        ds_hash = dataset_fingerprint(ds, splits=ctx.label_splits)
        redo = set(STAGES[STAGES.index(from_stage):]) if from_stage else set()
        result = PipelineResult(ctx.run_dir)
        for stage in TABLE:
            if not stage.enabled(ctx):
                note = stage.skipped(ctx)
                if note:
                    result.skipped[stage.name] = note
                    if progress:
                        progress(stage.name, note)
                continue
            res = run_stage(
                **_stage_call(stage, ctx, ds_hash),
                fn=lambda folder, stage=stage: stage.call(ctx, folder),  # type: ignore[misc]
                seed=cfg.seed, force=force or stage.name in redo,
            )
            result.stages[stage.name] = ctx.results[stage.name] = res
            if progress:
                progress(stage.name, res)
            if stage.name == "evaluate":
                result.table = ctx.out("evaluate", "text").read_text(encoding="utf-8")
            if stage.name == until:
                break
        else:
            build_report(ctx.run_dir)
    result.seconds = time.perf_counter() - t0
    return result


def _stage_call(stage: Stage, ctx: Context, ds_hash: str) -> dict[str, Any]:
    """The arguments :func:`~inpars.manifest.run_stage` (and :func:`~inpars.manifest.takes_over`) take for
    ``stage`` of run ``ctx``, but its function: name, folder, config identity, inputs, growth rule."""
    return {
        "name": stage.name, "folder": stage_dir(ctx.run_dir, stage.name), "config": stage.config_identity(ctx),
        "inputs": stage.input_paths(ctx), "extra_hashes": {"dataset": ds_hash}, "grow": stage.grow(ctx),
    }


def reusable_stages(cfg: PipelineConfig, source: str | Path, ds: Dataset | None = None) -> list[str]:
    """The stages whose finished outputs in run folder ``source`` a run of ``cfg`` would take as its own,
    were they copied into ``cfg.run_dir``: up to date under ``cfg``, or (a stage that grows or reuses) to be
    extended from them. The stages are taken in order, disabled ones passed over, up to the first that is not
    up to date (its successors read its outputs): an extended stage is the last one named. The inputs are
    hashed where they lie (in ``source``, or outside it: a local model), as the run would hash their
    copies; :func:`run_pipeline`'s own fingerprints stay the judge. ``ds``: ``cfg``'s dataset, loaded
    when not given.
    """
    ds = ds if ds is not None else load_dataset(cfg.dataset.name)
    cfg = _resolved(cfg)
    ctx = _context(cfg.model_copy(update={"run_dir": str(source)}), ds)
    ds_hash = dataset_fingerprint(ds, splits=ctx.label_splits)
    out: list[str] = []
    for stage in TABLE:
        if not stage.enabled(ctx):
            continue
        call = _stage_call(stage, ctx, ds_hash)
        if not all(p.exists() for p in call["inputs"].values()):
            break
        how = takes_over(**call)
        if how is not None:
            out.append(stage.name)
        if how != "skip":
            break  # a stage redone or extended writes outputs its successors' copies were not made from
    return out
