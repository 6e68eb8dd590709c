"""``inpars rerank``: rerank a first-stage TREC run with a trained cross-encoder or monoT5 model."""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

from inpars.cli._common import add_config_arg, resolve_config
from inpars.errors import ConfigError


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "rerank",
        help="rerank a first-stage run (TREC format) with a trained reranker",
        description=(
            "Score the top --depth documents of each query of a first-stage run with a reranker and write "
            "the reranked run. Per-query scores are kept in OUT.scores.jsonl, so an interrupted rerank "
            "resumes. With --interpolate, the weight of the reranker score against the first-stage score is "
            "chosen on --tune-split (never the test split) by reranking --tune-run, and OUT holds the "
            "interpolated run (the reranker-only run goes to OUT's name with '.rerank-only' before its suffix, "
            "the weights tried to OUT.interpolation.json)."
        ),
    )
    add_config_arg(p)
    p.add_argument("--dataset", "-d", help="BEIR folder, name under $INPARS_DATA_HOME, or irds:ID")
    p.add_argument("--run", "-r", dest="first_stage", default=None, help="first-stage TREC run to rerank")
    p.add_argument("--model", "-m", default=None, help="reranker checkpoint folder, hub id or packaged name")
    p.add_argument("--model-type", choices=["cross-encoder", "monot5", "bi-encoder"], default=None,
                   help="default: read from the checkpoint (encoder-decoder -> monot5; sentence-transformers model "
                        "without a classification head -> bi-encoder; else cross-encoder)")
    p.add_argument("--out", "-o", required=True, help="TREC run to write")
    p.add_argument("--split", default=None, help="query split of the run (default: dataset.eval_split, 'test')")
    p.add_argument("--depth", type=int, default=None, help="documents reranked per query (default 100)")
    p.add_argument("--batch-size", type=int, default=None, help="pairs per forward pass (default 32)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per pair, document cut (default 256)")
    p.add_argument("--engine", choices=["auto", "torch", "torch-bf16", "onnx", "onnx-int8"], default=None,
                   help="torch (fp32), onnx (onnxruntime fp32, same scores), torch-bf16 (bfloat16, about 2x on "
                   "CPUs with AVX512-BF16/AMX, scores move ~0.01), onnx-int8 (quantised, scores move more) or "
                   "auto (default: onnx on CPU when installed, else torch)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the config's, else all)")
    p.add_argument("--interpolate", action="store_true", default=None,
                   help="interpolate with the first-stage score, weight tuned on --tune-split")
    p.add_argument("--tune-split", default=None, help="split to tune the weight on (default train; not test)")
    p.add_argument("--tune-run", default=None, help="first-stage run of the --tune-split queries")
    p.add_argument("--tune-queries", type=int, default=None, help="tuning queries sampled from --tune-run (100)")
    p.add_argument("--no-resume", action="store_true", help="ignore scores kept from an interrupted rerank")
    p.add_argument("--tag", default="inpars-rerank", help="run tag, last column of the TREC run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inpars import rerank
    from inpars.datasets import load_dataset, read_run_dict, write_run
    from inpars.io import write_json

    fields: dict[str, Any] = {
        "model": args.model,
        "model_type": args.model_type,
        "first_stage": args.first_stage,
        "depth": args.depth,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "engine": args.engine,
        "interpolate": args.interpolate,
        "tune_split": args.tune_split,
        "tune_queries": args.tune_queries,
    }
    cfg = resolve_config(args, "rerank", fields, dataset=args.dataset)
    rc = cfg.rerank
    if not cfg.dataset.name:
        raise ConfigError("no dataset: give --dataset or a --config with dataset.name")
    if not rc.first_stage:
        raise ConfigError("no first-stage run: give --run or rerank.first_stage in the config")
    if not rc.model:
        raise ConfigError("no model: give --model or rerank.model in the config")
    split = args.split or cfg.dataset.eval_split
    if rc.interpolate and not args.tune_run:
        raise ConfigError("--interpolate needs --tune-run: a first-stage run of the --tune-split queries")
    if rc.interpolate and rc.tune_split == split:
        raise ConfigError(f"the weight must be tuned on another split than the one reranked ('{split}')")

    ds = load_dataset(cfg.dataset.name)
    scorer = rerank.load_scorer(
        rc.model, rc.model_type, batch_size=rc.batch_size, max_length=rc.max_length, engine=rc.engine,
        threads=args.threads or cfg.threads,
    )
    out = Path(args.out)
    common: dict[str, Any] = {"depth": rc.depth, "scorer": scorer, "resume": not args.no_resume}
    if not rc.interpolate:
        result = rerank.rerank_run(ds, rc.first_stage, out, split=split, tag=args.tag, **common)
        n = sum(len(v) for v in result.values())
        print(f"{out}: {len(result)} {split} queries reranked, {n} lines ({scorer.model_type}, {scorer.engine})")
        return 0

    only = out.with_name(f"{out.stem}.rerank-only{out.suffix}")
    reranked = rerank.rerank_run(ds, rc.first_stage, only, split=split, tag=args.tag, **common)
    tune_first = read_run_dict(args.tune_run)
    ids = sorted(tune_first)
    if len(ids) > rc.tune_queries:
        ids = sorted(random.Random(cfg.seed).sample(ids, rc.tune_queries))
    tune_first = {q: tune_first[q] for q in ids}
    tune_out = out.with_name(f"{out.stem}.tune-{rc.tune_split}{out.suffix}")
    tuned = rerank.rerank_run(ds, tune_first, tune_out, split=rc.tune_split, tag=args.tag, **common)
    alpha, table = rerank.tune_alpha(ds, rc.tune_split, tune_first, tuned, rc.alphas)
    final = rerank.interpolate(read_run_dict(rc.first_stage), reranked, alpha)
    write_run(out, final, tag=f"{args.tag}-interp")
    write_json(
        f"{out}.interpolation.json",
        {"alpha": alpha, "measure": "nDCG@10", "tune_split": rc.tune_split, "tune_queries": len(tuned),
         "table": table},
    )
    print(
        f"{out}: {len(final)} {split} queries, reranker interpolated with the first stage at alpha={alpha:g} "
        f"(tuned on {len(tuned)} {rc.tune_split} queries: nDCG@10 {table[f'{alpha:g}']:.4f}); "
        f"reranker only: {only}"
    )
    return 0
