"""``inpars retrieve``: BM25 first-stage run of a dataset split (the index is cached and reused)."""

from __future__ import annotations

import argparse
from typing import Any

from inpars.cli._common import add_config_arg, resolve_config
from inpars.errors import ConfigError


def add_parser(subparsers: Any) -> None:
    from inpars.config import BM25_B, BM25_K1, BM25_STEMMER, BM25_STOPWORDS

    p = subparsers.add_parser(
        "retrieve",
        help="BM25 run (TREC format) of a dataset split",
        description=(
            "Retrieve with BM25 (Lucene variant, bm25s) for every query of a split and write a TREC run. "
            "The index is built once per corpus and parameters, then reused from --index-dir "
            "(default: $INPARS_CACHE/indexes, else ~/.cache/inpars/indexes)."
        ),
    )
    add_config_arg(p)
    p.add_argument("--dataset", "-d", help="BEIR folder, name under $INPARS_DATA_HOME, or irds:ID")
    p.add_argument("--split", default=None, help="query split (default: dataset.eval_split, 'test')")
    p.add_argument("--out", "-o", required=True, help="TREC run to write")
    p.add_argument("--k", type=int, default=None, help="documents per query (default 1000, capped at corpus size)")
    p.add_argument("--k1", type=float, default=None, help=f"BM25 k1 (default {BM25_K1})")
    p.add_argument("--b", type=float, default=None, help=f"BM25 b (default {BM25_B})")
    p.add_argument(
        "--stopwords", default=None, help=f"bm25s stopword list (default '{BM25_STOPWORDS}'; 'none' for none)"
    )
    p.add_argument(
        "--stemmer", default=None, help=f"PyStemmer algorithm (default '{BM25_STEMMER}'; 'none' for none)"
    )
    p.add_argument("--index-dir", default=None, help="where the index is kept (reused when it matches)")
    p.add_argument("--tag", default="bm25", help="run tag, last column of the TREC run (default bm25)")
    p.set_defaults(func=run)


def _none_word(value: str | None) -> str | None:
    return None if value is None else ("" if value.lower() == "none" else value)


def run(args: argparse.Namespace) -> int:
    from inpars.retrieval import retrieve

    fields: dict[str, Any] = {
        "k": args.k,
        "k1": args.k1,
        "b": args.b,
        "stopwords": _none_word(args.stopwords),
        "stemmer": _none_word(args.stemmer),
    }
    cfg = resolve_config(args, "retrieve", fields, dataset=args.dataset)
    if not cfg.dataset.name:
        raise ConfigError("no dataset: give --dataset or a --config with dataset.name")
    params = cfg.retrieve.model_dump()
    params["stopwords"] = params["stopwords"] or None
    params["stemmer"] = params["stemmer"] or None
    split = args.split or cfg.dataset.eval_split
    run_dict = retrieve(
        cfg.dataset.name, split=split, index_dir=args.index_dir, out=args.out, tag=args.tag, seed=cfg.seed, **params
    )
    n_docs = sum(len(v) for v in run_dict.values())
    print(
        f"{args.out}: BM25 run of {len(run_dict)} {split} queries of {cfg.dataset.name}, {n_docs} lines "
        f"(k={params['k']}, k1={params['k1']}, b={params['b']})"
    )
    return 0
