"""The generator as a zero-shot reranker (UPR: mean log P(query | document)), against BM25 and MiniLM.

Usage::

    INPARS_DATA_HOME=... python benchmarks/bench_upr.py [--first-stage runs/ablation/zero-shot/01-retrieve/bm25.test.trec]
        [--queries 100] [--depth 10] [--model smollm2-135m] [--out benchmarks/results/upr.json]

Reranks the BM25 top ``--depth`` of the first ``--queries`` test queries (sorted ids) with
``model_type: query-likelihood`` and with the zero-shot all-MiniLM-L6-v2 bi-encoder, and reports nDCG@10
of each (alone: the documents below ``--depth`` keep their BM25 order) with paired t-tests against BM25,
plus the scoring speed. No choice is made from the figures: it answers whether UPR with the packaged
generator is worth its cost on this machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--split", default="test")
    ap.add_argument("--first-stage", default=str(ROOT / "runs/ablation/zero-shot/01-retrieve/bm25.test.trec"))
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--max-length", type=int, default=192, help="document tokens")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/upr.json"))
    args = ap.parse_args(argv)

    from inpars.datasets import evaluation_access, load_dataset, read_run_dict
    from inpars.evaluation import parse_measures, per_query_values, ttest_pvalue
    from inpars.rerank import load_scorer
    from inpars.reranking import rerank_and_fuse

    ds = load_dataset(args.dataset)
    first_all = read_run_dict(args.first_stage)
    qids = sorted(first_all)[: args.queries]
    first = {q: first_all[q] for q in qids}
    texts = ds.queries(args.split)
    queries = {q: texts[q] for q in qids}
    runs = {"bm25": first}
    speed = {}
    for name, model, kind, length in (("upr", args.model, "query-likelihood", args.max_length),
                                      ("minilm zero-shot", "minilm-l6", "bi-encoder", 256)):
        t = time.perf_counter()
        scorer = load_scorer(model, kind, max_length=length, batch_size=8)
        load = time.perf_counter() - t
        fused = rerank_and_fuse(ds, first, queries, scorer, depth=args.depth)
        runs[name] = fused.reranked
        speed[name] = {"load_seconds": round(load, 1), "pairs": fused.pairs, "seconds": round(fused.seconds, 1),
                       "pairs_per_second": round(fused.pairs / max(fused.seconds, 1e-9), 2)}
    with evaluation_access():
        qrels = ds.qrels_dict(args.split)
    m = parse_measures(["nDCG@10"])
    per = {k: per_query_values(qrels, v, m, query_ids=qids)["nDCG@10"] for k, v in runs.items()}
    mean = {k: round(sum(v.values()) / len(qids), 4) for k, v in per.items()}
    out = {
        "benchmark": "upr",
        "what": f"{args.dataset} {args.split}: BM25 top {args.depth} reranked, first {len(qids)} queries, nDCG@10",
        "model": args.model, "depth": args.depth, "queries": len(qids), "nDCG@10": mean,
        "p_vs_bm25": {k: round(ttest_pvalue([per[k][q] for q in qids], [per["bm25"][q] for q in qids]), 4)
                      for k in runs if k != "bm25"},
        "speed": speed, "machine": "2 CPU cores, no GPU", "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
