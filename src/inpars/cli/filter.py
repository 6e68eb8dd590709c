"""``inpars filter``: keep the best generated queries (always-on checks, then filter steps)."""

from __future__ import annotations

import argparse
from typing import Any

from inpars.cli._common import add_config_arg, resolve_config
from inpars.errors import ConfigError

STEP_HELP = """\
filter steps, run in order after the always-on checks (empty, flagged, too short/long, copies the
document, duplicate). Each --step is NAME[:key=value,...]; keys top_k, top_fraction, model, depth are the
step's fields, any other key is an option of the filter. Filters:
  logprob      keep the best by mean token log-probability (InPars v1)
  reranker     keep the best by reranker score of (query, its document) (InPars v2); model=CHECKPOINT,
               options model_type, batch_size, max_length
  consistency  keep a query when BM25 (or model=CHECKPOINT over the BM25 top depth) ranks its document
               within top_k (default 3; depth default 100)
  random       keep a seeded random subset (baseline)
Given --step flags replace the config's steps; '--step none' runs the always-on checks only.

examples:
  inpars filter -d scifact --in queries.jsonl --out filtered.jsonl --step logprob:top_fraction=0.5
  inpars filter -d scifact --in queries.jsonl --out filtered.jsonl \\
      --step logprob:top_k=2000 --step consistency:top_k=3
  inpars filter -d scifact --in queries.jsonl --out filtered.jsonl \\
      --step reranker:top_k=1000,model=cross-encoder/ms-marco-MiniLM-L-6-v2,batch_size=64
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "filter",
        help="keep the best generated queries",
        description="Filter generated queries; writes the kept records (same JSONL format) and a report "
        "beside them (filtered.jsonl -> filtered.report.json).",
        epilog=STEP_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arg(p)
    p.add_argument("--dataset", "-d", help="BEIR folder, name under $INPARS_DATA_HOME, or irds:ID")
    p.add_argument("--in", dest="input", required=True, help="generated queries (JSONL)")
    p.add_argument("--out", "-o", required=True, help="filtered queries to write (JSONL)")
    p.add_argument("--step", action="append", default=None, metavar="NAME[:k=v,...]", help="a filter step (repeatable)")
    p.add_argument("--min-words", type=int, default=None, help="drop queries with fewer words (default 2)")
    p.add_argument("--max-words", type=int, default=None, help="drop queries with more words (default 64)")
    p.add_argument(
        "--copy-threshold",
        default=None,
        help="drop a query when a run of this share of its tokens is copied from the document (default 0.9; "
        "'none' disables the check)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed (default: the config's, 1)")
    p.add_argument("--index-dir", default=None, help="BM25 index folder (as for 'inpars retrieve')")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inpars.filtering import filter_queries, parse_step

    steps: list[dict[str, Any]] | None = None
    if args.step is not None:
        specs = [s for s in args.step if s.strip().lower() != "none"]
        steps = [parse_step(s).model_dump() for s in specs]
    fields: dict[str, Any] = {"steps": steps, "min_words": args.min_words, "max_words": args.max_words}
    if args.copy_threshold is not None:
        fields["copy_threshold"] = _threshold(args.copy_threshold)
    cfg = resolve_config(args, "filter", {k: v for k, v in fields.items() if k != "copy_threshold"}, dataset=args.dataset)
    if "copy_threshold" in fields:
        cfg.filter.copy_threshold = fields["copy_threshold"]
    if args.seed is not None:
        cfg.seed = args.seed
    if not cfg.dataset.name:
        raise ConfigError("no dataset: give --dataset or a --config with dataset.name")
    bm25 = cfg.retrieve.index_params()
    report = filter_queries(
        args.input,
        args.out,
        dataset=cfg.dataset.name,
        seed=cfg.seed,
        index_dir=args.index_dir,
        bm25=bm25,
        **cfg.filter.model_dump(),
    )
    print(report.summary())
    return 0


def _threshold(value: str) -> float | None:
    if value.strip().lower() == "none":
        return None
    try:
        x = float(value)
    except ValueError:
        x = -1.0
    if not 0 < x <= 1:
        raise ConfigError(f"--copy-threshold must be a number in (0, 1] or 'none', got '{value}'")
    return x
