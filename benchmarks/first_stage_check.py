"""Two more uses of the synthetic queries and the bi-encoder, checked on finished label-free ablation runs.

Usage (after ``benchmarks/ablation_labelfree.py`` has run the variants under ``--runs``)::

    INPARS_DATA_HOME=/tmp/nolabels python benchmarks/first_stage_check.py --runs runs/ablation_full \\
        --variants zero-shot,mnrl-consistency-wise [--out benchmarks/results/first_stage_check.json]

The ablation's runs rerank BM25's top ``rerank.depth`` with the bi-encoder and fuse the two scores. This
script measures, with the same runs' settings and nothing tuned on test:

- **doc2query expansion** (Nogueira et al. 2019; doc2query--, Gospodinov et al. 2023): BM25 (the run's
  index parameters) over each document followed by the queries generated for it: all of them
  (``02-generate``), or only those the last variant's filter kept (``03-filter``);
- **hybrid candidates**: each variant's bi-encoder retrieves its own top ``depth`` from the whole collection;
  the union with BM25's top ``depth`` is fused by the same min-max interpolation (a document BM25 did not
  return in its top ``retrieve.k`` counts as BM25's lowest score) at the weight the variant's run chose on
  its pseudo-dev set (the rerank stage's ``fusion.json``), against the run's own reranking of BM25's top ``depth``
  at that weight.

Each figure gets a paired t-test against BM25, and each trained variant's fused runs one against the first
variant's (the zero-shot model) under the same candidates. The test judgements are read only to evaluate,
as the evaluate stage reads them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from inpars.layout import output_path, stage_dir

ROOT = Path(__file__).resolve().parents[1]
MEASURES = ("nDCG@10", "R@100")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", required=True, help="the ablation's --runs folder")
    ap.add_argument("--variants", default="zero-shot,mnrl-consistency-wise",
                    help="comma-separated finished variants; the first is the reference (zero-shot)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "first_stage_check.json"))
    args = ap.parse_args(argv)

    import ir_measures
    import numpy as np

    from inpars.datasets import evaluation_access, load_dataset
    from inpars.evaluation import per_query_values, ttest_pvalue
    from inpars.families.bi_encoder import BiEncoderScorer
    from inpars.fusion import interpolate
    from inpars.generate import read_generated
    from inpars.models import resolve_model
    from inpars.records import Document
    from inpars.records import Run as RunDict
    from inpars.retrieval import BM25Index
    from inpars.runfiles import ranked, read_run_dict
    from inpars.training import saved_model_path

    names = args.variants.split(",")
    runs = Path(args.runs)
    cfg = json.loads((runs / names[-1] / "config.json").read_text(encoding="utf-8"))
    depth, max_length = cfg["rerank"]["depth"], cfg["rerank"]["max_length"]
    ds = load_dataset(cfg["dataset"]["name"])
    split = cfg["dataset"]["eval_split"]
    docs = {d.doc_id: d for d in ds.docs_iter()}
    doc_ids = list(docs)
    column = {d: j for j, d in enumerate(doc_ids)}
    queries = ds.queries(split)
    qids = list(queries)
    with evaluation_access():
        qrels = ds.qrels_dict(split)
    measures = [ir_measures.parse_measure(m) for m in MEASURES]

    def per_query(run: RunDict) -> dict[str, list[float]]:
        values = per_query_values(qrels, run, measures, qids)
        return {m: [values[m][q] for q in qids] for m in MEASURES}

    rows: dict[str, Any] = {}
    bm25_run = read_run_dict(runs / names[-1] / "01-retrieve" / f"bm25.{split}.trec")
    bm25 = per_query(bm25_run)

    def versus(values: dict[str, list[float]], ref: dict[str, list[float]]) -> dict[str, float]:
        """nDCG@10 difference and paired t-test p-value of ``values`` against ``ref``."""
        a, b = values["nDCG@10"], ref["nDCG@10"]
        return {"delta": round(float(np.mean(a) - np.mean(b)), 4), "p": round(ttest_pvalue(a, b), 4)}

    def row(name: str, run: RunDict, against: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
        values = per_query(run)
        rows[name] = {m: round(float(np.mean(values[m])), 4) for m in MEASURES}
        rows[name]["vs_bm25"] = versus(values, bm25)
        if against is not None:
            rows[name]["vs_zero_shot"] = versus(values, against)
        print(name, rows[name], flush=True)
        return values

    row("bm25", bm25_run)
    index_params = {k: cfg["retrieve"][k] for k in ("k1", "b", "stopwords", "stemmer")}
    sources = {"doc2query all": runs / names[-1] / "02-generate" / "queries.jsonl",
               "doc2query filtered": runs / names[-1] / "03-filter" / "filtered.jsonl"}
    expansions: dict[str, int] = {}
    for name, path in sources.items():
        written: dict[str, list[str]] = defaultdict(list)
        for record in read_generated(path):
            written[record.doc_id].append(record.query)
        expansions[name] = sum(map(len, written.values()))
        index = BM25Index.build([Document(d, doc.full_text + "\n" + "\n".join(written.get(d, [])))
                                 for d, doc in docs.items()], **index_params)
        row(f"{name} (BM25)", index.search(queries, k=cfg["retrieve"]["k"]))

    bm25_top = {q: dict(ranked(bm25_run.get(q, {}))[:depth]) for q in qids}
    reference: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, float] = {}
    for name in names:
        run_dir = runs / name
        trained = saved_model_path(stage_dir(run_dir, "train"))
        source = str(trained) if trained.is_dir() else resolve_model(
            json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["rerank"]["model"])
        alpha = json.loads(output_path(run_dir, "rerank", "fusion").read_text(encoding="utf-8"))["alpha"]
        start = time.perf_counter()
        encoder = BiEncoderScorer(source, batch_size=64, max_length=max_length, device="cpu")
        doc_vecs = encoder.encode([docs[d].full_text for d in doc_ids])
        query_vecs = encoder.encode([queries[q] for q in qids])
        scores = query_vecs @ doc_vecs.T
        seconds[name] = round(time.perf_counter() - start, 1)
        dense_top = {q: {doc_ids[j]: float(scores[i, j]) for j in np.argsort(-scores[i])[:depth]}
                     for i, q in enumerate(qids)}
        row(f"{name} dense retrieval", dense_top)
        for kind, candidates in (("rerank", bm25_top),
                                 ("hybrid", {q: {**bm25_top[q], **dense_top[q]} for q in qids})):
            dense = {q: {d: float(scores[i, column[d]]) for d in candidates[q]} for i, q in enumerate(qids)}
            first = {q: {d: bm25_run.get(q, {}).get(d, 0.0) for d in candidates[q]} for q in qids}
            against = reference.get(kind)
            values = row(f"{name} {kind} fused (alpha {alpha})", interpolate(first, dense, alpha), against)
            reference.setdefault(kind, values)

    out = {
        "benchmark": "first_stage_check",
        "runs": str(runs),
        "variants": names,
        "queries": len(qids),
        "depth": depth,
        "expansion_queries": expansions,
        "rows": rows,
        "encode_seconds": seconds,
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print("->", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
