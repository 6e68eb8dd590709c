"""Does the pseudo-dev set rank label-free variants as the test judgements do? A probe with a second generator.

Usage (after ``benchmarks/ablation_labelfree.py`` has run the variants under ``--runs``)::

    INPARS_DATA_HOME=/tmp/nolabels python benchmarks/pseudo_dev_probe.py --runs runs/ablation_volume \\
        --ablation benchmarks/results/ablation_volume.json [--generator gemma3-270m] [--prompt inpars-forms] \\
        [--out benchmarks/results/pseudo_dev_probe.json]

A label-free run chooses (fusion weight, checkpoint, variant) on its pseudo-dev set: queries the run's own
generator wrote for held-out documents. Those queries share the training queries' style, which a model
trained on them has learned, so the set may favour whatever fits the generator rather than what ranks real
queries well. The probe asks another generator (``--generator``, same prompt and sampling settings) for
queries for the same held-out documents (or the same generator with another prompt, ``--prompt``) and scores every finished variant's reranker on both sets, exactly
as the pipeline tunes (BM25's top ``depth``, reranked, fused with BM25 at the best of the usual weights).
It reports, for each set, nDCG@10 alone and fused per variant and Kendall's tau between the set's ranking
of the variants and the test ranking read from ``--ablation`` (the ablation's evaluation). No stage of the
runs reads judgements; this script reads the ablation's test figures only to compare rankings.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from inpars.layout import output_path

ROOT = Path(__file__).resolve().parents[1]


def _held_out(runs: Path, names: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The pseudo-dev documents (the same in every variant) and the run's config."""
    for name in names:
        path = output_path(runs / name, "pseudo-dev", "queries")
        if path.is_file():
            docs = {json.loads(line)["doc_id"] for line in path.read_text(encoding="utf-8").splitlines() if line}
            cfg = json.loads((runs / name / "config.json").read_text(encoding="utf-8"))
            return sorted(docs), cfg
    raise SystemExit(f"no variant under {runs} has a pseudo-dev set (the pseudo-dev stage's queries.jsonl)")


