"""Multi-process training: ``torchrun --nproc_per_node 2 -m inpars.cli train`` trains with DDP over gloo on
the CPU.

Stated tolerance: two processes with ``batch_size`` B each against one process with ``batch_size`` 2B
(same seed, same global batch, no dropout) give the same per-step losses within 1e-5 and the same final
weights within 1e-5 (max absolute difference). The data order is the same in both (accelerate shards the
seeded sampler's batches across ranks), so what remains is float summation order.

A 2-process run that stops after its first checkpoint (the state a kill leaves: the complete checkpoint
and ``train_run.json``) resumes with 2 processes and ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inpars.training import train_reranker
from inpars.training.common import last_complete_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-5
STEPS = 6


@pytest.fixture(scope="module")
def tiny_bert_nodropout(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer, 32-wide BERT (random weights, dropout off) with the MiniLM tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    from conftest import minilm_tokenizer

    tok = minilm_tokenizer()
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    path = tmp_path_factory.mktemp("tiny_bert_ddp")
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def train_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(3)
    pos = ["cell", "protein", "gene", "dose", "risk", "trial", "mice", "blood"]
    neg = ["brain", "cancer", "heart", "virus", "drug", "sleep", "diet", "lung"]
    path = tmp_path_factory.mktemp("ddp") / "train.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(48):
            row = {
                "query_id": f"q{i}", "query": " ".join(rng.sample(pos + neg, 3)), "pos_doc_id": f"p{i}",
                "positive": " ".join(rng.sample(pos, 6)), "neg_doc_ids": [f"n{i}a", f"n{i}b"],
                "negatives": [" ".join(rng.sample(neg, 6)) for _ in range(2)],
            }
            f.write(json.dumps(row) + "\n")
    return path


def _torchrun(train: Path, out: Path, model: str, batch_size: int) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "inpars.cli", "train", "--train", str(train), "--out", str(out), "--model", model,
        "--batch-size", str(batch_size), "--max-length", "32", "--learning-rate", "1e-3",
        "--max-steps", str(STEPS), "--save-steps", "3",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _losses(out: Path) -> list[float]:
    return [e["loss"] for e in json.loads((out / "loss_curve.json").read_text())]


def _max_weight_diff(a_dir: str | Path, b_dir: str | Path) -> float:
    from safetensors.torch import load_file

    a = load_file(str(Path(a_dir) / "model.safetensors"))
    b = load_file(str(Path(b_dir) / "model.safetensors"))
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_two_processes_match_one_with_the_same_global_batch_and_resume(
    tmp_path: Path, tiny_bert_nodropout: str, train_file: Path
) -> None:
    import torch

    threads = torch.get_num_threads()
    try:
        single = train_reranker(
            train_file, tmp_path / "single", model=tiny_bert_nodropout, batch_size=8, max_length=32,
            learning_rate=1e-3, max_steps=STEPS, save_steps=3, threads=1,
        )
    finally:
        torch.set_num_threads(threads)

    ddp_out = tmp_path / "ddp"
    _torchrun(train_file, ddp_out, tiny_bert_nodropout, batch_size=4)
    summary = json.loads((ddp_out / "train_summary.json").read_text())
    assert summary["steps"] == STEPS
    ddp_losses, single_losses = _losses(ddp_out), _losses(tmp_path / "single")
    assert len(ddp_losses) == len(single_losses) == STEPS
    assert max(abs(a - b) for a, b in zip(ddp_losses, single_losses, strict=True)) < TOL
    # DDP really ran: the losses moved (a no-op run would repeat the first one) and match a 2x batch
    assert single_losses[0] != single_losses[-1]
    assert _max_weight_diff(single.model_path, ddp_out / "model") < TOL
    # each rank saved its RNG state in the checkpoint; only rank 0 wrote the marker and the model
    last = last_complete_checkpoint(ddp_out / "checkpoints")
    assert last is not None and last.name == f"checkpoint-{STEPS}"
    assert (last / "rng_state_0.pth").is_file() and (last / "rng_state_1.pth").is_file()
    assert not (ddp_out / ".model.tmp").exists()

    # the state a kill after the first checkpoint leaves: checkpoint-3 and train_run.json only
    killed = tmp_path / "killed"
    killed.mkdir()
    shutil.copy2(ddp_out / "train_run.json", killed / "train_run.json")
    shutil.copytree(ddp_out / "checkpoints" / "checkpoint-3", killed / "checkpoints" / "checkpoint-3")
    done = _torchrun(train_file, killed, tiny_bert_nodropout, batch_size=4)
    resumed = json.loads((killed / "train_summary.json").read_text())
    assert resumed["resumed_from_step"] == 3 and resumed["steps"] == STEPS
    assert "resumed from step 3" in done.stdout
    assert max(abs(a - b) for a, b in zip(_losses(killed), ddp_losses, strict=True)) < TOL
    assert _max_weight_diff(killed / "model", ddp_out / "model") < TOL
