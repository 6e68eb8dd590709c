"""Bi-encoder training speed against sentence-transformers' own trainer: same examples, loss, batch, steps.

Usage: python benchmarks/bench_training_st.py [--steps 15] [--warmup 5] [--batch-size 16] [--max-length 256]
       [--rounds 4] [--threads N] [--out benchmarks/results/training_vs_st.json]

The examples: SciFact train queries (human-written claims) with their first judged document as the
positive and one seeded random corpus document as the hard negative (what the time per step depends on:
batch, lengths, model; not how the negative was chosen). Both trainers fine-tune all-MiniLM-L6-v2 (the
packaged ``minilm-l6``) as a bi-encoder with the in-batch-negatives loss (inpars ``loss: listwise``;
sentence-transformers ``MultipleNegativesRankingLoss``, scale 20, cosine), batch ``--batch-size``
(query, positive, negative) groups, ``--max-length`` tokens, AdamW at 2e-5 with ``--warmup`` steps of
linear warm-up then linear decay, the no-duplicates batch sampler, ``--warmup + --steps`` optimiser steps,
no checkpoint in between, seed 1, on the CPU with the same torch thread count.

Each round runs both trainers in this process, one after the other, so the ratio is taken inside one run
on the same machine state; ``--rounds`` repeats that with the order swapped every round (A B, B A, ...), so
a drift of the machine's speed does not always fall on the same trainer, and the result keeps every round
with the load average before it. Seconds per step come from the wall-clock time of each optimiser step after the warm-up
steps (inpars: ``loss_curve.json`` ``elapsed``; sentence-transformers: a ``TrainerCallback`` timing
``on_step_end``). The loss curves are compared step by step (mean absolute difference, and the mean of the
last 10 steps of each); the batches are not the same draws (each trainer shuffles with its own
generator), so the curves agree within noise, not value for value. What a step costs is recorded beside
its time: the padded token positions the encoder runs on per measured step (``padded_tokens_per_step``:
both trainers encode the queries in one pass and all of a group's documents in a second, padded to their
common width; sentence-transformers' ``embed_columns`` merges its candidate columns that way). The
rounds' ratios give a mean and its standard error (``speed_ratio_standard_error``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("INPARS_DATA_HOME", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import _versions, make_examples  # noqa: E402


def _inpars_tokens(batch: dict[str, Any]) -> int:
    """Token positions inpars's encoder runs on for one batch: the queries' pass and the documents' pass
    (every group's documents in one, padded to the longest), rows times padded width."""
    return sum(int(v.shape[0] * v.shape[1]) for k, v in batch.items() if k.endswith("input_ids"))


def _st_tokens(batch: dict[str, Any]) -> int:
    """The same for sentence-transformers: the anchors' pass, and the candidate columns merged into one pass
    padded to their common width (``embed_columns``)."""
    shapes = [v.shape for k, v in batch.items() if k.endswith("input_ids")]
    anchor, candidates = shapes[0], shapes[1:]
    return int(anchor[0] * anchor[1]) + sum(int(c[0]) for c in candidates) * max((int(c[1]) for c in candidates), default=0)


class _Counting:
    """A collator that records ``count(batch)`` of every batch it makes; other attributes are the wrapped
    collator's (sentence-transformers' trainer reads some)."""

    def __init__(self, collate: Any, count: Any, counts: list[int]) -> None:
        self._collate, self._count, self._counts = collate, count, counts

    def __call__(self, items: Any) -> Any:
        batch = self._collate(items)
        self._counts.append(self._count(batch))
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collate, name)


def _tokens_per_step(counts: list[int], args: argparse.Namespace) -> float:
    """Mean padded tokens of the measured steps' batches (the data loader may read one batch ahead)."""
    measured = counts[args.warmup : args.warmup + args.steps]
    return round(sum(measured) / max(len(measured), 1), 1)


