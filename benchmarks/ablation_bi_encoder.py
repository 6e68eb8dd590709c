"""Does training on synthetic queries help? Fine-tuned bi-encoders against the zero-shot one, on SciFact test.

Usage: python benchmarks/ablation_bi_encoder.py [--run NAME=RUN_DIR ...] [--baseline zero-shot]
       [--out benchmarks/results/ablation_bi_encoder.json]

Each ``RUN_DIR`` is a finished ``inpars run`` folder with a bi-encoder rerank stage (``06-rerank``):
by default

- ``zero-shot``: ``benchmarks/scifact_zeroshot.yaml``, the packaged all-MiniLM-L6-v2 with no training;
- ``fine-tuned``: ``benchmarks/scifact_dense.yaml``, fine-tuned on the queries kept by the log-prob
  filter (3 BM25 negatives each);
- ``fine-tuned-all``: ``benchmarks/scifact_dense_all.yaml``, fine-tuned on all checked queries (1 BM25
  negative each);
- ``fine-tuned-gemma``: ``benchmarks/scifact_dense_gemma.yaml``, the same with Gemma-3-270M as the
  generator.

Every run tuned its interpolation weight on the same 100 train queries (the rerank manifest's
``alpha_table``, reported here as the train evidence); this script reads only what the runs wrote and
evaluates on the test judgements: BM25, each reranker alone and each interpolation, with paired t-tests
and permutation tests (``inpars.evaluation``) against ``--baseline`` and against BM25. Run the runs
first: ``inpars run benchmarks/scifact_zeroshot.yaml`` and the others.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("INPARS_DATA_HOME", str(ROOT.parent / "shared" / "data"))

DEFAULT_RUNS = {
    "zero-shot": "runs/scifact_zeroshot",
    "fine-tuned": "runs/scifact_dense",
    "fine-tuned-all": "runs/scifact_dense_all",
    "fine-tuned-gemma": "runs/scifact_dense_gemma",
}
MEASURES = ["nDCG@10", "AP@1000", "RR@10"]


def _rerank_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "06-rerank" / "manifest.json"
    if not path.is_file():
        raise SystemExit(f"{path}: missing; run the pipeline for {run_dir} first (at least --until rerank)")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    summary = manifest.get("summary") or {}
    if "alpha" not in summary:
        raise SystemExit(f"{path}: no interpolation weight (rerank.interpolate was off)")
    model = manifest.get("config", {}).get("model_type")
    return {"alpha": summary["alpha"], "alpha_table_train": summary["alpha_table"], "model_type": model}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", default=[], metavar="NAME=RUN_DIR",
                    help="a run folder to compare (repeatable); default: the three of the docstring that exist")
    ap.add_argument("--baseline", default="zero-shot")
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ablation_bi_encoder.json"))
    args = ap.parse_args(argv)

    from inpars.evaluation import evaluate_dataset

    if args.run:
        chosen = dict(r.split("=", 1) for r in args.run)
    else:
        chosen = {k: v for k, v in DEFAULT_RUNS.items() if (ROOT / v / "06-rerank" / "manifest.json").is_file()}
    if args.baseline not in chosen:
        raise SystemExit(f"baseline '{args.baseline}' is not among the runs {sorted(chosen)}")
    dirs = {name: (ROOT / d if not Path(d).is_absolute() else Path(d)) for name, d in chosen.items()}
    train = {name: _rerank_summary(d) for name, d in dirs.items()}

    bm25 = dirs[args.baseline] / "01-retrieve" / f"bm25.{args.split}.trec"
    runs: dict[str, Path] = {"bm25": bm25}
    for name, d in dirs.items():
        runs[name] = d / "06-rerank" / f"interpolated.{args.split}.trec"
        runs[f"{name} alone"] = d / "06-rerank" / f"reranked.{args.split}.trec"

    vs_base = evaluate_dataset(args.dataset, args.split, runs, measures=MEASURES, baseline=args.baseline)
    vs_bm25 = evaluate_dataset(args.dataset, args.split, runs, measures=MEASURES, baseline="bm25")
    print(f"against {args.baseline} (interpolated):\n{vs_base.to_text()}\n")
    print(f"against BM25:\n{vs_bm25.to_text()}")

    report = {
        "benchmark": "ablation_bi_encoder",
        "what": "SciFact test: bi-encoders fine-tuned on synthetic queries vs the zero-shot one, each "
                "interpolated with BM25 at its own weight tuned on 100 train queries",
        "runs": {name: str(d.relative_to(ROOT)) if d.is_relative_to(ROOT) else str(d) for name, d in dirs.items()},
        "train_tuning": train,
        "split": args.split,
        "queries": len(vs_base.query_ids),
        "aggregate": {r: {m: round(v, 4) for m, v in ms.items()} for r, ms in vs_base.aggregate.items()},
        "pvalues_vs_baseline": vs_base.to_json()["pvalues"],
        "pvalues_vs_bm25": vs_bm25.to_json()["pvalues"],
        "baseline": args.baseline,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
