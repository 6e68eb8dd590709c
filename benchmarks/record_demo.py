"""Record a `make demo` run as benchmarks/results/demo.json (the README's first results row).

    /usr/bin/time -f %e make demo      # from a fresh clone: note the wall time and the install's share
    python benchmarks/record_demo.py --run runs/demo --wall 998 --install 182 --where "fresh clone, ..."

Stage times come from the run's manifests, the figures from its metrics.json, the decision from its
fusion.json: nothing is typed in but the wall-clock times, which only the shell measured.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def record(run_dir: Path, wall: float, install: float, where: str, config: str) -> dict[str, Any]:
    from inpars.layout import STAGES, output_path, stage_dir

    stages: dict[str, float] = {}
    for name in STAGES:
        manifest = stage_dir(run_dir, name) / "manifest.json"
        if manifest.is_file():
            stages[name] = float(json.loads(manifest.read_text(encoding="utf-8")).get("seconds") or 0.0)
    metrics = json.loads(output_path(run_dir, "evaluate", "metrics").read_text(encoding="utf-8"))
    fusion = json.loads(output_path(run_dir, "rerank", "fusion").read_text(encoding="utf-8"))
    return {
        "benchmark": "demo", "config": config, "command": "time make demo", "where": where,
        "label_free": not fusion.get("supervised", False), "wall_seconds": wall,
        "pipeline_seconds": round(wall - install, 2), "install_seconds": install, "stage_seconds": stages,
        "n_test_queries": metrics["n_queries"], "aggregate": metrics["aggregate"],
        "pvalues_vs_bm25": metrics["pvalues"],
        "pseudo_dev": {k: fusion.get(k) for k in ("alpha", "alpha_source", "table", "selected_model", "queries",
                                                   "reason", "evidence", "comparison")}
        | {"selection": fusion.get("selection_pseudo_dev")},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="runs/demo", help="the demo's run folder")
    p.add_argument("--wall", type=float, required=True, help="wall seconds of `make demo`, install included")
    p.add_argument("--install", type=float, required=True, help="seconds the install step took")
    p.add_argument("--where", required=True, help="the machine and how it was run")
    p.add_argument("--config", default="examples/demo.yaml")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "demo.json"))
    args = p.parse_args()
    out = record(Path(args.run), args.wall, args.install, args.where, args.config)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