def _inpars(train: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    from inpars.training import bi_encoder, train_reranker

    total = args.warmup + args.steps
    counts: list[int] = []
    original = bi_encoder.BiEncoderCollator.__call__

    def counted(self: Any, items: Any) -> Any:
        batch = original(self, items)
        counts.append(_inpars_tokens(batch))
        return batch

    bi_encoder.BiEncoderCollator.__call__ = counted  # type: ignore[method-assign]
    t = time.perf_counter()
    try:
        train_reranker(
            train, out, model="minilm-l6", model_type="bi-encoder", loss="listwise", batch_size=args.batch_size,
            max_length=args.max_length, max_steps=total, warmup_steps=args.warmup, learning_rate=2e-5,
            save_steps=10 * total, batches="no-duplicates", threads=args.threads, seed=1, resume=False,
        )
    finally:
        bi_encoder.BiEncoderCollator.__call__ = original  # type: ignore[method-assign]
    wall = time.perf_counter() - t
    curve = json.loads((out / "loss_curve.json").read_text())
    times = [c["elapsed"] for c in curve]
    steps = [b - a for a, b in zip(times, times[1:], strict=False)][args.warmup - 1 :]
    return {"step_seconds": steps, "losses": [c["loss"] for c in curve], "whole_run_seconds": wall,
            "padded_tokens_per_step": _tokens_per_step(counts, args)}


def _sentence_transformers(train: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers, SentenceTransformerTrainingArguments
    from transformers import TrainerCallback

    from inpars.models import resolve_model

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [json.loads(x) for x in train.read_text(encoding="utf-8").splitlines()]
    data = Dataset.from_dict({"anchor": [r["query"] for r in rows], "positive": [r["positive"] for r in rows],
                              "negative": [r["negatives"][0] for r in rows]})
    t = time.perf_counter()
    model = SentenceTransformer(resolve_model("minilm-l6"), device="cpu")
    model.max_seq_length = args.max_length
    total = args.warmup + args.steps
    targs = SentenceTransformerTrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.batch_size, max_steps=total,
        learning_rate=2e-5, warmup_steps=args.warmup, lr_scheduler_type="linear", weight_decay=0.01,
        logging_steps=1, save_strategy="no", report_to=[], seed=1, use_cpu=True,
        batch_sampler=BatchSamplers.NO_DUPLICATES, disable_tqdm=True, dataloader_drop_last=True,
    )
    marks: list[float] = []
    losses: list[float] = []

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, *a: Any, **k: Any) -> None:
            marks.append(time.perf_counter())

        def on_log(self, args: Any, state: Any, control: Any, **k: Any) -> None:
            logs = k.get("logs")
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    trainer = SentenceTransformerTrainer(model=model, args=targs, train_dataset=data,
                                         loss=MultipleNegativesRankingLoss(model), callbacks=[Clock()])
    counts: list[int] = []
    trainer.data_collator = _Counting(trainer.data_collator, _st_tokens, counts)  # type: ignore[assignment]
    trainer.train()
    wall = time.perf_counter() - t
    steps = [b - a for a, b in zip(marks, marks[1:], strict=False)][args.warmup - 1 :]
    return {"step_seconds": steps, "losses": losses, "whole_run_seconds": wall,
            "padded_tokens_per_step": _tokens_per_step(counts, args)}


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    s = run["step_seconds"]
    return {"seconds_per_step": round(sum(s) / len(s), 3), "seconds_per_step_median": round(statistics.median(s), 3),
            "seconds_per_step_min": round(min(s), 3),
            "seconds_per_step_max": round(max(s), 3), "measured_steps": len(s),
            "first_loss": round(run["losses"][0], 4), "last10_mean_loss": round(sum(run["losses"][-10:]) / len(run["losses"][-10:]), 4),
            "whole_run_seconds": round(run["whole_run_seconds"], 1),
            "padded_tokens_per_step": run["padded_tokens_per_step"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=15, help="measured steps")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up steps, not measured")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--examples", type=int, default=700, help="training queries (SciFact train has 809 judged)")
    ap.add_argument("--rounds", type=int, default=4,
                    help="rounds, the order swapped each (this machine drifts by about 10%% between runs)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "training_vs_st.json"))
    args = ap.parse_args()
    import torch

    from inpars.io import write_json

    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench_training_st_") as tmp:
        train = Path(tmp) / "train.jsonl"
        n = make_examples("scifact", train, args.examples, 1)
        random.seed(0)
        for r in range(args.rounds):
            before = list(os.getloadavg())
            order = [("inpars", _inpars), ("sentence_transformers", _sentence_transformers)]
            if r % 2:
                order.reverse()
            runs = {name: run(train, Path(tmp) / f"{name}{r}", args) for name, run in order}
            a, b = runs["inpars"], runs["sentence_transformers"]
            k = min(len(a["losses"]), len(b["losses"]))
            rounds.append({
                "order": [name for name, _ in order], "load_average_before": before,
                "inpars": _summary(a), "sentence_transformers": _summary(b),
                "speed_ratio_inpars_over_st": round(
                    (sum(b["step_seconds"]) / len(b["step_seconds"])) / (sum(a["step_seconds"]) / len(a["step_seconds"])), 3),
                "speed_ratio_of_medians": round(
                    statistics.median(b["step_seconds"]) / statistics.median(a["step_seconds"]), 3),
                "loss_mean_abs_difference": round(sum(abs(x - y) for x, y in zip(a["losses"][:k], b["losses"][:k], strict=True)) / k, 4),
                "loss_curves": {"inpars": [round(x, 4) for x in a["losses"]],
                                "sentence_transformers": [round(x, 4) for x in b["losses"]]},
            })
            print(f"round {r + 1}: inpars {rounds[-1]['inpars']['seconds_per_step']} s/step, "
                  f"sentence-transformers {rounds[-1]['sentence_transformers']['seconds_per_step']} s/step, "
                  f"ratio (ST time / inpars time) {rounds[-1]['speed_ratio_inpars_over_st']}", flush=True)
    ratios = [r["speed_ratio_inpars_over_st"] for r in rounds]
    spread = statistics.stdev(ratios) / len(ratios) ** 0.5 if len(ratios) > 1 else None
    result = {
        "benchmark": "training_vs_sentence_transformers",
        "what": "bi-encoder fine-tuning of all-MiniLM-L6-v2, in-batch negatives (MNRL), same examples and settings",
        "settings": {"batch_size": args.batch_size, "max_length": args.max_length, "measured_steps": args.steps,
                     "warmup_steps": args.warmup, "learning_rate": 2e-5, "training_queries": n,
                     "negatives_per_query": 1, "threads": torch.get_num_threads(), "rounds": args.rounds},
        "rounds": rounds,
        "speed_ratio_mean": round(sum(ratios) / len(ratios), 3),
        # the rounds' spread: a mean ratio within about two standard errors of 1 is no measured difference
        "speed_ratio_standard_error": round(spread, 3) if spread is not None else None,
        "speed_ratio_of_medians_mean": round(statistics.mean(r["speed_ratio_of_medians"] for r in rounds), 3),
        "load_average_at_start": list(load),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "versions": _versions(),
        "note": "speed_ratio > 1: inpars's step is faster (sentence-transformers' seconds per step over inpars's); "
                "wall-clock per optimiser step after the warm-up, both trainers in one process, the order swapped every round",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(args.out, result)
    print(f"mean ratio {result['speed_ratio_mean']} (standard error {result['speed_ratio_standard_error']}); "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
