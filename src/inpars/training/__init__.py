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
from pathlib import Path
from typing import Any

from inpars.errors import ConfigError
from inpars.training.common import (
    CHECKPOINT_SUBDIR,
    RUN_FILE,
    SUMMARY_FILE,
    TrainSummary,
    checkpoint_finished,
    final_loss,
    last_complete_checkpoint,
    load_training_examples,
    loss_curve_from_history,
    make_callbacks,
    make_trainer,
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


def _validated_config(values: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from inpars.config import TrainConfig

    try:
        cfg = TrainConfig(**values)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid training options:\n" + "\n".join(lines)) from None
    from inpars.scoring.family import get_family

    get_family(cfg.model_type).check_loss(cfg.loss)
    return cfg


def _training_arguments(cfg: Any, ckpt_dir: Path, seed: int) -> Any:
    import torch
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
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
        # no-duplicates batches are consecutive chunks of the packed order (see train_reranker)
        train_sampling_strategy="sequential" if cfg.batches == "no-duplicates" else "random",
    )


def train_reranker(
    train: str | Path,
    out_dir: str | Path,
    *,
    seed: int = 1,
    resume: bool = True,
    threads: int | None = None,
    **options: Any,
) -> TrainSummary:
    """Train a reranker on TrainingExample JSONL and save it under ``out_dir/model``.

    ``options`` are fields of :class:`~inpars.config.TrainConfig` (its defaults for the others; an unknown
    name is a :class:`~inpars.errors.ConfigError`); ``threads`` sets ``torch.set_num_threads`` (None leaves
    torch's default).

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
    - ``resume``: continue from the newest complete checkpoint in ``out_dir/checkpoints``; False deletes
      the checkpoints and starts over.

    Raises :class:`~inpars.errors.InputError` on a malformed input file (file, line, field) and
    :class:`~inpars.errors.ConfigError` on invalid options.
    """
    cfg = _validated_config(options)
    train = Path(train)
    out = Path(out_dir)
    examples = load_training_examples(train, need_negatives=cfg.loss in ("listwise", "margin-mse"))

    from inpars.fingerprint import file_hash, versioned
    from inpars.fingerprint import identity as config_identity
    from inpars.io import write_json

    config = cfg.model_dump()
    data_sha = file_hash(train)
    identity = config_identity(cfg) | {"seed": seed, "train_sha256": data_sha}
    fingerprint = versioned("train", identity)
    # what the checkpoints depend on: settings applied after the last step are left out
    run_identity = {k: v for k, v in identity.items() if k not in type(cfg).AFTER_TRAINING}
    run_fingerprint = versioned("train", run_identity)
    model_dir = saved_model_path(out)
    summary_path = out / SUMMARY_FILE
    if resume and summary_path.is_file() and model_dir.is_dir():
        prior = json.loads(summary_path.read_text(encoding="utf-8"))
        if prior.get("fingerprint") == fingerprint:
            log.info("%s already holds this training run's model; nothing to do", out)
            return TrainSummary.from_json(prior)

    ckpt_dir = out / CHECKPOINT_SUBDIR
    run_file = out / RUN_FILE
    main = _is_main_process()
    if not resume and main:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    last = last_complete_checkpoint(ckpt_dir, clean=main) if resume else None
    if last is not None:
        prior_run = json.loads(run_file.read_text(encoding="utf-8")) if run_file.is_file() else {}
        if prior_run.get("fingerprint") != run_fingerprint:
            before = prior_run.get("identity", {})
            changed = sorted(k for k in run_identity if before.get(k) != run_identity[k]) or ["unknown"]
            raise ConfigError(
                f"{ckpt_dir} holds checkpoints of a different training run (differs in: {', '.join(changed)}); "
                "use another output folder, or resume=False (--no-resume) to start over"
            )
    if main:
        write_json(run_file, {"fingerprint": run_fingerprint, "identity": run_identity, "train": str(train)})

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

    if cfg.batches == "no-duplicates":
        from inpars.fingerprint import item_seed
        from inpars.training.common import Reordered, no_duplicate_order

        if (cfg.model_type, cfg.loss) != ("bi-encoder", "listwise"):
            log.warning("batches 'no-duplicates' matters for in-batch negatives (a bi-encoder's listwise loss); "
                        "with %s and loss %s it only reorders the data", cfg.model_type, cfg.loss)

        items = [parts.dataset[i] for i in range(len(parts.dataset))]
        parts.dataset = Reordered(parts.dataset, lambda epoch: no_duplicate_order(
            items, cfg.batch_size, seed if epoch == 0 else item_seed(seed, "batches", epoch)))
    try:
        args = _training_arguments(cfg, ckpt_dir, seed)
    except ValueError as exc:  # transformers refuses a combination (e.g. bf16 on an unsupported device)
        raise ConfigError(f"invalid training options: {exc}") from None
    trainer = make_trainer(
        parts.loss_fn,
        model=parts.model,
        args=args,
        train_dataset=parts.dataset,
        data_collator=parts.collator,
        processing_class=parts.tokenizer,
        callbacks=make_callbacks(),
    )
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
    seconds = time.perf_counter() - t0
    steps = int(trainer.state.global_step)
    if cfg.average_start > 0:
        from inpars.training.common import average_with_start

        n = average_with_start(trainer.model, base, cfg.average_start)
        log.info("averaged %d weight tensors with the start checkpoint (share %g)", n, cfg.average_start)

    tmp = out / ".model.tmp"
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    # a fast tokenizer saves the truncation and padding of its last call (the collator's last batch, or
    # none when a finished run is only re-saved): cleared, so the saved tokenizer.json is the same either way
    backend_tokenizer = getattr(parts.tokenizer, "backend_tokenizer", None)
    if backend_tokenizer is not None:
        backend_tokenizer.no_truncation()
        backend_tokenizer.no_padding()
    trainer.save_model(str(tmp))
    if main:
        family.finalize(tmp, cfg.max_length)  # a family may complete the saved folder (bi-encoder)
    curve = loss_curve_from_history(trainer.state.log_history)
    # Full batches assumed (a short last batch of an epoch is counted as full).
    instances_done = (steps - start_step) * cfg.batch_size * cfg.gradient_accumulation_steps * args.world_size
    eps = instances_done / seconds if seconds > 0 else 0.0
    summary = TrainSummary(
        steps=steps,
        examples=len(examples),
        final_loss=final_loss(curve),
        seconds=round(seconds, 3),
        examples_per_second=round(eps, 3),
        model_path=str(model_dir),
        model_type=cfg.model_type,
        loss=cfg.loss,
        instances=len(parts.dataset),
        pairs_per_second=round(eps * parts.pairs_per_instance, 3),
        resumed_from_step=start_step,
        loss_curve=str(out / "loss_curve.json"),
    )
    if main:
        write_model_card(
            tmp,
            {
                "config": config,
                "base_model": cfg.model if cfg.model == base else f"{cfg.model} ({base})",
                "train_path": str(train),
                "train_sha256": data_sha,
                "examples": len(examples),
                "instances": len(parts.dataset),
                "steps": steps,
                "final_loss": summary.final_loss,
                "seed": seed,
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            shown_path=model_dir,
        )
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle; the card and summary hold the options
        replace_dir(tmp, model_dir)
        write_loss_curve(out, curve)
        write_json(summary_path, {**summary.to_json(), "fingerprint": fingerprint, "config": config, "seed": seed})
    log.info(
        "trained %d steps (%d in this run) in %.1f s, %.2f instances/s, final loss %.4f -> %s",
        steps, steps - start_step, seconds, eps, summary.final_loss, model_dir,
    )
    return summary
