"""Probe (not a test): would a bi-encoder help where the trained cross-encoder does not?

Scores the BM25 top-100 of the first 100 SciFact *train* queries (the split the pipeline tunes on, never
test) with the packaged all-MiniLM-L6-v2 used as what it is, a bi-encoder (cosine of normalised
embeddings, no training), and interpolates with BM25 as ``inpars.fusion.interpolate`` does.

Usage: python benchmarks/probe_dense.py [--run runs/scifact/01-retrieve/bm25.train.trec]
       [--queries 100] [--out benchmarks/results/dense_probe_train.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("INPARS_DATA_HOME", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=str(ROOT / "runs" / "scifact" / "01-retrieve" / "bm25.train.trec"))
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dense_probe_train.json"))
    args = ap.parse_args(argv)

    import torch
    from sentence_transformers import SentenceTransformer

    from inpars.datasets import load_dataset, ranked, read_run_dict
    from inpars.evaluation import evaluate_dataset
    from inpars.fusion import interpolate
    from inpars.models import resolve_model

    torch.set_num_threads(args.threads)
    ds = load_dataset("scifact")
    docs, queries = ds.docs(), ds.queries("train")
    full = read_run_dict(args.run)
    qids = list(full)[: args.queries]
    first = {q: dict(ranked(full[q])[: args.depth]) for q in qids}
    need = sorted({d for q in qids for d in first[q]})
    model = SentenceTransformer(resolve_model("minilm-l6"), device="cpu")
    model.max_seq_length = 256
    t = time.perf_counter()
    doc_emb = model.encode([docs[d].full_text for d in need], batch_size=32, normalize_embeddings=True)
    encode_s = time.perf_counter() - t
    q_emb = model.encode([queries[q] for q in qids], normalize_embeddings=True)
    row = {d: i for i, d in enumerate(need)}
    dense = {q: {d: float(doc_emb[row[d]] @ q_emb[j]) for d in first[q]} for j, q in enumerate(qids)}
    runs = {"bm25": first, "dense": dense}
    alphas = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    for a in alphas:
        runs[f"interpolated@{a}"] = interpolate(first, dense, a)
    ev = evaluate_dataset(ds, "train", runs, measures=["nDCG@10"], tests=[], query_ids=qids)
    ndcg = {name: round(float(v["nDCG@10"]), 4) for name, v in ev.aggregate.items()}
    report = {
        "probe": "zero-shot all-MiniLM-L6-v2 bi-encoder over BM25, SciFact train queries",
        "queries": len(qids),
        "depth": args.depth,
        "docs_encoded": len(need),
        "docs_per_second": round(len(need) / encode_s, 1),
        "nDCG@10": ndcg,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
