"""``inpars run CONFIG.yaml``: datasets -> retrieve -> generate -> filter -> negatives -> train -> rerank
-> evaluate -> report, from one config.

Each stage writes into ``<run_dir>/<NN-stage>/`` with a manifest (see :mod:`inpars.manifest`). A stage
whose config slice and inputs are unchanged is skipped; ``from_stage`` and ``force`` redo work; a run
killed at any point resumes where it stopped.

Leakage: only the ``evaluate`` stage enters :func:`inpars.datasets.evaluation_access`; every other stage
that asked for test judgements would get :class:`~inpars.errors.LeakageError`.

>>> from inpars.config import load_config              # doctest: +SKIP
>>> result = run_pipeline(load_config("examples/demo.yaml"))   # doctest: +SKIP
>>> print(result.table)                                 # doctest: +SKIP
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars.config import PipelineConfig
from inpars.datasets import BeirDataset, Dataset, load_dataset
from inpars.io import hash_obj, sha256_file
from inpars.manifest import StageResult, run_stage

log = logging.getLogger(__name__)

STAGES = ("retrieve", "generate", "filter", "negatives", "train", "rerank", "evaluate", "report")


def stage_dir(run_dir: str | Path, stage: str) -> Path:
    """``run_dir/NN-stage`` (numbered so that a listing shows the order)."""
    return Path(run_dir) / f"{STAGES.index(stage) + 1:02d}-{stage}"


def dataset_fingerprint(ds: Dataset, train_split: str) -> str:
    """A hash of what the non-evaluation stages may read: corpus, queries, the train judgements."""
    if isinstance(ds, BeirDataset):
        parts = {"corpus": sha256_file(ds.corpus_path), "queries": sha256_file(ds.queries_path)}
        if ds.has_split(train_split):
            parts["train_qrels"] = sha256_file(ds.qrels_path(train_split))
        return hash_obj(parts)
    return hash_obj({"dataset": ds.name})


def eval_query_ids(ds: Dataset, split: str, limit: int | None) -> list[str]:
    ids = ds.query_ids(split)
    return ids[:limit] if limit else ids


def tune_query_ids(ds: Dataset, split: str, n: int, seed: int) -> list[str]:
    ids = ds.query_ids(split)
    if len(ids) <= n:
        return ids
    return sorted(random.Random(seed).sample(ids, n), key=ids.index)


@dataclass
class PipelineResult:
    run_dir: Path
    stages: dict[str, StageResult] = field(default_factory=dict)
    table: str = ""
    seconds: float = 0.0


def run_pipeline(
    cfg: PipelineConfig,
    *,
    from_stage: str | None = None,
    force: bool = False,
    until: str | None = None,
    progress: Callable[[str, StageResult], None] | None = None,
) -> PipelineResult:
    """Run (or resume) the whole pipeline described by ``cfg``; returns per-stage results."""
    if from_stage is not None and from_stage not in STAGES:
        raise ValueError(f"unknown stage '{from_stage}'; stages: {', '.join(STAGES)}")
    if until is not None and until not in STAGES:
        raise ValueError(f"unknown stage '{until}'; stages: {', '.join(STAGES)}")
    t0 = time.perf_counter()
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    from inpars.io import write_json

    write_json(run_dir / "config.json", cfg.model_dump(mode="json"))
    ds = load_dataset(cfg.dataset.name)
    ds_hash = dataset_fingerprint(ds, cfg.dataset.train_split)
    result = PipelineResult(run_dir)
    redo = set(STAGES[STAGES.index(from_stage) :]) if from_stage else set()
    eval_split = cfg.dataset.eval_split
    index_dir = run_dir / "bm25-index"
    bm25_params = cfg.retrieve.index_params()

    def stage(name: str, config: Any, inputs: dict[str, Path], fn: Callable[[Path], dict[str, Any]]) -> StageResult:
        res = run_stage(
            name, stage_dir(run_dir, name), config, inputs, fn, seed=cfg.seed,
            force=force or name in redo, extra_hashes={"dataset": ds_hash},
        )
        result.stages[name] = res
        if progress:
            progress(name, res)
        return res

    def stop_after(name: str) -> bool:
        return until is not None and STAGES.index(name) >= STAGES.index(until)

    # 1. first stage: BM25 on the evaluation queries (and the tuning queries when interpolating)
    from inpars import retrieval

    tune = cfg.rerank.interpolate
    eval_ids = eval_query_ids(ds, eval_split, cfg.dataset.max_eval_queries)
    tune_ids = (
        tune_query_ids(ds, cfg.rerank.tune_split, cfg.rerank.tune_queries, cfg.seed) if tune else []
    )

    def do_retrieve(folder: Path) -> dict[str, Any]:
        params = cfg.retrieve.model_dump()
        out: dict[str, Any] = {}
        for split, ids in ((eval_split, eval_ids), (cfg.rerank.tune_split, tune_ids)):
            if not ids:
                continue
            texts = ds.queries(split)
            queries = {q: texts[q] for q in ids if q in texts}
            t = time.perf_counter()
            retrieval.retrieve(ds, split=split, queries=queries, index_dir=index_dir,
                               out=folder / f"bm25.{split}.trec", **params)
            out[split] = {"queries": len(queries), "seconds": round(time.perf_counter() - t, 2)}
        return out

    r_retrieve = stage(
        "retrieve",
        {"retrieve": cfg.retrieve.model_dump(), "eval": eval_ids, "tune": tune_ids},
        {},
        do_retrieve,
    )
    bm25_eval = r_retrieve.folder / f"bm25.{eval_split}.trec"
    bm25_tune = r_retrieve.folder / f"bm25.{cfg.rerank.tune_split}.trec"
    if stop_after("retrieve"):
        return _finish(result, t0)

    need_training = cfg.rerank.model is None
    if need_training:
        # 2. generate
        from inpars.generate import generate_queries

        gen_cfg = cfg.generate.model_dump()

        def do_generate(folder: Path) -> dict[str, Any]:
            summary = generate_queries(
                ds, folder / "queries.jsonl", seed=cfg.seed, train_split=cfg.dataset.train_split, **gen_cfg
            )
            return _as_dict(summary)

        r_gen = stage("generate", {"generate": gen_cfg, "seed": cfg.seed}, {}, do_generate)
        if stop_after("generate"):
            return _finish(result, t0)

        # 3. filter
        from inpars.filtering import filter_queries

        filt_cfg = cfg.filter.model_dump()

        def do_filter(folder: Path) -> dict[str, Any]:
            rep = filter_queries(
                r_gen.folder / "queries.jsonl", folder / "filtered.jsonl", dataset=ds, seed=cfg.seed,
                index_dir=index_dir, bm25=bm25_params, **filt_cfg,
            )
            return _as_dict(rep)

        r_filt = stage("filter", {"filter": filt_cfg, "bm25": bm25_params, "seed": cfg.seed},
                       {"queries": r_gen.folder / "queries.jsonl"}, do_filter)
        if stop_after("filter"):
            return _finish(result, t0)

        # 4. negatives
        from inpars.negatives import mine_negatives

        neg_cfg = cfg.negatives.model_dump()

        def do_negatives(folder: Path) -> dict[str, Any]:
            summary = mine_negatives(
                r_filt.folder / "filtered.jsonl", folder / "train.jsonl", dataset=ds, seed=cfg.seed,
                index_dir=index_dir, bm25=bm25_params, **neg_cfg,
            )
            return _as_dict(summary)

        r_neg = stage("negatives", {"negatives": neg_cfg, "retrieve": cfg.retrieve.model_dump(), "seed": cfg.seed},
                      {"filtered": r_filt.folder / "filtered.jsonl"}, do_negatives)
        if stop_after("negatives"):
            return _finish(result, t0)

        # 5. train
        from inpars.training import train_reranker

        train_cfg = cfg.train.model_dump()

        def do_train(folder: Path) -> dict[str, Any]:
            summary = train_reranker(r_neg.folder / "train.jsonl", folder, seed=cfg.seed, **train_cfg)
            return _as_dict(summary)

        r_train = stage("train", {"train": train_cfg, "seed": cfg.seed},
                        {"train": r_neg.folder / "train.jsonl"}, do_train)
        if stop_after("train"):
            return _finish(result, t0)
        from inpars.training import saved_model_path

        model_path = str(saved_model_path(r_train.folder))
        model_type: str | None = cfg.train.model_type
        model_inputs = {"model": Path(model_path)}
    else:
        model_path = str(cfg.rerank.model)
        model_type = cfg.rerank.model_type
        model_inputs = {"model": Path(model_path)} if Path(model_path).exists() else {}

    # 6. rerank (and tune the interpolation weight on the tuning split, never on the evaluation split)
    from inpars import rerank

    rr_cfg = cfg.rerank.model_dump()
    first_stage = Path(cfg.rerank.first_stage) if cfg.rerank.first_stage else bm25_eval

    def do_rerank(folder: Path) -> dict[str, Any]:
        from inpars.datasets import read_run_dict, write_run

        kw: dict[str, Any] = {"model": model_path, "model_type": model_type, "depth": cfg.rerank.depth,
                              "batch_size": cfg.rerank.batch_size, "max_length": cfg.rerank.max_length,
                              "engine": cfg.rerank.engine}
        out: dict[str, Any] = {}
        t = time.perf_counter()
        first = read_run_dict(first_stage)
        top = rerank.rerank_run(ds, first, folder / f"top{cfg.rerank.depth}.{eval_split}.trec",
                                split=eval_split, **kw)
        out["rerank_seconds"] = round(time.perf_counter() - t, 2)
        out["pairs"] = sum(len(v) for v in top.values())
        out["pairs_per_second"] = round(out["pairs"] / max(out["rerank_seconds"], 1e-9), 2)
        # below the reranked depth the first-stage order is kept, so deep recall is not cut
        write_run(folder / f"reranked.{eval_split}.trec", rerank.append_tail(top, first, cfg.rerank.depth),
                  tag="inpars-rerank")
        if tune:
            tune_first = read_run_dict(bm25_tune)
            tuned = rerank.rerank_run(ds, tune_first, folder / f"top{cfg.rerank.depth}.{cfg.rerank.tune_split}.trec",
                                      split=cfg.rerank.tune_split, **kw)
            alpha, table = rerank.tune_alpha(ds, cfg.rerank.tune_split, tune_first, tuned, cfg.rerank.alphas)
            out["alpha"] = alpha
            out["alpha_table"] = table
            final = rerank.append_tail(rerank.interpolate(first, top, alpha), first, cfg.rerank.depth)
            write_run(folder / f"interpolated.{eval_split}.trec", final, tag=f"inpars-interp-{alpha}")
        return out

    rr_inputs: dict[str, Path] = {"first_stage": first_stage, **model_inputs}
    if tune:
        rr_inputs["tune_first_stage"] = bm25_tune
    r_rr = stage("rerank", {"rerank": rr_cfg, "model_type": model_type, "eval": eval_ids}, rr_inputs, do_rerank)
    if stop_after("rerank"):
        return _finish(result, t0)

    # 7. evaluate: the only stage that reads the evaluation split's judgements
    from inpars.evaluation import evaluate_dataset

    runs = {"bm25": bm25_eval, "reranked": r_rr.folder / f"reranked.{eval_split}.trec"}
    if tune:
        runs["interpolated"] = r_rr.folder / f"interpolated.{eval_split}.trec"
    ev_cfg = cfg.evaluate.model_dump()

    def do_evaluate(folder: Path) -> dict[str, Any]:
        from inpars.datasets import read_run_dict
        from inpars.io import atomic_write, write_json

        res = evaluate_dataset(ds, eval_split, {k: read_run_dict(v) for k, v in runs.items()},
                               query_ids=eval_ids, seed=cfg.seed, **ev_cfg)
        write_json(folder / "metrics.json", res.to_json())
        with atomic_write(folder / "metrics.md") as f:
            f.write(res.to_markdown() + "\n")
        with atomic_write(folder / "metrics.txt") as f:
            f.write(res.to_text() + "\n")
        return {"aggregate": res.to_json().get("aggregate", {})}

    r_ev = stage("evaluate", {"evaluate": ev_cfg, "split": eval_split, "eval": eval_ids},
                 dict(runs), do_evaluate)
    result.table = (r_ev.folder / "metrics.txt").read_text(encoding="utf-8")
    if stop_after("evaluate"):
        return _finish(result, t0)

    # 8. report (always rebuilt: cheap, and it shows the timings of this invocation too)
    from inpars.report import build_report

    build_report(run_dir)
    return _finish(result, t0)


def _finish(result: PipelineResult, t0: float) -> PipelineResult:
    result.seconds = time.perf_counter() - t0
    return result


def _as_dict(summary: Any) -> dict[str, Any]:
    """A stage summary (dataclass, dict or object with to_json) as a JSON-able dict."""
    import dataclasses

    if summary is None:
        return {}
    if isinstance(summary, dict):
        return summary
    if hasattr(summary, "to_json"):
        return dict(summary.to_json())
    if dataclasses.is_dataclass(summary) and not isinstance(summary, type):
        return dataclasses.asdict(summary)
    return {"value": str(summary)}
