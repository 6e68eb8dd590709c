"""`inpars run` end to end on a real SciFact slice with the real small models: stage cache, manifests,
resume after a kill, the report, and that no stage but evaluation reads the test judgements."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from inpars import datasets
from inpars.config import load_config
from inpars.pipeline import STAGES, run_pipeline, stage_dir

pytestmark = pytest.mark.slow

CONFIG = {
    "seed": 3,
    "dataset": {"name": "scifact", "max_eval_queries": 6},
    "retrieve": {"k": 30},
    "generate": {"n_docs": 8, "max_doc_tokens": 96, "max_new_tokens": 24},
    "filter": {"steps": [{"name": "logprob", "top_fraction": 0.9}], "min_words": 1},
    "negatives": {"n_negatives": 2, "depth": 30},
    "train": {"max_steps": 4, "batch_size": 4, "max_length": 64, "save_steps": 2, "loss": "listwise"},
    "rerank": {"depth": 10, "max_length": 64, "interpolate": True, "tune_queries": 5},
    "evaluate": {"measures": ["nDCG@10", "R@100"], "permutations": 200},
}


def _write_config(tmp_path: Path, **extra: object) -> Path:
    cfg = dict(CONFIG, run_dir=str(tmp_path / "run"), **extra)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _metrics(run_dir: Path) -> dict:
    return json.loads((stage_dir(run_dir, "evaluate") / "metrics.json").read_text())["aggregate"]


def test_pipeline_end_to_end_cache_resume_and_report(
    tmp_path: Path, scifact_dir: Path, qrels_reads: list[tuple[str, bool]]
) -> None:
    calls = qrels_reads
    cfg_path = _write_config(tmp_path)
    cfg = load_config(cfg_path)
    run_dir = Path(cfg.run_dir)

    first = run_pipeline(cfg)
    assert [s for s in first.stages] == [s for s in STAGES if s != "report"]
    assert not any(r.skipped for r in first.stages.values())
    for name in STAGES[:-1]:
        manifest = json.loads((stage_dir(run_dir, name) / "manifest.json").read_text())
        assert manifest["stage"] == name and manifest["versions"]["inpars-toolkit"]
        assert manifest["inputs"]["dataset"]["sha256"] and manifest["seconds"] >= 0
    agg = _metrics(run_dir)
    assert set(agg) == {"bm25", "reranked", "interpolated"}
    assert 0.0 <= agg["reranked"]["nDCG@10"] <= 1.0
    # test judgements were read, and only with evaluation access open
    assert ("test", True) in calls
    assert all(access for split, access in calls if split == "test")
    report = stage_dir(run_dir, "report")
    md = (report / "report.md").read_text()
    assert "nDCG@10" in md and "Sample generated queries" in md and "Stage timings" in md
    assert (report / "report.html").is_file() and (report / "by_stage.png").is_file()
    assert (report / "per_query_reranked.png").is_file()
    assert "alpha" in first.stages["rerank"].summary

    # Unchanged config and inputs: every stage is skipped, same result.
    second = run_pipeline(cfg)
    assert all(r.skipped for r in second.stages.values())
    assert _metrics(run_dir) == agg

    # A changed late-stage setting redoes only that stage and those after it.
    third = run_pipeline(load_config(cfg_path, {"evaluate.measures": ["nDCG@10", "R@100", "RR@10"]}))
    assert [n for n, r in third.stages.items() if not r.skipped] == ["evaluate"]

    # Kill `inpars run --from train` in the middle, run again without --from: the finished training it had put
    # aside (the same config) comes back, nothing is redone, and the final result is the same as before.
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "inpars.cli", "run", str(cfg_path), "--from", "train"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = stage_dir(run_dir, "train") / "checkpoints"
    pending = stage_dir(run_dir, "train") / "pending.json"
    assert not pending.exists()
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if pending.exists() and ckpts.is_dir() and any(ckpts.glob("checkpoint-*")):
                break
            time.sleep(0.2)
        killed = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert killed, "the run finished before it could be killed"
    train_was_cut = not (stage_dir(run_dir, "train") / "manifest.json").exists()
    resumed = subprocess.run(cmd[:-2], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "[generate] up to date" in resumed.stdout and "nDCG@10" in resumed.stdout
    train_manifest = json.loads((stage_dir(run_dir, "train") / "manifest.json").read_text())
    if train_was_cut:  # the finished training '--from' had put aside is of this same config: it is put back
        assert "[train] up to date" in resumed.stdout and not train_manifest["resumed"]
    assert not stage_dir(run_dir, "train").with_name(".06-train.previous").exists()
    assert _metrics(run_dir) == agg


def test_test_qrels_are_out_of_reach_outside_evaluation(scifact_dir: Path) -> None:
    ds = datasets.load_dataset(scifact_dir)
    with pytest.raises(datasets.LeakageError):
        ds.qrels("test")
    assert ds.qrels("train")
    with datasets.evaluation_access():
        assert len(ds.qrels("test")) == 339
    with pytest.raises(datasets.LeakageError):
        ds.qrels_dict("test")
