"""``inpars train``: train a reranker (any registered model family) on TrainingExample JSONL."""

from __future__ import annotations

import argparse
from typing import Any

from inpars.cli._common import add_config_arg, add_section_flags, resolve_config, section_values
from inpars.config import TrainConfig


def add_parser(subparsers: Any) -> None:
    from inpars.families import FAMILIES, family_help

    trains = "; ".join(f"{name}: loss {' or '.join(FAMILIES.get(name).losses)}" for name in FAMILIES)
    p = subparsers.add_parser(
        "train",
        help="train a reranker on training examples (resumes from its last checkpoint)",
        description=(
            f"Train a reranker of one of the model types ({trains}) on the JSONL written by 'inpars negatives'. "
            "Writes OUT/model (model, tokenizer, README.md), OUT/checkpoints, OUT/train_summary.json and "
            "OUT/loss_curve.json/.png. Run it again after a crash or kill to resume from the last checkpoint. "
            "Several GPUs: torchrun --nproc_per_node N $(which inpars) train ..."
        ),
    )
    add_config_arg(p)
    p.add_argument("--train", required=True, help="training examples (JSONL: query, pos_doc_id, positive, negatives...)")
    p.add_argument("--out", "-o", required=True, help="output folder")
    add_section_flags(p, TrainConfig, helps={
        "model_type": f"model family (default: the checkpoint's own; a bare encoder: cross-encoder). {family_help()}",
        "batch_size": "pairs (bce) or groups (listwise) per device step",
    })
    p.add_argument("--seed", type=int, default=None, help="seed (default: the config's, 1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the config's or torch's)")
    p.add_argument("--no-resume", action="store_true", help="delete old checkpoints and start over")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inpars.training import train_reranker

    fields = section_values(args, TrainConfig)
    cfg = resolve_config(args, "train", fields)
    for key, value in fields.items():
        if value is None:  # '--max-steps none': train for --epochs
            setattr(cfg.train, key, None)
    seed = args.seed if args.seed is not None else cfg.seed
    threads = args.threads if args.threads is not None else cfg.threads
    from inpars.safety import check_model, check_output_dir, check_threads

    check_threads(args.threads)
    check_model(cfg.train.model, "--model")
    check_output_dir(args.out, [args.train, getattr(args, "config", None)])
    from inpars.families import resolve_training

    resolve_training(cfg.train)  # model type unset: the checkpoint's own; loss unset: one that type trains
    from inpars.training.common import end_distributed

    summary = train_reranker(
        args.train, args.out, seed=seed, threads=threads, resume=not args.no_resume, **cfg.train.model_dump()
    )
    end_distributed()
    resumed = f", resumed from step {summary.resumed_from_step}" if summary.resumed_from_step else ""
    print(
        f"trained {summary.model_type} ({summary.loss}) for {summary.steps} steps on {summary.examples} examples"
        f"{resumed}: final loss {summary.final_loss:.4f}, {summary.seconds:.1f} s, "
        f"{summary.examples_per_second:.2f} instances/s -> {summary.model_path}"
    )
    print(f"summary: {args.out}/train_summary.json")
    return 0
