"""The packaged recipes side by side on SciFact: wall time per stage and nDCG@10, with paired t-tests
against BM25 and between the recipes' fused runs.

    python benchmarks/bench_recipes.py                          # quick and recommended, one after the other
    python benchmarks/bench_recipes.py --recipes quick          # one recipe (the comparison needs both)
    python benchmarks/bench_recipes.py --runs runs/new --run-dir recommended=runs/old/recommended

``--run-dir NAME=PATH`` gives one recipe its own run folder, such as a finished run of an earlier day: a run
whose stages are still current is reused as it is, and the result says so (``stages_run_now`` lists the
stages this invocation ran, ``stages_finished`` the first and last finishing time: the times of a reused
stage are its day's; compare them with care, the machine's speed drifts between days).

Each recipe runs unchanged (`inpars run --dataset scifact --recipe NAME`), label-free; only evaluate
reads the test judgements. A finished run folder is reused as it is (its manifests keep the stage
times of the run that made it). Writes benchmarks/results/recipes.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_recipe(name: str, dataset: str, run_dir: Path) -> dict[str, Any]:
    from inpars.layout import STAGES, output_path, stage_dir
    from inpars.pipeline import run_pipeline
    from inpars.recipes import recipe_config

    cfg = recipe_config(name, dataset, run_dir=str(run_dir))
    began = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())  # the manifests' UTC timestamps
    t0 = time.perf_counter()
    run_pipeline(cfg)
    wall = time.perf_counter() - t0
    stages: dict[str, float] = {}
    finished: list[str] = []
    ran: list[str] = []
    for stage in STAGES:
        manifest = stage_dir(cfg.run_dir, stage) / "manifest.json"
        if manifest.is_file() and stage != "report":
            record = json.loads(manifest.read_text(encoding="utf-8"))
            stages[stage] = round(float(record.get("seconds") or 0.0), 1)
            finished.append(str(record.get("finished", "")))
            if str(record.get("started", "")) >= began:
                ran.append(stage)
    metrics = json.loads(output_path(cfg.run_dir, "evaluate", "metrics").read_text(encoding="utf-8"))
    fusion = json.loads(output_path(cfg.run_dir, "rerank", "fusion").read_text(encoding="utf-8"))
    return {
        "run_dir": cfg.run_dir, "stage_seconds": stages, "stage_total_seconds": round(sum(stages.values()), 1),
        "this_invocation_seconds": round(wall, 1), "stages_finished": [min(finished), max(finished)],
        "stages_run_now": ran, "aggregate": metrics["aggregate"],
        "pvalues_vs_bm25": metrics["pvalues"],
        "decision": {k: fusion.get(k) for k in ("model", "alpha", "alpha_source", "reason", "evidence")},
        "_per_query": metrics["per_query"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", default="quick,recommended")
    p.add_argument("--dataset", default="scifact")
    p.add_argument("--runs", default="runs/bench_recipes")
    p.add_argument("--run-dir", action="append", default=[], metavar="NAME=PATH",
                   help="run folder of one recipe (default: RUNS/NAME)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "recipes.json"))
    args = p.parse_args()
    from inpars.evaluation import ttest_pvalue

    dirs = dict(item.split("=", 1) for item in args.run_dir)
    results = {name: run_recipe(name, args.dataset, Path(dirs.get(name) or Path(args.runs) / name))
               for name in args.recipes.split(",")}
    comparison = {}
    names = list(results)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            x = results[a]["_per_query"]["interpolated"]["nDCG@10"]
            y = results[b]["_per_query"]["interpolated"]["nDCG@10"]
            qids = sorted(x)
            comparison[f"{a} vs {b}"] = {
                "nDCG@10 difference": sum(x[q] - y[q] for q in qids) / len(qids),
                "ttest": ttest_pvalue([x[q] for q in qids], [y[q] for q in qids]),
                "time ratio": results[a]["stage_total_seconds"] / max(results[b]["stage_total_seconds"], 1e-9),
            }
    for r in results.values():
        del r["_per_query"]
    out = {"benchmark": "recipes", "dataset": args.dataset, "recipes": results, "comparison": comparison,
           "machine": f"{platform.processor() or platform.machine()}, 2 CPU cores, no GPU",
           "date": time.strftime("%Y-%m-%d")}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: {"stage_total_seconds": v["stage_total_seconds"],
                          "fused": v["aggregate"]["interpolated"]["nDCG@10"]} for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
