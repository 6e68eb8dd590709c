"""``inpars train``: train a reranker (any registered model family) on TrainingExample JSONL."""

from __future__ import annotations

import argparse
import json
from typing import Any

from inpars.cli._common import add_config_arg, resolve_config


def add_parser(subparsers: Any) -> None:
    from inpars.families import DEFAULT_FAMILY, FAMILIES, family_help

    losses = sorted({loss for name in FAMILIES for loss in FAMILIES.get(name).losses})
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
    p.add_argument("--model-type", choices=FAMILIES.names(), default=None,
                   help=f"default {DEFAULT_FAMILY}. {family_help()}")
    p.add_argument("--model", default=None, help="base model: minilm-l6 (default), a folder or a hub id")
    p.add_argument("--loss", choices=losses, default=None, help="default bce")
    p.add_argument("--batch-size", type=int, default=None, help="pairs (bce) or groups (listwise) per device step (16)")
    p.add_argument("--max-length", type=int, default=None, help="max tokens per input (256)")
    p.add_argument("--learning-rate", type=float, default=None, help="peak learning rate (2e-5)")
    p.add_argument("--max-steps", type=int, default=None, help="optimiser steps (overrides --epochs)")
    p.add_argument("--epochs", type=float, default=None, help="passes over the data when --max-steps is not set (1)")
    p.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up steps (0)")
    p.add_argument("--gradient-accumulation-steps", type=int, default=None, help="(1)")
    p.add_argument("--save-steps", type=int, default=None, help="checkpoint every N steps (100)")
    p.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (0.01)")
    p.add_argument("--bf16", action="store_true", default=None, help="bfloat16 mixed precision")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the config's, 1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the config's or torch's)")
    p.add_argument("--no-resume", action="store_true", help="delete old checkpoints and start over")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inpars.training import train_reranker

    fields = {
        "model_type": args.model_type,
        "model": args.model,
        "loss": args.loss,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "learning_rate": args.learning_rate,
        "max_steps": args.max_steps,
        "epochs": args.epochs,
        "warmup_steps": args.warmup_steps,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "save_steps": args.save_steps,
        "weight_decay": args.weight_decay,
        "bf16": args.bf16,
    }
    cfg = resolve_config(args, "train", fields)
    seed = args.seed if args.seed is not None else cfg.seed
    threads = args.threads if args.threads is not None else cfg.threads
    summary = train_reranker(
        args.train, args.out, seed=seed, threads=threads, resume=not args.no_resume, **cfg.train.model_dump()
    )
    resumed = f", resumed from step {summary.resumed_from_step}" if summary.resumed_from_step else ""
    print(
        f"trained {summary.model_type} ({summary.loss}) for {summary.steps} steps on {summary.examples} examples"
        f"{resumed}: final loss {summary.final_loss:.4f}, {summary.seconds:.1f} s, "
        f"{summary.examples_per_second:.2f} instances/s -> {summary.model_path}"
    )
    print(json.dumps(summary.to_json()))
    return 0
