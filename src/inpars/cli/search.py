"""``inpars search RUN_DIR``: rank new queries with what a run chose (BM25, its model, its fusion weight)."""

from __future__ import annotations

import argparse
from typing import Any

from inpars.errors import ConfigError


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "search",
        help="rank your queries with the ranker a run built (BM25 + its model + its fusion weight)",
        description=(
            "Apply the ranker of a finished 'inpars run' (RUN_DIR/07-rerank/ranker.json) to queries: BM25 over "
            "the run's index, the top documents rescored by the model the run chose and fused with BM25 at the "
            "weight it chose, the rest in BM25 order. No judgement is read. Writes a TREC run with --out; "
            "without it, prints the top hits of each query."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder of 'inpars run'")
    p.add_argument("--queries", metavar="FILE", help="queries: TSV 'id<TAB>text' or JSONL {_id, text}")
    p.add_argument("--query", action="append", default=[], metavar="TEXT",
                   help="a query given on the command line (repeatable; numbered 1, 2, ...)")
    p.add_argument("--out", "-o", help="TREC run to write (default: print the top --show hits)")
    p.add_argument("--k", type=int, default=None, help="documents kept per query (default: the run's retrieve.k)")
    p.add_argument("--show", type=int, default=5, help="hits printed per query without --out")
    p.add_argument("--dataset", "-d", default=None, help="the collection, when it moved since the run")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (speed only)")
    p.add_argument("--batch-size", type=int, default=32, help="pairs per scoring batch (speed only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inpars.ranker import Ranker
    from inpars.runfiles import read_queries_file
    from inpars.safety import check_output, check_threads

    if bool(args.queries) == bool(args.query):
        raise ConfigError("give the queries: --queries FILE or --query TEXT")
    for flag, value in (("--k", args.k), ("--show", args.show), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    check_threads(args.threads)
    if args.out:
        check_output(args.out, [args.queries], args.dataset)
    queries = read_queries_file(args.queries) if args.queries else {str(i): q for i, q in enumerate(args.query, 1)}
    if not queries:
        raise ConfigError(f"{args.queries} holds no query")
    ranker = Ranker.load(args.run_dir, threads=args.threads, batch_size=args.batch_size, dataset=args.dataset)
    try:
        result = ranker.search(queries, k=args.k)
    finally:
        ranker.close()
    if args.out:
        ranker.write(result, args.out)
        print(f"{args.out}: {len(result)} queries ranked ({ranker.describe()})")
        return 0
    docs = ranker.dataset.docs()
    for qid, text in queries.items():
        print(f"{qid}\t{text}")
        hits = sorted(result.get(qid, {}).items(), key=lambda x: (-x[1], x[0]))[: args.show]
        for rank, (doc_id, score) in enumerate(hits, 1):
            doc = docs[doc_id]
            snippet = " ".join((doc.title or doc.text).split())[:80]
            print(f"  {rank:>2}. {doc_id}\t{score:.4f}\t{snippet}")
    return 0
