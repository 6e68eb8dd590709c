"""Label-free ablation on SciFact: which use of the synthetic queries pays, against BM25 and zero-shot.

Usage::

    python ../shared/data/unlabeled_copy.py ../shared/data/scifact /tmp/nolabels/scifact
    INPARS_DATA_HOME=/tmp/nolabels python benchmarks/ablation_labelfree.py [--variants a,b,...]
        [--base benchmarks/scifact.yaml] [--runs runs/ablation] [--out benchmarks/results/ablation_labelfree.json]

Every variant is ``--base`` with a few settings changed (:data:`VARIANTS`, fixed before any test figure of
it existed) and runs as ``inpars run`` in its own folder under ``--runs``; the stages it shares with an
earlier variant (BM25, generation, filtering, ...) are copied from the earlier variant with the most of them
that the pipeline would take as its own (:func:`inpars.pipeline.reusable_stages`) and skipped as up to date,
so all variants train on the same synthetic queries. No stage reads judgements: the dataset folder should
hold only ``qrels/test.tsv`` (the script refuses one with a ``train`` split unless ``--allow-train``).

Choices come from the pseudo-dev set only: each run tunes its own fusion weight on the synthetic queries of
held-out documents (the same documents and queries for every variant with the same generator), and the
script names as ``selected`` the variant with the best fused nDCG@10 there, among the variants whose
pseudo-dev set is the first variant's (another generator writes a set of its own, whose figures do not
compare). The test judgements are read once, at the end, for the table: each variant's reranker alone and
fused, with paired t-tests against BM25 and against the
zero-shot model under the same fusion (``zero-shot`` must be among the variants for the latter).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from inpars.layout import output_path

ROOT = Path(__file__).resolve().parents[1]

#: the round-trip filter of the *-consistency variants: keep a query when the zero-shot bi-encoder ranks its
#: document in its top 3 of BM25's 100
CONSISTENCY = [{"name": "consistency", "model": "minilm-l6", "top_k": 3, "depth": 100,
                "options": {"model_type": "bi-encoder"}}]


def per_doc(k: int) -> dict[str, Any]:
    """The step that keeps a document's ``k`` queries the round trip ranks best (after :data:`CONSISTENCY`)."""
    return {"name": "per_doc", "top_k": k, "options": {"by": "consistency_rank"}}


