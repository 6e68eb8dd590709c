"""``inpars negatives``: BM25 (or random) negatives for filtered queries -> training examples."""

from __future__ import annotations

import argparse
from typing import Any

from inpars.cli._common import add_config_arg, add_section_flags, resolve_config, section_values
from inpars.config import DatasetConfig, NegativesConfig, PipelineConfig
from inpars.errors import ConfigError


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "negatives",
        help="mine negatives and write training examples",
        description=(
            "For each query, sample negatives (seeded, per query) from its BM25 top --depth, skipping the first "
            "--skip-top hits, never its own document, a document with the same text, or (with --train-split) a "
            "judged-relevant document of a real query of that split; or from the whole corpus with --method "
            "random. Writes one JSON line per query: query_id, query, pos_doc_id, positive, neg_doc_ids, negatives."
        ),
    )
    add_config_arg(p)
    p.add_argument("--dataset", "-d", help="BEIR folder, name under $INPARS_DATA_HOME, or irds:ID")
    p.add_argument("--in", dest="input", required=True, help="filtered (or generated) queries (JSONL)")
    p.add_argument("--out", "-o", required=True, help="training examples to write (JSONL)")
    add_section_flags(p, NegativesConfig, helps={
        "depth": "sample from the BM25 top DEPTH",
        "skip_top": "never sample the first N BM25 hits (likely unlabelled positives)",
    })
    add_section_flags(p, DatasetConfig, skip={"name", "eval_split", "max_eval_queries"}, helps={
        "train_split": "opt-in: a labelled split; a query that is one of its real queries (same id or text) "
        "never gets a document judged relevant to it as a negative; default: none, label-free",
    })
    p.add_argument(
        "--seed", type=int, default=None, help=f"seed (default: the config's, {PipelineConfig.model_fields['seed'].default})"
    )
    p.add_argument("--index-dir", default=None, help="the folder of the BM25 index, as 'inpars retrieve --index-dir' (default: one under the cache)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inpars.negatives import mine_negatives

    cfg = resolve_config(args, "negatives", section_values(args, NegativesConfig), dataset=args.dataset)
    if "train_split" in (given := section_values(args, DatasetConfig)):
        cfg.dataset.train_split = given["train_split"]
    if args.seed is not None:
        cfg.seed = args.seed
    if not cfg.dataset.name:
        raise ConfigError("no dataset: give --dataset or a --config with dataset.name")
    from inpars.safety import check_output

    check_output(args.out, [args.input], cfg.dataset.name)
    bm25 = cfg.retrieve.index_params()
    summary = mine_negatives(
        args.input,
        args.out,
        dataset=cfg.dataset.name,
        seed=cfg.seed,
        index_dir=args.index_dir,
        bm25=bm25,
        qrels_split=cfg.dataset.train_split,
        **cfg.negatives.model_dump(),
    )
    print(summary.summary())
    return 0
