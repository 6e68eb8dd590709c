"""Reranking throughput and ranking agreement: inpars' scorer engines against sentence-transformers.

Usage: python benchmarks/bench_rerank.py [--model minilm-l6|PATH] [--queries 20] [--depth 100]
       [--max-length 256] [--batch-size 32] [--threads 2]
       [--engines torch,onnx,auto,auto:cached,torch-bf16,onnx-int8,torch:full,torch-bf16:full]
       [--out benchmarks/results/rerank.json]

Pairs: the first ``--queries`` SciFact test queries (natural id order) x their BM25 top ``--depth``
(``$INPARS_DATA_HOME/scifact/bm25_top100.test.trec``), query text x ``title + " " + text``.

Measured in one process, on the same pairs, model and thread count:

- ``sentence-transformers``: ``CrossEncoder(model, max_length).predict(pairs, batch_size)`` (it sorts by
  length too; its raw logits via ``activation_fn=Identity``);
- ``inpars`` with each engine (:class:`inpars.rerank.CrossEncoderScorer`, as ``load_scorer`` builds it).
  The ONNX graphs are exported and quantised before timing (that one-off cost is reported apart as
  ``prepare_s``). ``ENGINE:full`` (e.g. ``torch-bf16:full``) runs the torch engines without the
  first-token last layer (:func:`inpars.rerank.prune_last_layer`), to show what that adds. ``auto``
  measures onnx and torch fp32 on its first four batches inside the timed call (its choice cache starts
  empty, in a fresh ``INPARS_CACHE``), so its figure includes what choosing costs; ``auto:cached`` then loads
  with the choice cached, as every later run on the machine does. The report gives the engine chosen,
  whether it is the faster of ``torch`` and ``onnx`` in the same run, and each auto figure over that one.

Each is timed after a warm-up batch; ``pairs/s`` = pairs / wall seconds. The ranking check reranks the
BM25 top ``--depth`` with each scorer and reports nDCG@10 on the test judgements (through
``inpars.evaluation``, the evaluation stage's code), plus score agreement with inpars' torch fp32 scores:
max absolute difference and Spearman's rho over all pairs, and the mean per-query Kendall tau. A model
folder without a classification head (the packaged all-MiniLM-L6-v2 bi-encoder) gets a head from a fixed
seed, saved to a temporary checkpoint that every scorer loads: its nDCG says nothing about quality, only
whether engines agree; rerun with ``--model`` pointing at a trained cross-encoder for a quality check.
Timings on a shared machine are contended: the load average before and after is recorded.
An engine this CPU cannot run (``torch-bf16`` without native bfloat16) is listed under ``refused`` with
the scorer's message, and the others are measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("INPARS_DATA_HOME", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# auto's choice cache in a fresh folder: "auto" measures inside its timed call, "auto:cached" reuses that choice
os.environ.pop("INPARS_ENGINE_CHOICE", None)
os.environ["INPARS_CACHE"] = tempfile.mkdtemp(prefix="inpars-bench-cache-")

TARGET_SPEEDUP = 2.0
NDCG_TOLERANCE = 0.002


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "transformers", "sentence-transformers", "onnxruntime", "onnx"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _with_head(path: str, tmp: Path) -> tuple[str, bool]:
    """``(checkpoint with a classification head, whether the head was trained)``."""
    from transformers import AutoConfig, AutoTokenizer

    from inpars import rerank

    config = AutoConfig.from_pretrained(path)
    if rerank.has_classification_head(config):
        return path, True
    target = tmp / "with-head"
    rerank._load_sequence_classifier(path, 1).save_pretrained(target)
    AutoTokenizer.from_pretrained(path).save_pretrained(target)
    return str(target), False


def _timed(fn: Any, pairs: list[tuple[str, str]], warm: list[tuple[str, str]]) -> tuple[list[float], float]:
    fn(warm)
    t = time.perf_counter()
    scores = fn(pairs)
    return [float(s) for s in scores], time.perf_counter() - t


def _agreement(ref: list[float], got: list[float], owners: list[tuple[str, str]]) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr

    by_q: dict[str, tuple[list[float], list[float]]] = {}
    for (q, _), a, b in zip(owners, ref, got, strict=True):
        by_q.setdefault(q, ([], []))
        by_q[q][0].append(a)
        by_q[q][1].append(b)
    taus = [kendalltau(a, b).statistic for a, b in by_q.values()]
    return {
        "max_abs_diff": max(abs(a - b) for a, b in zip(ref, got, strict=True)),
        "spearman": float(spearmanr(ref, got).statistic),
        "mean_query_kendall_tau": sum(taus) / len(taus),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--run", default=None, help="first-stage run (default: the dataset's bm25_top100.test.trec)")
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engines", default="torch,onnx,auto,auto:cached,torch-bf16,onnx-int8,torch:full,torch-bf16:full")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "rerank.json"))
    args = ap.parse_args(argv)

    import torch
    from sentence_transformers import CrossEncoder

    from inpars import rerank
    from inpars.datasets import load_dataset, ranked, read_run_dict
    from inpars.errors import ConfigError
    from inpars.evaluation import evaluate_dataset
    from inpars.models import resolve_model

    torch.set_num_threads(args.threads)
    ds = load_dataset(args.dataset)
    run_path = args.run or str(Path(getattr(ds, "path", ".")) / "bm25_top100.test.trec")
    first = read_run_dict(run_path)
    qids = sorted(first, key=lambda q: (len(q), q))[: args.queries]
    queries, docs = ds.queries("test"), ds.docs()
    owners = [(q, d) for q in qids for d, _ in ranked(first[q])[: args.depth]]
    pairs = [(queries[q], docs[d].full_text) for q, d in owners]
    warm = pairs[: args.batch_size]
    load_before = os.getloadavg()
    print(f"{len(pairs)} pairs ({len(qids)} queries x top {args.depth}), max_length {args.max_length}, "
          f"batch {args.batch_size}, {args.threads} threads; load average {load_before[0]:.2f}", file=sys.stderr)

    results: dict[str, dict[str, Any]] = {}
    scores: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_path, trained = _with_head(resolve_model(args.model), Path(tmp))

        ce = CrossEncoder(model_path, max_length=args.max_length, device="cpu")
        identity = torch.nn.Identity()

        def st_predict(p: list[tuple[str, str]]) -> Any:
            return ce.predict(p, batch_size=args.batch_size, activation_fn=identity, show_progress_bar=False)

        scores["sentence-transformers"], secs = _timed(st_predict, pairs, warm)
        results["sentence-transformers"] = {"seconds": round(secs, 2), "pairs_per_s": round(len(pairs) / secs, 2)}
        print(f"sentence-transformers: {len(pairs) / secs:.1f} pairs/s", file=sys.stderr)

        refused: dict[str, str] = {}
        for engine in [e for e in args.engines.split(",") if e]:
            t = time.perf_counter()
            # "ENGINE:full" keeps the whole last layer (no first-token pruning), to measure what it adds.
            name, _, variant = engine.partition(":")
            try:
                scorer = rerank.CrossEncoderScorer(
                    model_path, batch_size=args.batch_size, max_length=args.max_length,
                    engine=name, threads=args.threads, device="cpu", first_token_last_layer=variant != "full",
                )
            except ConfigError as e:  # e.g. torch-bf16 on a CPU without native bfloat16: recorded, not fatal
                refused[engine] = str(e)
                print(f"inpars {engine}: refused: {e}", file=sys.stderr)
                continue
            prepare = time.perf_counter() - t
            scores[engine], secs = _timed(scorer.score, pairs, warm)
            results[engine] = {
                "seconds": round(secs, 2),
                "pairs_per_s": round(len(pairs) / secs, 2),
                "prepare_s": round(prepare, 2),
            }
            if name == "auto":
                results[engine]["chose"] = scorer.engine
            print(f"inpars {engine}: {len(pairs) / secs:.1f} pairs/s (prepare {prepare:.1f} s)", file=sys.stderr)
            del scorer

    runs: dict[str, dict[str, dict[str, float]]] = {"bm25": {q: dict(ranked(first[q])[: args.depth]) for q in qids}}
    for name, values in scores.items():
        run: dict[str, dict[str, float]] = {q: {} for q in qids}
        for (q, d), s in zip(owners, values, strict=True):
            run[q][d] = s
        runs[name] = run
    ev = evaluate_dataset(ds, "test", runs, measures=["nDCG@10"], tests=[], query_ids=qids)
    ndcg = {name: round(float(ev.aggregate[name]["nDCG@10"]), 4) for name in runs}
    ref_name = "torch" if "torch" in scores else "sentence-transformers"
    for name in scores:
        results[name]["nDCG@10"] = ndcg[name]
        results[name]["nDCG@10_minus_st"] = round(ndcg[name] - ndcg["sentence-transformers"], 4)
        if name != ref_name:
            results[name][f"vs_{ref_name}"] = {
                k: round(v, 6) for k, v in _agreement(scores[ref_name], scores[name], owners).items()
            }
    base = results["sentence-transformers"]["pairs_per_s"]
    for name in scores:
        results[name]["speedup_vs_st"] = round(results[name]["pairs_per_s"] / base, 2)
    ok = [
        n for n in scores
        if n != "sentence-transformers"
        and results[n]["speedup_vs_st"] >= TARGET_SPEEDUP
        and abs(results[n]["nDCG@10_minus_st"]) <= NDCG_TOLERANCE
    ]
    exact = {n: results[n]["pairs_per_s"] for n in ("torch", "onnx") if n in results}
    for name in ("auto", "auto:cached"):
        if name in results and exact:
            results[name]["vs_best_exact"] = round(results[name]["pairs_per_s"] / max(exact.values()), 3)
            results[name]["chose_the_faster"] = results[name]["chose"] == max(exact, key=exact.__getitem__)
    report = {
        "benchmark": "rerank",
        "what": "pairs/s of inpars.rerank scorers vs sentence_transformers CrossEncoder.predict, same pairs",
        "model": args.model,
        "head_trained": trained,
        "dataset": args.dataset,
        "first_stage": run_path,
        "queries": len(qids),
        "depth": args.depth,
        "pairs": len(pairs),
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "bm25_nDCG@10": ndcg["bm25"],
        "results": results,
        "refused": refused,
        "target": f">= {TARGET_SPEEDUP}x sentence-transformers with nDCG@10 within +-{NDCG_TOLERANCE}",
        "engines_meeting_target": ok,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": _versions(),
        "note": (
            "untrained (seeded) classification head: nDCG shows engine agreement only, not quality"
            if not trained else "trained cross-encoder"
        ),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("results", "engines_meeting_target", "bm25_nDCG@10")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
