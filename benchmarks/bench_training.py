"""Reranker training throughput and memory: all-MiniLM-L6-v2 cross-encoder on SciFact-derived examples.

Usage: python benchmarks/bench_training.py [--steps 25] [--warmup 5] [--batch-size 16] [--max-length 256]
       [--loss bce|listwise] [--threads N] [--bf16] [--out benchmarks/results/training.json]

Examples: SciFact train queries (real, human-written claims), each with its first judged document as the
positive and one seeded random corpus document as the negative (the throughput does not depend on how
negatives were chosen; SciFact abstracts are longer than 256 tokens, so most pairs are truncated to
``max_length``). ``inpars.training.train_reranker`` runs ``warmup + steps`` optimiser steps (no checkpoint
in between); throughput counts the measured steps only, from the per-step ``elapsed`` times of
``loss_curve.json``: ``examples/s`` = training instances (pairs for bce, groups for listwise) per second,
``pairs/s`` = (query, document) pairs through the model per second. Peak RSS is the process's maximum
resident set (model, optimiser state, activations, Python). Timings on a shared machine are contended.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
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

RSS_TARGET_GIB = 4.0


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "transformers", "accelerate", "sentence-transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024)  # Linux: KiB


def make_examples(dataset: str, path: Path, n: int, negatives: int, seed: int = 0) -> int:
    from inpars.datasets import load_dataset

    ds = load_dataset(dataset)
    docs = ds.docs()
    queries = ds.queries("train")
    qrels = ds.qrels_dict("train")
    ids = sorted(docs)
    rng = random.Random(seed)
    rows = []
    for qid in sorted(qrels)[:n]:
        pos = sorted(qrels[qid])[0]
        negs: list[str] = []
        while len(negs) < negatives:
            d = rng.choice(ids)
            if d not in qrels[qid] and d not in negs:
                negs.append(d)
        rows.append(
            {
                "query_id": qid,
                "query": queries[qid],
                "pos_doc_id": pos,
                "positive": docs[pos].full_text,
                "neg_doc_ids": negs,
                "negatives": [docs[d].full_text for d in negs],
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return len(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--loss", choices=["bce", "listwise"], default="bce")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--steps", type=int, default=25, help="measured steps")
    ap.add_argument("--warmup", type=int, default=5, help="steps run before measuring")
    ap.add_argument("--examples", type=int, default=400, help="training queries to use")
    ap.add_argument("--negatives", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "training.json"))
    args = ap.parse_args()

    from inpars.io import write_json
    from inpars.training import train_reranker

    rss_start = _peak_rss_gib()
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        train = Path(tmp) / "train.jsonl"
        n = make_examples(args.dataset, train, args.examples, args.negatives)
        total = args.warmup + args.steps
        t = time.perf_counter()
        summary = train_reranker(
            train,
            Path(tmp) / "out",
            model=args.model,
            loss=args.loss,
            batch_size=args.batch_size,
            max_length=args.max_length,
            max_steps=total,
            save_steps=10 * total,
            learning_rate=2e-5,
            bf16=args.bf16,
            threads=args.threads,
            resume=False,
        )
        wall = time.perf_counter() - t
        curve = json.loads((Path(tmp) / "out" / "loss_curve.json").read_text())
    import torch

    times = [c["elapsed"] for c in curve]
    step_s = [b - a for a, b in zip(times, times[1:], strict=False)]
    measured = step_s[args.warmup - 1 :] if args.warmup > 0 else [times[0], *step_s]
    sec = sum(measured)
    pairs_per_instance = 1 if args.loss == "bce" else 1 + args.negatives
    eps = args.batch_size * len(measured) / sec
    peak = _peak_rss_gib()
    result = {
        "benchmark": "training",
        "dataset": args.dataset,
        "model": args.model,
        "loss": args.loss,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "bf16": args.bf16,
        "threads": torch.get_num_threads(),
        "training_queries": n,
        "negatives_per_query": args.negatives,
        "warmup_steps_excluded": args.warmup,
        "measured_steps": len(measured),
        "seconds_per_step": round(sec / len(measured), 3),
        "seconds_per_step_min": round(min(measured), 3),
        "seconds_per_step_max": round(max(measured), 3),
        "examples_per_second": round(eps, 2),
        "pairs_per_second": round(eps * pairs_per_instance, 2),
        "whole_run_seconds": round(wall, 1),
        "whole_run_examples_per_second": summary.examples_per_second,
        "first_loss": round(curve[0]["loss"], 4),
        "final_loss": round(summary.final_loss, 4),
        "peak_rss_gib": round(peak, 3),
        "rss_before_training_gib": round(rss_start, 3),
        "rss_target_gib": RSS_TARGET_GIB,
        "rss_under_target": peak < RSS_TARGET_GIB,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "versions": _versions(),
        "note": "wall-clock step times from loss_curve.json 'elapsed'; measured on a shared 2-core machine "
        "with other jobs running, so timings are contended; whole_run includes model loading and saving",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(args.out, result)
    out: dict[str, Any] = {k: result[k] for k in ("seconds_per_step", "examples_per_second", "pairs_per_second",
                                                  "peak_rss_gib", "first_loss", "final_loss")}
    print(
        f"training {args.model} ({args.loss}) batch {args.batch_size}, max length {args.max_length}, "
        f"{torch.get_num_threads()} threads: {json.dumps(out)}"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
