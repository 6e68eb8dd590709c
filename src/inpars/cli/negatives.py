"""``inpars negatives``: BM25 (or random) negatives for filtered queries -> training examples."""

from __future__ import annotations

import argparse
from typing import Any

from inpars.cli._common import add_config_arg, resolve_config
from inpars.config import NegativesConfig, PipelineConfig
from inpars.errors import ConfigError
from inpars.negatives import METHODS


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "negatives",
        help="mine negatives and write training examples",
        description=(
            "For each query, sample negatives (seeded, per query) from its BM25 top --depth, skipping the first "
            "--skip-top hits, never its own document, a document with the same text, or a judged-relevant "
            "document of a real train query; or from the whole corpus with --method random. Writes one JSON "
            "line per query: query_id, query, pos_doc_id, positive, neg_doc_ids, negatives."
        ),
    )
    add_config_arg(p)
    p.add_argument("--dataset", "-d", help="BEIR folder, name under $INPARS_DATA_HOME, or irds:ID")
    p.add_argument("--in", dest="input", required=True, help="filtered (or generated) queries (JSONL)")
    p.add_argument("--out", "-o", required=True, help="training examples to write (JSONL)")
    d = {k: f.default for k, f in NegativesConfig.model_fields.items()}
    p.add_argument("--method", choices=METHODS, default=None, help=f"where negatives come from (default {d['method']})")
    p.add_argument("--n-negatives", type=int, default=None, help=f"negatives per query (default {d['n_negatives']})")
    p.add_argument("--depth", type=int, default=None, help=f"sample from the BM25 top DEPTH (default {d['depth']})")
    p.add_argument(
        "--skip-top", type=int, default=None, help=f"never sample the first N BM25 hits (default {d['skip_top']})"
    )
    p.add_argument(
        "--seed", type=int, default=None, help=f"seed (default: the config's, {PipelineConfig.model_fields['seed'].default})"
    )
    p.add_argument("--index-dir", default=None, help="BM25 index folder (as for 'inpars retrieve')")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inpars.negatives import mine_negatives

    fields = {"method": args.method, "n_negatives": args.n_negatives, "depth": args.depth, "skip_top": args.skip_top}
    cfg = resolve_config(args, "negatives", fields, dataset=args.dataset)
    if args.seed is not None:
        cfg.seed = args.seed
    if not cfg.dataset.name:
        raise ConfigError("no dataset: give --dataset or a --config with dataset.name")
    bm25 = cfg.retrieve.index_params()
    summary = mine_negatives(
        args.input,
        args.out,
        dataset=cfg.dataset.name,
        seed=cfg.seed,
        index_dir=args.index_dir,
        bm25=bm25,
        **cfg.negatives.model_dump(),
    )
    print(summary.summary())
    return 0