#: name -> (what it tests, dotted overrides of the base config). ``zero-shot`` is the untrained model.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "zero-shot": ("all-MiniLM-L6-v2 as it ships, no training (the InPars claim's reference)",
                  {"rerank.model": "minilm-l6", "rerank.model_type": "bi-encoder"}),
    "gpl": ("GPL: 1 negative mined by the zero-shot bi-encoder (its ranks 4-100 of BM25's 100), margin-MSE "
            "on fused BM25 + zero-shot dense pseudo-labels",
            {"negatives.method": "dense", "negatives.teacher": "fused", "train.loss": "margin-mse",
             "rerank.select_start": False}),
    "mnrl-bm25": ("fine-tuned with in-batch negatives + 1 BM25 negative (ranks 4-100)",
                  {"rerank.select_start": False}),
    "mnrl-dense": ("fine-tuned with in-batch negatives + 1 negative mined by the zero-shot bi-encoder",
                   {"negatives.method": "dense", "negatives.teacher": "fused", "rerank.select_start": False}),
    "gpl-consistency": ("gpl on the queries whose document the zero-shot bi-encoder ranks in its top 3 "
                        "of BM25's 100 (round trip)",
                        {"negatives.method": "dense", "negatives.teacher": "fused", "train.loss": "margin-mse",
                         "rerank.select_start": False, "filter.steps": CONSISTENCY}),
    "mnrl-consistency": ("mnrl-bm25 on the queries whose document the zero-shot bi-encoder ranks in its top 3 "
                         "of BM25's 100 (round trip)",
                         {"rerank.select_start": False, "filter.steps": CONSISTENCY}),
    "mnrl-consistency-2ep": ("mnrl-consistency trained for 2 epochs instead of 1",
                             {"rerank.select_start": False, "train.epochs": 2, "filter.steps": CONSISTENCY}),
    "mnrl-consistency-wise": ("mnrl-consistency with its saved weights averaged half and half with the start "
                              "checkpoint's (WiSE-FT; 0.5 is the paper's default share)",
                              {"rerank.select_start": False, "train.average_start": 0.5, "filter.steps": CONSISTENCY}),
    "mnrl-consistency-nodup": ("mnrl-consistency with batches packed so that no text appears twice in one "
                               "(sentence-transformers' NoDuplicatesBatchSampler: no in-batch negative is a copy "
                               "of a query's own positive)",
                               {"rerank.select_start": False, "train.batches": "no-duplicates",
                                "filter.steps": CONSISTENCY}),
    "mnrl-consistency-b64": ("mnrl-consistency-nodup with 64 groups per batch instead of 16 (four times the "
                             "in-batch negatives, a quarter of the steps)",
                             {"rerank.select_start": False, "train.batches": "no-duplicates",
                              "train.batch_size": 64, "filter.steps": CONSISTENCY}),
    "forms-consistency": ("mnrl-consistency with the inpars-forms prompt: the queries of a document in turn a "
                          "question, keywords and a claim (the forms of BEIR's queries), with the same examples",
                          {"generate.prompt": "inpars-forms", "rerank.select_start": False,
                           "filter.steps": CONSISTENCY}),
    "forms-consistency-wise": ("forms-consistency averaged half and half with the start checkpoint (WiSE-FT)",
                               {"generate.prompt": "inpars-forms", "rerank.select_start": False,
                                "train.average_start": 0.5, "filter.steps": CONSISTENCY}),
    "q8-consistency": ("mnrl-consistency with 8 sampled queries per document instead of 3 (Promptagator's "
                       "count): the round-trip filter then chooses among more candidates for each document",
                       {"generate.queries_per_doc": 8, "rerank.select_start": False, "filter.steps": CONSISTENCY}),
    "q8-consistency-wise": ("q8-consistency averaged half and half with the start checkpoint (WiSE-FT)",
                            {"generate.queries_per_doc": 8, "rerank.select_start": False,
                             "train.average_start": 0.5, "filter.steps": CONSISTENCY}),
    "q8-consistency-nodup": ("q8-consistency with batches packed so that no text appears twice in one (with up to "
                             "8 kept queries per document, a random batch often holds a document twice)",
                             {"generate.queries_per_doc": 8, "rerank.select_start": False,
                              "train.batches": "no-duplicates", "filter.steps": CONSISTENCY}),
    "q8-consistency-cap3": ("q8-consistency keeping at most 3 queries per document, those the round trip ranks "
                            "best (ties: the first sampled): the documents 8 samples cover, with no more queries "
                            "per document than the 3-sample recipe",
                            {"generate.queries_per_doc": 8, "rerank.select_start": False,
                             "filter.steps": [*CONSISTENCY, per_doc(3)]}),
    "q8-consistency-cap1": ("q8-consistency keeping 1 query per document, the one the round trip ranks best (ties: "
                            "the first sampled): one query for each document 8 samples cover",
                            {"generate.queries_per_doc": 8, "rerank.select_start": False,
                             "filter.steps": [*CONSISTENCY, per_doc(1)]}),
    "q8-consistency-cap3-wise": ("q8-consistency-cap3 averaged half and half with the start checkpoint (WiSE-FT)",
                                 {"generate.queries_per_doc": 8, "rerank.select_start": False,
                                  "train.average_start": 0.5, "filter.steps": [*CONSISTENCY, per_doc(3)]}),
    "q8-consistency-cap1-wise": ("q8-consistency-cap1 averaged half and half with the start checkpoint (WiSE-FT)",
                                 {"generate.queries_per_doc": 8, "rerank.select_start": False,
                                  "train.average_start": 0.5, "filter.steps": [*CONSISTENCY, per_doc(1)]}),
    "mnrl-bm25-wise": ("mnrl-bm25 with its saved weights averaged half and half with the start checkpoint's "
                       "(WiSE-FT)", {"rerank.select_start": False, "train.average_start": 0.5}),
    "gemma-consistency": ("mnrl-consistency with the queries (and the pseudo-dev set) written by Gemma-3-270M, "
                          "twice SmolLM2-135M's size, with the same prompt and sampling",
                          {"generate.model": "gemma3-270m", "rerank.select_start": False, "filter.steps": CONSISTENCY}),
    "gemma-consistency-wise": ("gemma-consistency averaged half and half with the start checkpoint (WiSE-FT)",
                               {"generate.model": "gemma3-270m", "rerank.select_start": False,
                                "train.average_start": 0.5, "filter.steps": CONSISTENCY}),
}
def _set(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    node = cfg
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def _prepare(name: str, base: dict[str, Any], runs: Path, done: list[Path], ds: Any) -> Path:
    """Write variant ``name``'s config and copy into its run folder the finished stages of the earlier
    variant it can take the most from (the latest on a tie): those :func:`inpars.pipeline.reusable_stages`
    names, which the pipeline then skips as up to date (or extends: a training that differs only in its
    averaging share)."""
    from inpars.config import load_config
    from inpars.layout import stage_dir
    from inpars.pipeline import reusable_stages

    cfg = json.loads(json.dumps(base))
    for key, value in VARIANTS[name][1].items():
        _set(cfg, key, value)
    run_dir = runs / name
    cfg["run_dir"] = str(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = runs / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    config = load_config(path)
    best: tuple[Path | None, list[str]] = (None, [])
    for earlier in done:
        stages = reusable_stages(config, earlier, ds)
        if len(stages) >= len(best[1]):
            best = (earlier, stages)
    source, stages = best
    parts = [stage_dir(Path(), s).name for s in stages] + (["bm25-index"] if "retrieve" in stages else [])
    for part in parts:
        if source is not None and not (run_dir / part).exists() and (source / part).exists():
            shutil.copytree(source / part, run_dir / part)
    return path


def _stage_seconds(run_dir: Path) -> dict[str, float]:
    out = {}
    for manifest in sorted(run_dir.glob("0*/manifest.json")):
        m = json.loads(manifest.read_text(encoding="utf-8"))
        if "seconds" in m:
            out[m["stage"]] = round(float(m["seconds"]), 1)
    return out


def _stage_stamps(run_dir: Path) -> dict[str, int]:
    """Modification times of the stage manifests (the report, rebuilt by every invocation, left out)."""
    from inpars.layout import stage_dir

    report = stage_dir(run_dir, "report")
    return {p.parent.name: p.stat().st_mtime_ns for p in run_dir.glob("*/manifest.json") if p.parent != report}


def _pseudo_dev(run_dir: Path) -> dict[str, Any]:
    """The run's fusion table on its pseudo-dev set, and which set that is (``set``: its file's hash)."""
    from inpars.fingerprint import file_hash

    fusion = json.loads(output_path(run_dir, "rerank", "fusion").read_text(encoding="utf-8"))
    table = {float(k): v for k, v in fusion["table"].items()}
    return {"alpha": fusion["alpha"], "queries": fusion["queries"], "bm25": table.get(0.0),
            "alone": table.get(1.0), "fused": table[float(fusion["alpha"])], "table": fusion["table"],
            "set": file_hash(output_path(run_dir, "pseudo-dev", "queries"))[:16]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default=str(ROOT / "benchmarks" / "scifact.yaml"))
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names of VARIANTS")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "ablation"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ablation_labelfree.json"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a dotted override of the base for every variant (YAML value), e.g. "
                         "--set generate.doc_selection=clusters")
    ap.add_argument("--allow-train", action="store_true", help="run even if the dataset has a train split")
    ap.add_argument("--evaluate-only", action="store_true", help="only read finished runs and write the table")
    args = ap.parse_args(argv)

    from inpars.config import load_config
    from inpars.datasets import evaluation_access, load_dataset, read_run_dict
    from inpars.evaluation import evaluate_dataset, parse_measures, per_query_values, ttest_pvalue

    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    base = yaml.safe_load(Path(args.base).read_text(encoding="utf-8"))
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item}: expected KEY=VALUE")
        _set(base, key, yaml.safe_load(value))
    cfg0 = load_config(args.base)
    ds = load_dataset(cfg0.dataset.name)
    if ds.has_split("train") and not args.allow_train:
        raise SystemExit(f"{cfg0.dataset.name} has a train split: run on an unlabelled copy "
                         "(../shared/data/unlabeled_copy.py) or pass --allow-train")
    runs = Path(args.runs)
    done: list[Path] = []
    # a variant's wall_seconds is the time of the invocation that last ran one of its stages: kept from an
    # existing --out when this one only found them up to date (or only evaluates); none when no invocation
    # that wrote --out ran one (the time of finding them up to date is not the variant's)
    earlier = json.loads(Path(args.out).read_text(encoding="utf-8")).get("variants", {}) \
        if Path(args.out).is_file() else {}
    wall = {n: earlier[n]["wall_seconds"] for n in names if "wall_seconds" in earlier.get(n, {})}
    for name in names:
        config = _prepare(name, base, runs, done, ds)
        if not args.evaluate_only:
            before = _stage_stamps(runs / name)
            t = time.perf_counter()
            print(f"== {name}: inpars run {config}", flush=True)
            rc = subprocess.call([sys.executable, "-m", "inpars", "run", str(config)], env=os.environ.copy())
            if rc != 0:
                raise SystemExit(f"variant {name}: inpars run exited {rc}")
            if _stage_stamps(runs / name) != before:
                wall[name] = round(time.perf_counter() - t, 1)
        done.append(runs / name)

    split = cfg0.dataset.eval_split or "test"
    bm25 = read_run_dict(output_path(runs / names[0], "retrieve", "eval_run", eval_split=split))
    run_files: dict[str, Any] = {"bm25": bm25}
    for name in names:
        run_files[f"{name} alone"] = read_run_dict(output_path(runs / name, "rerank", "reranked", eval_split=split))
        run_files[f"{name} fused"] = read_run_dict(output_path(runs / name, "rerank", "interpolated", eval_split=split))
    measures = ["nDCG@10", "R@100", "AP@1000", "RR@10"]
    res = evaluate_dataset(ds, split, run_files, measures=measures, baseline="bm25", tests=["ttest"])
    with evaluation_access():
        qrels = ds.qrels_dict(split)
    ndcg = parse_measures(["nDCG@10"])
    per = {k: per_query_values(qrels, v, ndcg)["nDCG@10"] for k, v in run_files.items()}
    qids = sorted(per["bm25"])

    def mean(key: str) -> float:
        return round(sum(per[key][q] for q in qids) / len(qids), 4)

    def versus(key: str, ref: str) -> dict[str, float]:
        a, b = [per[key][q] for q in qids], [per[ref][q] for q in qids]
        return {"delta": round(mean(key) - mean(ref), 4), "p": round(ttest_pvalue(a, b), 4)}

    table: dict[str, Any] = {}
    for name in names:
        row: dict[str, Any] = {"what": VARIANTS[name][0], "overrides": VARIANTS[name][1],
                               "pseudo_dev": _pseudo_dev(runs / name), "stage_seconds": _stage_seconds(runs / name)}
        if name in wall:
            row["wall_seconds"] = wall[name]
        for kind in ("alone", "fused"):
            key = f"{name} {kind}"
            row[kind] = {"nDCG@10": mean(key), "vs_bm25": versus(key, "bm25")}
            if "zero-shot" in names and name != "zero-shot":
                row[kind]["vs_zero_shot"] = versus(key, f"zero-shot {kind}")
        table[name] = row
    # figures on different pseudo-dev sets (another generator's queries) do not compare: the choice is made
    # among the variants that share the first one's set
    comparable = [n for n in names if table[n]["pseudo_dev"]["set"] == table[names[0]]["pseudo_dev"]["set"]]
    selected = max(comparable, key=lambda n: (table[n]["pseudo_dev"]["fused"], -names.index(n)))
    out = {
        "benchmark": "ablation_labelfree",
        "what": "SciFact test, label-free variants (pseudo-dev choices only); paired t-tests on nDCG@10",
        "base_config": os.path.relpath(args.base, ROOT),
        "base_overrides": args.set,
        "queries": len(qids),
        "bm25": {"nDCG@10": mean("bm25")},
        "selected_by_pseudo_dev": selected,
        "selected_among": comparable,
        "variants": table,
        "aggregate": res.to_json().get("aggregate", {}),
        "date": time.strftime("%Y-%m-%d"),
        "machine": "2 CPU cores, no GPU",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"BM25 nDCG@10 {mean('bm25')} on {len(qids)} queries; selected by pseudo-dev: {selected}")
    for name in names:
        r = table[name]
        line = (f"{name:16s} pseudo-dev fused {r['pseudo_dev']['fused']:.4f} (alpha {r['pseudo_dev']['alpha']})"
                f" | test alone {r['alone']['nDCG@10']:.4f} fused {r['fused']['nDCG@10']:.4f}"
                f" vs BM25 {r['fused']['vs_bm25']['delta']:+.4f} (p={r['fused']['vs_bm25']['p']})")
        if "vs_zero_shot" in r["fused"]:
            line += f" vs zero-shot {r['fused']['vs_zero_shot']['delta']:+.4f} (p={r['fused']['vs_zero_shot']['p']})"
        print(line)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