def _model(runs: Path, name: str) -> tuple[str, str]:
    """The checkpoint a variant reranked with, and its type."""
    cfg = json.loads((runs / name / "config.json").read_text(encoding="utf-8"))
    rerank = cfg.get("rerank") or {}
    if rerank.get("model"):
        from inpars.models import resolve_model

        return resolve_model(rerank["model"]), rerank.get("model_type") or "bi-encoder"
    return str(output_path(runs / name, "train", "model")), cfg["train"]["model_type"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=str(ROOT / "runs" / "ablation_volume"))
    ap.add_argument("--ablation", default=str(ROOT / "benchmarks" / "results" / "ablation_volume.json"))
    ap.add_argument("--generator", default="gemma3-270m", help="packaged model name, path or hub id")
    ap.add_argument("--prompt", default=None, help="the probe's prompt (default: the runs' own), e.g. inpars-forms "
                    "for queries of other forms than the training queries'")
    ap.add_argument("--work", default=None, help="folder for the probe's queries and caches (default: RUNS/probe)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pseudo_dev_probe.json"))
    args = ap.parse_args(argv)

    from scipy.stats import kendalltau

    from inpars.datasets import load_dataset
    from inpars.filter import filter_queries
    from inpars.fusion import TuneSet
    from inpars.generate import generate_queries, read_generated
    from inpars.pseudo_dev import synthetic_tune_set
    from inpars.rerank import load_scorer
    from inpars.rerank.base import release
    from inpars.rerank.fuse import fit_on

    ablation = json.loads(Path(args.ablation).read_text(encoding="utf-8"))
    names = list(ablation["variants"])
    runs = Path(args.runs)
    work = Path(args.work) if args.work else runs / "probe"
    work.mkdir(parents=True, exist_ok=True)
    docs, cfg = _held_out(runs, names)
    ds = load_dataset(cfg["dataset"]["name"])
    gen = cfg["generate"]

    t = time.perf_counter()
    summary = generate_queries(
        ds, work / "queries.jsonl", prompt=args.prompt or gen["prompt"], model=args.generator, backend=gen["backend"],
        n_docs=len(docs), doc_selection="ids", selection_options={"doc_ids": docs},
        queries_per_doc=gen["queries_per_doc"], max_doc_tokens=gen["max_doc_tokens"],
        max_new_tokens=gen["max_new_tokens"], temperature=gen["temperature"], top_p=gen["top_p"],
        seed=cfg["seed"], progress=False)
    gen_seconds = round(time.perf_counter() - t, 1)
    generated = read_generated(work / "queries.jsonl")
    fc = cfg["filter"]
    filter_queries(generated, work / "probe_dev.jsonl", steps=[], min_words=fc["min_words"], seed=cfg["seed"],
                   max_words=fc["max_words"], copy_threshold=fc["copy_threshold"], dataset=ds,
                   index_dir=runs / names[0] / "bm25-index")

    sets: dict[str, TuneSet] = {
        label: synthetic_tune_set(ds, path, runs / names[0] / "bm25-index", cfg["retrieve"])
        for label, path in (("own", output_path(runs / names[-1], "pseudo-dev", "queries")),
                            ("probe", work / "probe_dev.jsonl"))
    }

    depth = cfg["rerank"]["depth"]
    alphas = cfg["rerank"]["alphas"]
    rows: dict[str, Any] = {}
    for name in names:
        model, model_type = _model(runs, name)
        scorer = load_scorer(model, model_type, max_length=cfg["rerank"].get("max_length"))
        row: dict[str, Any] = {"test_alone": ablation["variants"][name]["alone"]["nDCG@10"],
                               "test_fused": ablation["variants"][name]["fused"]["nDCG@10"],
                               # the run's own tuning: the "own" figures below must reproduce it
                               "run_pseudo_dev_fused": round(ablation["variants"][name]["pseudo_dev"]["fused"], 4)}
        for label, tune in sets.items():
            alpha, table, _ = fit_on(ds, tune, scorer, depth=depth, alphas=alphas, show_progress=False,
                                     cache=work / f"{name}.{label}.scores.jsonl")
            row[f"{label}_alone"] = round(table["1"], 4)
            row[f"{label}_fused"] = round(table[f"{alpha:g}"], 4)
            row[f"{label}_alpha"] = alpha
            row[f"{label}_bm25"] = round(table["0"], 4)
        release(scorer)
        rows[name] = row
        print(name, row, flush=True)

    agreement: dict[str, Any] = {}
    for kind in ("alone", "fused"):
        test = [rows[n][f"test_{kind}"] for n in names]
        for label in sets:
            got = [rows[n][f"{label}_{kind}"] for n in names]
            tau, p = kendalltau(got, test)
            agreement[f"{label}_{kind}"] = {"kendall_tau": round(float(tau), 3), "p": round(float(p), 3),
                                            "best": max(names, key=lambda n: rows[n][f"{label}_{kind}"]),
                                            "test_best": max(names, key=lambda n: rows[n][f"test_{kind}"])}
    out = {
        "benchmark": "pseudo_dev_probe",
        "what": "label-free variants ranked by their own pseudo-dev set, by one written by another generator "
                "for the same held-out documents, and by SciFact test (Kendall's tau against test)",
        "runs": os.path.relpath(runs, ROOT) if runs.is_absolute() else str(runs),
        "ablation": os.path.relpath(args.ablation, ROOT),
        "own_generator": gen["model"], "probe_generator": args.generator,
        "own_prompt": gen["prompt"], "probe_prompt": args.prompt or gen["prompt"],
        "held_out_documents": len(docs), "own_queries": len(sets["own"].queries),
        "probe_queries": len(sets["probe"].queries), "probe_generation_seconds": gen_seconds,
        "probe_generated": summary.n_generated,
        "variants": rows, "agreement": agreement,
        "date": time.strftime("%Y-%m-%d"), "machine": "2 CPU cores, no GPU",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    for key, value in agreement.items():
        print(f"{key:12s} tau {value['kendall_tau']:+.3f} (p={value['p']}) best {value['best']} "
              f"(test best {value['test_best']})")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
