"""Reranker training: any registered model family (:mod:`inpars.families`: a cross-encoder, a monoT5-style
seq2seq model or a bi-encoder), trained on the TrainingExample JSONL written by the negatives stage, with
the transformers Trainer (so accelerate handles devices, several GPUs and bf16). The family builds the
model, data, collator and loss (``Family.build``), completes the saved folder (``Family.finalize``) and
writes the usage part of the model card (``Family.usage``).

>>> from inpars.training import train_reranker                            # doctest: +SKIP
>>> s = train_reranker("runs/x/negatives/train.jsonl", "runs/x/train",
...                    model="minilm-l6", loss="bce", max_steps=200)       # doctest: +SKIP
>>> s.model_path                                                           # doctest: +SKIP
'runs/x/train/model'
>>> from sentence_transformers import CrossEncoder                         # doctest: +SKIP
>>> CrossEncoder(s.model_path).predict([("query", "document")])            # doctest: +SKIP

What it guarantees:

- **Resumable.** A checkpoint (model, optimiser, scheduler, RNG states, data position) is saved every
  ``save_steps`` optimiser steps under ``out_dir/checkpoints`` (the last two are kept); a marker file is
  written once a checkpoint is complete. Running again with ``resume=True`` continues from the newest
  complete checkpoint (incomplete ones, from a kill during saving, are removed), and a run whose
  ``train_summary.json`` matches the same inputs returns at once (the run is identified by
  ``versioned("train", ...)`` of the config's identity (runtime-only fields such as ``save_steps`` left
  out), the seed and the data's hash, kept in ``train_run.json``). Checkpoints of a run with other
  options or other data are refused (:class:`~inpars.errors.ConfigError`) rather than silently mixed.
- **Deterministic on CPU.** ``seed`` seeds the classifier-head initialisation, dropout and data order
  (``data_seed``); the same inputs, seed and thread count give the same losses and weights, and a
  resumed run gives the same weights as an uninterrupted one (the RNG states travel in the checkpoint).
- **Several GPUs.** Launch the CLI with ``torchrun --nproc_per_node N $(which inpars) train ...`` or
  ``accelerate launch``; ``batch_size`` is per device. ``bf16=True`` trains in bfloat16 mixed precision.
- **Outputs** (see :mod:`inpars.training.common`): ``out_dir/model`` (model, tokenizer whose
  ``model_max_length`` is the training ``max_length``, model card README.md), ``train_summary.json``,
  ``loss_curve.json`` and ``loss_curve.png``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inpars.config import TrainConfig, section_params
from inpars.errors import ConfigError
from inpars.fingerprint import file_hash, item_seed, versioned
from inpars.fingerprint import identity as config_identity
from inpars.io import write_json
from inpars.training.common import (
    CHECKPOINT_SUBDIR,
    RUN_FILE,
    SUMMARY_FILE,
    Reordered,
    TrainSummary,
    average_with_start,
    checkpoint_finished,
    final_loss,
    last_complete_checkpoint,
    load_training_examples,
    loss_curve_from_history,
    make_callbacks,
    make_trainer,
    no_duplicate_order,
    replace_dir,
    saved_model_path,
    show_progress_bar,
    trainer_state_step,
    write_loss_curve,
    write_model_card,
)
from inpars.training.monot5 import MONOT5_TEMPLATE, load_monot5, monot5_scores

log = logging.getLogger(__name__)

__all__ = [
    "MONOT5_TEMPLATE",
    "TrainSummary",
    "load_monot5",
    "load_training_examples",
    "monot5_scores",
    "saved_model_path",
    "train_reranker",
]


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _checked_params(params: TrainConfig | None, fields: dict[str, Any]) -> TrainConfig:
    """The settings of a run (:func:`~inpars.config.section_params`), with a loss their family trains with."""
    cfg = section_params(TrainConfig, params, fields, "train_reranker")
    from inpars.scoring.family import get_family

    get_family(cfg.model_type).check_loss(cfg.loss)
    return cfg


#: per loss: whether each training example needs its negatives (a group, not a pair)
_NEEDS_NEGATIVES = {"bce": False, "listwise": True, "margin-mse": True}
#: the (model type, loss) pairs whose loss reads the other examples of a batch as negatives
_IN_BATCH_NEGATIVES = frozenset({("bi-encoder", "listwise")})


def _no_duplicates(cfg: TrainConfig, dataset: Any, seed: int) -> Any:
    """``dataset`` read in an order packed so that no batch holds a text twice, a new packing each epoch."""
    if (cfg.model_type, cfg.loss) not in _IN_BATCH_NEGATIVES:
        log.warning("batches 'no-duplicates' matters for in-batch negatives (a bi-encoder's listwise loss); "
                    "with %s and loss %s it only reorders the data", cfg.model_type, cfg.loss)
    items = [dataset[i] for i in range(len(dataset))]
    return Reordered(dataset, lambda epoch: no_duplicate_order(
        items, cfg.batch_size, seed if epoch == 0 else item_seed(seed, "batches", epoch)))


#: per ``batches``: how the training data is reordered before the Trainer reads it in order (None: the
#: Trainer shuffles it)
_BATCH_ORDERS: dict[str, Callable[[TrainConfig, Any, int], Any] | None] = {
    "random": None, "no-duplicates": _no_duplicates,
}


def _training_arguments(cfg: TrainConfig, ckpt_dir: Path, seed: int) -> Any:
    import torch
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    try:
        return TrainingArguments(
            output_dir=str(ckpt_dir),
            per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            learning_rate=cfg.learning_rate,
            weight_decay=cfg.weight_decay,
            lr_scheduler_type="linear",
            warmup_steps=cfg.warmup_steps,
            num_train_epochs=cfg.epochs,
            max_steps=cfg.max_steps or -1,
            logging_strategy="steps",
            logging_steps=1,
            save_strategy="steps",
            save_steps=cfg.save_steps,
            save_total_limit=2,
            seed=seed,
            data_seed=seed,
            bf16=cfg.bf16,
            report_to="none",
            disable_tqdm=not show_progress_bar(),
            dataloader_num_workers=0,
            dataloader_pin_memory=cuda,
            # transformers refuses bf16 without a GPU unless told to train on the CPU; several CPU processes
            # (torchrun/accelerate launch) train with DDP over gloo only when use_cpu is set
            use_cpu=not cuda and (cfg.bf16 or int(os.environ.get("WORLD_SIZE", "1")) > 1),
            remove_unused_columns=False,
            # a reordered dataset (batches 'no-duplicates') is read in its order: batches are its consecutive chunks
            train_sampling_strategy="random" if _BATCH_ORDERS[cfg.batches] is None else "sequential",
        )
    except ValueError as exc:  # transformers refuses a combination (e.g. bf16 on an unsupported device)
        raise ConfigError(f"invalid training options: {exc}") from None


@dataclass
class _Run:
    """What identifies a training run: ``identity`` (the config's, the seed and the data's hash) and its
    ``fingerprint``; ``run_identity``/``run_fingerprint`` leave out the settings applied after the last step
    (what the checkpoints depend on)."""

    data_sha: str
    identity: dict[str, Any]
    fingerprint: str
    run_identity: dict[str, Any]
    run_fingerprint: str

    @classmethod
    def of(cls, cfg: TrainConfig, train: Path, seed: int) -> _Run:
        data_sha = file_hash(train)
        identity = config_identity(cfg) | {"seed": seed, "train_sha256": data_sha}
        run_identity = {k: v for k, v in identity.items() if k not in type(cfg).AFTER_TRAINING}
        return cls(data_sha, identity, versioned("train", identity), run_identity, versioned("train", run_identity))


def _finished(out: Path, run: _Run) -> TrainSummary | None:
    """The summary of this very run when ``out`` holds its saved model already."""
    summary_path = out / SUMMARY_FILE
    if summary_path.is_file() and saved_model_path(out).is_dir():
        prior = json.loads(summary_path.read_text(encoding="utf-8"))
        if prior.get("fingerprint") == run.fingerprint:
            log.info("%s already holds this training run's model; nothing to do", out)
            return TrainSummary.from_json(prior)
    return None


def _last_checkpoint(out: Path, train: Path, run: _Run, resume: bool) -> Path | None:
    """The complete checkpoint to resume from (None: start over; ``resume=False`` removes them all), after
    refusing checkpoints of another run; records this run in ``out/train_run.json``."""
    ckpt_dir = out / CHECKPOINT_SUBDIR
    run_file = out / RUN_FILE
    main = _is_main_process()
    if not resume and main:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    last = last_complete_checkpoint(ckpt_dir, clean=main) if resume else None
    if last is not None:
        prior_run = json.loads(run_file.read_text(encoding="utf-8")) if run_file.is_file() else {}
        if prior_run.get("fingerprint") != run.run_fingerprint:
            before = prior_run.get("identity", {})
            changed = sorted(k for k in run.run_identity if before.get(k) != run.run_identity[k]) or ["unknown"]
            raise ConfigError(
                f"{ckpt_dir} holds checkpoints of a different training run (differs in: {', '.join(changed)}); "
                "use another output folder, or resume=False (--no-resume) to start over"
            )
    if main:
        write_json(run_file, {"fingerprint": run.run_fingerprint, "identity": run.run_identity, "train": str(train)})
    return last


def _build(cfg: TrainConfig, examples: list[Any], seed: int, threads: int | None) -> tuple[str, Any, Any]:
    """The start checkpoint's resolved path, the family and its training parts (model, tokenizer, dataset
    (reordered as ``batches`` asks), collator, loss)."""
    import torch
    from transformers import set_seed

    from inpars.models import resolve_model

    if threads:
        torch.set_num_threads(threads)
    base = resolve_model(cfg.model)
    set_seed(seed)  # the new classification head is initialised while loading
    from inpars.scoring.family import get_family

    family = get_family(cfg.model_type)
    parts = family.build(base, examples, loss=cfg.loss, max_length=cfg.max_length)
    parts.tokenizer.model_max_length = cfg.max_length
    log.info(
        "training %s (%s loss) from %s on %d examples (%d instances), %s",
        cfg.model_type, cfg.loss, cfg.model, len(examples), len(parts.dataset),
        f"{cfg.max_steps} steps" if cfg.max_steps else f"{cfg.epochs} epochs",
    )
    reorder = _BATCH_ORDERS[cfg.batches]
    if reorder is not None:
        parts.dataset = reorder(cfg, parts.dataset, seed)
    return base, family, parts


def _fit(trainer: Any, last: Path | None) -> tuple[int, float]:
    """Train (from ``last`` when resuming); returns the step resumed from and this run's seconds."""
    start_step = trainer_state_step(last) if last is not None else 0
    if last is not None:
        log.info("resuming from %s (step %d)", last, start_step)
    t0 = time.perf_counter()
    if last is not None and checkpoint_finished(last):
        # the run's last step is done (only average_start changed): resuming would take a step more
        from transformers import TrainerState

        trainer._load_from_checkpoint(str(last))
        trainer.state = TrainerState.load_from_json(str(last / "trainer_state.json"))
        log.info("%s is the finished run's last step; no training step is left", last)
    else:
        trainer.train(resume_from_checkpoint=str(last) if last is not None else None)
    return start_step, time.perf_counter() - t0


