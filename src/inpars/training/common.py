"""Machinery shared by the reranker families: input reading, the Trainer subclass, checkpoints,
loss curves, model cards and the run summary.

Layout of a training folder ``out_dir``::

    out_dir/
      model/               the trained model + tokenizer (what :func:`saved_model_path` returns)
        README.md          model card: base model, data path + sha256, steps, loss, config, seed, date
      checkpoints/         checkpoint-N folders (last 2 kept); a killed run resumes from the newest
      train_run.json       fingerprint of the run the checkpoints belong to (refuses a mismatched resume)
      train_summary.json   :class:`TrainSummary` of the finished run
      loss_curve.json      one entry per optimiser step: step, loss, learning_rate, epoch, elapsed (seconds
                           since training began in the process that ran the step)
      loss_curve.png       the same as a picture (when matplotlib is installed)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inpars.errors import InputError
from inpars.io import atomic_write, read_jsonl, write_json
from inpars.records import TrainingExample
from inpars.training.checkpoints import (  # noqa: F401  (re-exported: the training API's checkpoint names)
    COMPLETE_MARKER,
    checkpoint_finished,
    last_complete_checkpoint,
    safetensors_intact,
    trainer_state_step,
)

log = logging.getLogger(__name__)

MODEL_SUBDIR = "model"
CHECKPOINT_SUBDIR = "checkpoints"
SUMMARY_FILE = "train_summary.json"
RUN_FILE = "train_run.json"
LOSS_CURVE_FILE = "loss_curve.json"
FINAL_LOSS_WINDOW = 10


def saved_model_path(out_dir: str | Path) -> Path:
    """Where :func:`~inpars.training.train_reranker` saves the final model: ``out_dir/model``."""
    return Path(out_dir) / MODEL_SUBDIR


@dataclasses.dataclass
class TrainSummary:
    """What a training run did.

    ``examples`` counts the TrainingExample records read. ``instances`` is what one epoch iterates over:
    (query, document) pairs for the pointwise losses (``bce``, and every monoT5 run), (query, positive,
    negatives) groups for ``listwise``. ``examples_per_second`` counts instances trained per second of
    wall time in this process (checkpoint saving included, steps done before a resume excluded);
    ``pairs_per_second`` counts the (query, document) pairs that went through the model.
    ``final_loss`` is the mean training loss of the last (up to) 10 optimiser steps.
    """

    steps: int
    examples: int
    final_loss: float
    seconds: float
    examples_per_second: float
    model_path: str
    model_type: str = "cross-encoder"
    loss: str = "bce"
    instances: int = 0
    pairs_per_second: float = 0.0
    resumed_from_step: int = 0
    loss_curve: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TrainSummary:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in names})


# ---------------------------------------------------------------------------------------------------
# input


def load_training_examples(path: str | Path, *, need_negatives: bool = False) -> list[TrainingExample]:
    """Read TrainingExample JSONL (the negatives stage's output), checking every field.

    The original InPars toolkit's triples/pairs TSV and generated-query JSONL are read too
    (:mod:`inpars.formats`).

    Raises :class:`~inpars.errors.InputError` naming file, line and field for a missing or empty
    ``query``/``positive``/``pos_doc_id``, ``negatives`` that is not a list of strings, ``neg_doc_ids``
    whose length differs from ``negatives``, a group without negatives when ``need_negatives`` (listwise
    loss), or a file without any example.

    >>> import tempfile, os, json
    >>> p = os.path.join(tempfile.mkdtemp(), "train.jsonl")
    >>> _ = open(p, "w").write(json.dumps({"query": "q", "pos_doc_id": "d1", "positive": "text"}) + "\\n")
    >>> load_training_examples(p)[0].pos_doc_id
    'd1'
    """
    from inpars.formats import generated_as_training, read_training_file

    path = Path(path)
    out: list[TrainingExample] = read_training_file(path) or []  # the original's triples/pairs TSV
    if out and need_negatives and not all(ex.negatives for ex in out):
        raise InputError("the listwise loss needs at least one negative per example", path=path, field="negatives")
    for line, obj in read_jsonl(path) if not out else ():
        obj = generated_as_training(obj)  # the original's generated-query JSONL (InPars v1/v2)
        for name in ("query", "pos_doc_id", "positive"):
            if name not in obj or obj[name] is None:
                raise InputError("missing required field", path=path, line=line, field=name)
            value = obj[name]
            if name == "pos_doc_id" and isinstance(value, int) and not isinstance(value, bool):
                continue
            if not isinstance(value, str):
                raise InputError(f"expected a string, got {type(value).__name__}", path=path, line=line, field=name)
            if not value.strip():
                raise InputError("empty string", path=path, line=line, field=name)
        for name, types in (("negatives", (str,)), ("neg_doc_ids", (str, int))):
            value = obj.get(name)
            if value is None:
                continue
            if not isinstance(value, list) or not all(isinstance(x, types) and not isinstance(x, bool) for x in value):
                raise InputError("expected a list of strings", path=path, line=line, field=name)
        negatives = obj.get("negatives") or []
        neg_ids = obj.get("neg_doc_ids") or []
        if neg_ids and len(neg_ids) != len(negatives):
            raise InputError(
                f"{len(neg_ids)} neg_doc_ids but {len(negatives)} negatives", path=path, line=line, field="negatives"
            )
        if any(not str(n).strip() for n in negatives):
            raise InputError("empty negative text", path=path, line=line, field="negatives")
        if need_negatives and not negatives:
            raise InputError(
                "the listwise loss needs at least one negative per example", path=path, line=line, field="negatives"
            )
        scores = obj.get("scores")
        if scores is not None and not (isinstance(scores, list) and len(scores) == 1 + len(negatives) and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in scores)):
            raise InputError(f"expected a list of 1 + {len(negatives)} numbers (the positive's score, then each "
                             f"negative's), got {scores!r:.60}", path=path, line=line, field="scores")
        out.append(TrainingExample.from_json(obj))
    if not out:
        raise InputError("no training examples in the file", path=path)
    if not any(ex.negatives for ex in out):
        log.warning("%s: no example has a negative; the model will only see relevant pairs", path)
    return out


# ---------------------------------------------------------------------------------------------------
# transformers glue (imported lazily)


LossFn = Callable[[Any, dict[str, Any]], Any]


def _texts(item: dict[str, Any]) -> set[str]:
    """The texts of one training instance: its query and its document(s)."""
    return {item["query"], *item.get("docs", ()), *([item["doc"]] if "doc" in item else [])}


def no_duplicate_order(items: list[dict[str, Any]], batch_size: int, seed: int) -> list[int]:
    """An order of ``items`` whose consecutive chunks of ``batch_size`` share no text (query or document).

    The items are shuffled with ``seed`` and packed greedily, as sentence-transformers'
    ``NoDuplicatesBatchSampler`` does: each batch takes the first remaining items that share no text with it;
    an item that does waits for a later batch. When the remaining items can no longer fill a batch without a
    repeat, they end the order in their shuffled order (only the last batches may then hold a repeat). Every
    index appears exactly once, and the order depends only on the items and the seed.

    >>> items = [{"query": "q1", "docs": ["a", "b"]}, {"query": "q2", "docs": ["a", "c"]},
    ...          {"query": "q3", "docs": ["d", "e"]}, {"query": "q4", "docs": ["f", "g"]}]
    >>> order = no_duplicate_order(items, 2, seed=0)
    >>> sorted(order), all(not (_texts(items[i]) & _texts(items[j])) for i, j in (order[:2], order[2:]))
    ([0, 1, 2, 3], True)
    """
    import random

    remaining = list(range(len(items)))
    random.Random(seed).shuffle(remaining)
    texts = [_texts(it) for it in items]
    order: list[int] = []
    while len(remaining) >= batch_size:
        batch: list[int] = []
        seen: set[str] = set()
        for i in remaining:
            if not texts[i] & seen:
                batch.append(i)
                seen |= texts[i]
                if len(batch) == batch_size:
                    break
        if len(batch) < batch_size:
            break
        order.extend(batch)
        taken = set(batch)
        remaining = [i for i in remaining if i not in taken]
    return order + remaining


class Reordered:
    """``dataset`` read in ``order_for(epoch)`` (a permutation of its indices) during each epoch.

    The Trainer (through accelerate's data loader) calls :meth:`set_epoch` before it reads an epoch, the
    resumed one included, so an epoch's order depends on its number only, never on where a run resumed.
    """

    def __init__(self, dataset: Any, order_for: Callable[[int], list[int]]) -> None:
        self.dataset, self.order_for = dataset, order_for
        self.epoch = 0
        self.order = order_for(0)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.order = epoch, self.order_for(epoch)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.order[i]]


def make_trainer(loss_fn: LossFn, **kwargs: Any) -> Any:
    """A :class:`transformers.Trainer` whose loss is ``loss_fn(model, inputs)``.

    The loss is a per-micro-batch mean; the Trainer divides it by the gradient-accumulation steps.
    """
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class StepBar(ProgressCallback):  # type: ignore[misc]
        """transformers' bar (steps, rate, ETA) with the latest loss beside it, instead of a printed line
        per logged step."""

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            from inpars.quiet import bar

            if state.is_world_process_zero:
                self.training_bar = bar(total=state.max_steps, desc="train", unit="step", show=True)
            self.current_step = 0

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if state.is_world_process_zero and self.training_bar is not None and logs and "loss" in logs:
                self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    class RerankerTrainer(Trainer):
        _t0: float | None = None

        def compute_loss(  # type: ignore[override]
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            loss = loss_fn(model, dict(inputs))
            return (loss, {}) if return_outputs else loss

        def train(self, *args: Any, **kwargs: Any) -> Any:
            self._t0 = time.perf_counter()
            return super().train(*args, **kwargs)

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            # seconds since train() began in this process: step timings for the curve and benchmarks
            if "loss" in logs and self._t0 is not None:
                logs["elapsed"] = round(time.perf_counter() - self._t0, 4)
            super().log(logs, start_time)

    trainer = RerankerTrainer(**kwargs)
    # Our loss is a mean per micro-batch: let the Trainer scale it for gradient accumulation.
    trainer.model_accepts_loss_kwargs = False
    # PrinterCallback print()s every log dict when tqdm is off; progress goes to our logger instead.
    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:  # the bar is on: without a line per step
        trainer.add_callback(StepBar())
    return trainer


def make_callbacks(log_every: int = 10) -> list[Any]:
    """Callbacks: a marker file in each finished checkpoint, and progress lines on the logger."""
    from transformers import TrainerCallback

    class CheckpointMarker(TrainerCallback):
        """Writes a marker once a checkpoint is fully saved (on_save runs after the Trainer wrote it)."""

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            # Under DDP every rank writes its own RNG state into the folder: mark it complete only once
            # all ranks are past their part of the save.
            wait_for_all_ranks()
            if state.is_world_process_zero:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if folder.is_dir():
                    with atomic_write(folder / COMPLETE_MARKER) as f:
                        f.write(f"{state.global_step}\n")
                    log.info("checkpoint saved: %s", folder)

    # with a progress bar on the screen (it shows the step and the loss) the lines are for -vv only
    level = logging.DEBUG if show_progress_bar() else logging.INFO

    class LogProgress(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            step = state.global_step
            if step % log_every == 0 or step == state.max_steps or step == 1:
                log.log(level, "step %d/%d loss %.4f lr %.3g", step, state.max_steps, logs["loss"],
                        logs.get("learning_rate", 0.0))

    return [CheckpointMarker(), LogProgress()]


def wait_for_all_ranks() -> None:
    """A barrier across the processes of a ``torchrun``/``accelerate launch`` run; nothing in a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def end_distributed() -> None:
    """After a successful run: wait for every rank, then tear the process group down; nothing in a single
    process.

    A ``torchrun`` worker that exits with gloo's process group still up can abort in gloo's threads
    ("terminate called without an active exception", pytorch/pytorch#190489) while another rank is still
    writing. Not called after an error: destroying the group while another rank waits in a collective can
    hang (pytorch/torchtitan#1342); the launcher tears failed workers down.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        wait_for_all_ranks()
        dist.destroy_process_group()


def show_progress_bar() -> bool:
    """Whether training draws transformers' step bar (:func:`inpars.quiet.show_progress`)."""
    from inpars.quiet import show_progress

    return show_progress(None)


# ---------------------------------------------------------------------------------------------------
# outputs


def loss_curve_from_history(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per logged optimiser step (``loss`` present), the latest value kept for each step.

    ``elapsed`` (seconds since ``train()`` began in the process that ran the step) is kept when logged.
    """
    by_step: dict[int, dict[str, Any]] = {}
    for entry in history:
        if "loss" in entry and "step" in entry:
            by_step[int(entry["step"])] = {
                "step": int(entry["step"]),
                "loss": float(entry["loss"]),
                "learning_rate": float(entry.get("learning_rate", 0.0)),
                "epoch": float(entry.get("epoch", 0.0)),
            }
            if "elapsed" in entry:
                by_step[int(entry["step"])]["elapsed"] = float(entry["elapsed"])
    return [by_step[s] for s in sorted(by_step)]


def final_loss(curve: list[dict[str, Any]], window: int = FINAL_LOSS_WINDOW) -> float:
    """Mean loss of the last ``window`` steps of the curve (nan for an empty curve)."""
    tail = [c["loss"] for c in curve[-window:]]
    return float(sum(tail) / len(tail)) if tail else math.nan


def write_loss_curve(out_dir: Path, curve: list[dict[str, Any]]) -> Path:
    """Write ``loss_curve.json`` and, when matplotlib is importable, ``loss_curve.png``."""
    path = out_dir / LOSS_CURVE_FILE
    write_json(path, curve)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib not installed: no loss_curve.png")
        return path
    if curve:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([c["step"] for c in curve], [c["loss"] for c in curve], lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title(out_dir.name)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        png = out_dir / "loss_curve.png"
        with atomic_write(png, mode="wb") as f:
            fig.savefig(f, format="png", dpi=100)
        plt.close(fig)
    return path


def average_with_start(model: Any, start: str, share: float) -> int:
    """Replace ``model``'s weights, in place, by ``(1 - share) * trained + share * start`` (WiSE-FT weight
    averaging, Wortsman et al. 2022), and return how many tensors were averaged.

    The start checkpoint is loaded into the trained model's class and config; tensors it does not hold (a
    classification head newly initialised for training) or holds in another shape keep their trained
    values, as do integer buffers. Raises :class:`~inpars.errors.ConfigError` when the start shares no
    weight with the trained model (averaging would silently do nothing).
    """
    import warnings

    import torch

    from inpars.errors import ConfigError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some weights were not initialised": those are left out below
        start_model, info = type(model).from_pretrained(
            start, config=model.config, ignore_mismatched_sizes=True, output_loading_info=True)
    fresh = set(info.get("missing_keys", ())) | {k[0] if isinstance(k, tuple) else k
                                                 for k in info.get("mismatched_keys", ())}
    theirs = start_model.state_dict()
    averaged = 0
    seen: set[int] = set()  # tied tensors (T5's shared embeddings) appear under several names: average once
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            other = theirs.get(name)
            if (name in fresh or other is None or other.shape != tensor.shape
                    or not torch.is_floating_point(tensor) or tensor.data_ptr() in seen):
                continue
            seen.add(tensor.data_ptr())
            tensor.mul_(1.0 - share).add_(other.to(tensor.device, tensor.dtype), alpha=share)
            averaged += 1
    del start_model, theirs
    if averaged == 0:
        raise ConfigError(f"average_start: the start checkpoint {start} shares no weights with the trained model")
    return averaged


def write_model_card(model_dir: Path, info: dict[str, Any], shown_path: Path | None = None) -> None:
    """A short README.md in ``model_dir``: what it was trained from, on what, and how.

    ``shown_path`` is the folder named in the usage example (where ``model_dir`` will be moved to).
    """
    from inpars import __version__

    where = shown_path or model_dir

    from inpars.scoring.family import get_family

    cfg = json.dumps(info["config"], indent=2, sort_keys=True)
    usage = get_family(info["config"]["model_type"]).usage(where)
    text = (
        f"# Reranker trained with inpars {__version__}\n\n"
        f"- model type: {info['config']['model_type']} (loss: {info['config']['loss']})\n"
        f"- base model: {info['base_model']}\n"
        f"- training data: {info['train_path']} (sha256 {info['train_sha256']})\n"
        f"- training examples: {info['examples']} ({info['instances']} instances per epoch)\n"
        f"- optimiser steps: {info['steps']}; final training loss (mean of last {FINAL_LOSS_WINDOW} steps): "
        f"{info['final_loss']:.4f}\n"
        f"- seed: {info['seed']}\n"
        f"- date: {info['date']}\n"
        f"- inpars version: {__version__}\n\n"
        "The training data was generated without human relevance labels (InPars-style synthetic queries).\n\n"
        "## Usage\n\n" + usage + "\n## Training configuration\n\n```json\n" + cfg + "\n```\n"
    )
    with atomic_write(model_dir / "README.md") as f:
        f.write(text)


def replace_dir(tmp: Path, target: Path) -> None:
    """Move a finished folder into place, replacing an older one."""
    old = target.with_name(f".{target.name}.old")
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
