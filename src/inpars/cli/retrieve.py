"""``inpars retrieve``: BM25 first-stage run of a dataset split (the index is cached and reused)."""

from __future__ import annotations

import argparse
from typing import Any

from inpars.cli._common import add_config_arg, add_section_flags, resolve_config, section_values
from inpars.config import RetrieveConfig
from inpars.errors import ConfigError


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "retrieve",
        help="BM25 run (TREC format) of a dataset split",
        description=(
            "Retrieve with BM25 (Lucene variant, bm25s) for every query of a split and write a TREC run. "
            "The index is built once per corpus and parameters, then reused from --index-dir (default: one "
            "folder per corpus and parameters under $INPARS_CACHE/indexes/, else ~/.cache/inpars/indexes/)."
        ),
    )
    add_config_arg(p)
    p.add_argument("--dataset", "-d", help="BEIR folder, name under $INPARS_DATA_HOME, or irds:ID")
    p.add_argument("--split", default=None,
                   help="query split (default: dataset.eval_split, 'test'; all queries when the dataset has no qrels)")
    p.add_argument("--queries", default=None, metavar="FILE",
                   help="retrieve for the queries of this file instead (TSV 'id<TAB>text' or JSONL {_id, text})")
    p.add_argument("--out", "-o", required=True, help="TREC run to write")
    add_section_flags(p, RetrieveConfig, helps={"k": "documents per query (capped at the corpus size)"})
    p.add_argument("--index-dir", default=None, help="the folder of this one index, new or holding an index "
                   "(reused when its corpus and parameters match, else rebuilt there); default: a folder per corpus "
                   "and parameters under the cache")
    p.add_argument("--tag", default="bm25", help="run tag, last column of the TREC run (default bm25)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inpars.retrieval import retrieve

    fields = section_values(args, RetrieveConfig)
    cfg = resolve_config(args, "retrieve", fields, dataset=args.dataset)
    for key, value in fields.items():
        if value is None:  # '--stopwords none', '--stemmer none'
            setattr(cfg.retrieve, key, None)
    if not cfg.dataset.name:
        raise ConfigError("no dataset: give --dataset or a --config with dataset.name")
    params = cfg.retrieve.model_dump()
    params["stopwords"] = params["stopwords"] or None
    params["stemmer"] = params["stemmer"] or None
    from inpars.datasets import load_dataset, select_queries
    from inpars.safety import check_output

    check_output(args.out, [args.queries, getattr(args, "config", None)], cfg.dataset.name)
    ds = load_dataset(cfg.dataset.name)
    chosen: dict[str, Any] = {}
    if args.queries or not ds.splits():  # a queries file, or a collection without judgements
        chosen["queries"], where = select_queries(ds, args.split, args.queries, default_split=cfg.dataset.eval_split or "test")
    else:
        chosen["split"] = args.split or cfg.dataset.eval_split or "test"
        where = f"{chosen['split']} queries of {cfg.dataset.name}"
    run_dict = retrieve(ds, index_dir=args.index_dir, out=args.out, tag=args.tag, seed=cfg.seed, **chosen, **params)
    n_docs = sum(len(v) for v in run_dict.values())
    print(
        f"{args.out}: BM25 run of {len(run_dict)} {where}, {n_docs} lines "
        f"(k={params['k']}, k1={params['k1']}, b={params['b']})"
    )
    return 0