def _save_model(trainer: Any, cfg: TrainConfig, base: str, family_tokenizer: tuple[Any, Any], tmp: Path) -> None:
    """Save the trained model, averaged with the start checkpoint ``base`` as ``average_start`` asks, into
    ``tmp`` (the main process completes the folder as its family does)."""
    if cfg.average_start > 0:
        n = average_with_start(trainer.model, base, cfg.average_start)
        log.info("averaged %d weight tensors with the start checkpoint (share %g)", n, cfg.average_start)
    family, tokenizer = family_tokenizer
    if _is_main_process():
        shutil.rmtree(tmp, ignore_errors=True)
    # a fast tokenizer saves the truncation and padding of its last call (the collator's last batch, or
    # none when a finished run is only re-saved): cleared, so the saved tokenizer.json is the same either way
    backend_tokenizer = getattr(tokenizer, "backend_tokenizer", None)
    if backend_tokenizer is not None:
        backend_tokenizer.no_truncation()
        backend_tokenizer.no_padding()
    trainer.save_model(str(tmp))
    if _is_main_process():
        family.finalize(tmp, cfg.max_length)  # a family may complete the saved folder (bi-encoder)


def _publish(out: Path, tmp: Path, summary: TrainSummary, card: dict[str, Any], curve: list[dict[str, Any]],
             run: _Run, config: dict[str, Any], seed: int) -> None:
    """Move the saved model into place with its card; write the loss curve and the summary (main process)."""
    model_dir = saved_model_path(out)
    write_model_card(tmp, card, shown_path=model_dir)
    (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle; the card and summary hold the options
    replace_dir(tmp, model_dir)
    write_loss_curve(out, curve)
    write_json(out / SUMMARY_FILE, {**summary.to_json(), "fingerprint": run.fingerprint, "config": config, "seed": seed})


def train_reranker(
    train: str | Path,
    out_dir: str | Path,
    params: TrainConfig | None = None,
    *,
    seed: int = 1,
    resume: bool = True,
    threads: int | None = None,
    **fields: Any,
) -> TrainSummary:
    """Train a reranker on TrainingExample JSONL and save it under ``out_dir/model``.

    ``params`` is a :class:`~inpars.config.TrainConfig`; or give its fields as keywords instead, validated by
    that model with its defaults (:func:`~inpars.config.section_params`: an unknown keyword is a TypeError, a
    bad value a :class:`~inpars.errors.ConfigError`). ``threads`` sets ``torch.set_num_threads`` (None leaves
    torch's default). The fields:

    - ``model_type``: ``cross-encoder`` (sequence classifier, one logit), ``monot5`` (seq2seq,
      ``true``/``false`` targets; see :mod:`inpars.training.monot5`) or ``bi-encoder`` (mean-pooled
      embeddings, in-batch-negatives loss, saved as a sentence-transformers model; see
      :mod:`inpars.training.bi_encoder`).
    - ``model``: a packaged short name (``minilm-l6``), a local folder or a hub id
      (:func:`inpars.models.resolve_model`).
    - ``loss``: ``bce`` (pointwise; ``batch_size`` pairs) or ``listwise`` (softmax cross-entropy over
      each (positive, negatives) group; ``batch_size`` groups); monoT5 trains pointwise only.
    - ``max_steps`` optimiser steps, or ``epochs`` passes over the data when it is None; linear
      learning-rate decay after ``warmup_steps`` of linear warm-up; AdamW with ``weight_decay``.
    - ``average_start``: the saved weights are ``(1 - w) * trained + w * start`` for ``w = average_start``
      (WiSE-FT; see :func:`~inpars.training.common.average_with_start`); 0 saves the trained weights. It
      changes nothing in training itself, so checkpoints of a run that differs only in it are resumed (a
      finished run's last checkpoint gives the new average without a training step).
    - ``batches``: ``no-duplicates`` orders the instances so that no batch holds a text twice
      (:func:`~inpars.training.common.no_duplicate_order`, seeded by ``seed`` in the first epoch and by
      ``item_seed(seed, "batches", epoch)`` in each later one: a new packing every epoch, as
      sentence-transformers' sampler reshuffles), for the bi-encoder's in-batch negatives; ``random`` lets
      the Trainer shuffle.

    ``resume``: continue from the newest complete checkpoint in ``out_dir/checkpoints``; False deletes the
    checkpoints and starts over. Raises :class:`~inpars.errors.InputError` on a malformed input file (file,
    line, field) and :class:`~inpars.errors.ConfigError` on invalid options.
    """
    cfg = _checked_params(params, fields)
    train, out = Path(train), Path(out_dir)
    examples = load_training_examples(train, need_negatives=_NEEDS_NEGATIVES[cfg.loss])
    run = _Run.of(cfg, train, seed)
    finished = _finished(out, run) if resume else None
    if finished is not None:
        return finished
    last = _last_checkpoint(out, train, run, resume)
    base, family, parts = _build(cfg, examples, seed, threads)
    args = _training_arguments(cfg, out / CHECKPOINT_SUBDIR, seed)
    trainer = make_trainer(parts.loss_fn, model=parts.model, args=args, train_dataset=parts.dataset,
                           data_collator=parts.collator, processing_class=parts.tokenizer, callbacks=make_callbacks())
    start_step, seconds = _fit(trainer, last)
    steps = int(trainer.state.global_step)
    tmp = out / ".model.tmp"
    _save_model(trainer, cfg, base, (family, parts.tokenizer), tmp)
    curve = loss_curve_from_history(trainer.state.log_history)
    # Full batches assumed (a short last batch of an epoch is counted as full).
    instances_done = (steps - start_step) * cfg.batch_size * cfg.gradient_accumulation_steps * args.world_size
    eps = instances_done / seconds if seconds > 0 else 0.0
    summary = TrainSummary(
        steps=steps, examples=len(examples), final_loss=final_loss(curve), seconds=round(seconds, 3),
        examples_per_second=round(eps, 3), model_path=str(saved_model_path(out)), model_type=cfg.model_type,
        loss=cfg.loss, instances=len(parts.dataset), pairs_per_second=round(eps * parts.pairs_per_instance, 3),
        resumed_from_step=start_step, loss_curve=str(out / "loss_curve.json"),
    )
    if _is_main_process():
        config = cfg.model_dump()
        card = {"config": config, "base_model": cfg.model if cfg.model == base else f"{cfg.model} ({base})",
                "train_path": str(train), "train_sha256": run.data_sha, "examples": len(examples),
                "instances": len(parts.dataset), "steps": steps, "final_loss": summary.final_loss, "seed": seed,
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        _publish(out, tmp, summary, card, curve, run, config, seed)
    log.info(
        "trained %d steps (%d in this run) in %.1f s, %.2f instances/s, final loss %.4f -> %s",
        steps, steps - start_step, seconds, eps, summary.final_loss, saved_model_path(out),
    )
    return summary
