"""Shared fixtures: the SciFact copy in ../shared/data and tiny hand-made BEIR folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_HOME = Path(os.environ.get("INPARS_DATA_HOME") or ROOT.parent / "shared" / "data")
os.environ.setdefault("INPARS_DATA_HOME", str(DATA_HOME))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    path = DATA_HOME / "scifact"
    if not (path / "corpus.jsonl").is_file():
        pytest.skip(f"SciFact not found under {DATA_HOME} (set INPARS_DATA_HOME)")
    return path


def generated_records(path: Path) -> list[dict]:
    """A generation file's records in order, without ``seconds`` (the wall time per query: the one field
    that differs from run to run). The file is split at "\\n" only: a query's JSON string may hold U+2028 or
    U+0085, at which ``str.splitlines`` would also break."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]
    for r in rows:
        r.pop("seconds", None)
    return rows


def write_beir(root: Path, docs: list[dict], queries: list[dict], qrels: dict[str, list[tuple]]) -> Path:
    """Write a BEIR folder: ``qrels`` maps a split to (query-id, corpus-id, score) rows."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    (root / "qrels").mkdir(exist_ok=True)
    for split, rows in qrels.items():
        lines = ["query-id\tcorpus-id\tscore"] + ["\t".join(str(x) for x in r) for r in rows]
        (root / "qrels" / f"{split}.tsv").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return root


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    """Six documents about three topics, four queries, train and test qrels."""
    docs = [
        {"_id": "d1", "title": "Vitamin D", "text": "Vitamin D supplementation reduces respiratory infections."},
        {"_id": "d2", "title": "Vitamin C", "text": "Vitamin C does not prevent the common cold in adults."},
        {"_id": "d3", "title": "Aspirin", "text": "Aspirin lowers the risk of heart attack in older patients."},
        {"_id": "d4", "title": "Statins", "text": "Statins reduce cholesterol and cardiovascular events."},
        {"_id": "d5", "title": "Sleep", "text": "Short sleep duration is linked to obesity in children."},
        {"_id": "d6", "title": "Exercise", "text": "Regular exercise improves sleep quality and mood."},
    ]
    queries = [
        {"_id": "q1", "text": "does vitamin d prevent infections", "metadata": {"d1": []}},
        {"_id": "q2", "text": "aspirin heart attack risk", "metadata": {}},
        {"_id": "q3", "text": "sleep and obesity in children", "metadata": {}},
        {"_id": "q4", "text": "statins cholesterol", "metadata": {}},
    ]
    qrels = {"train": [("q1", "d1", 1), ("q2", "d3", 1)], "test": [("q3", "d5", 1), ("q4", "d4", 1)]}
    return write_beir(tmp_path / "tiny", docs, queries, qrels)


def minilm_tokenizer():  # type: ignore[no-untyped-def]
    """The packaged all-MiniLM-L6-v2 WordPiece tokenizer ("true"/"false" are single tokens in it)."""
    from transformers import AutoTokenizer

    from inpars.models import minilm_dir

    return AutoTokenizer.from_pretrained(str(minilm_dir()))


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2+2-layer, 32-wide T5 (random weights) with the MiniLM WordPiece tokenizer, saved to a folder."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    tok = minilm_tokenizer()
    torch.manual_seed(0)
    cfg = T5Config(
        vocab_size=tok.vocab_size, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2,
        num_decoder_layers=2, pad_token_id=tok.pad_token_id, decoder_start_token_id=tok.pad_token_id,
        eos_token_id=tok.sep_token_id,
    )
    path = tmp_path_factory.mktemp("tiny_t5")
    T5ForConditionalGeneration(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A local Ray cluster (2 CPUs) for one test module; yields the arm file of :mod:`ray_helpers`."""
    ray = pytest.importorskip("ray")
    from ray_helpers import init_test_cluster

    arm = tmp_path_factory.mktemp("arm") / "arm.txt"
    init_test_cluster(arm)
    yield arm
    ray.shutdown()


@pytest.fixture
def qrels_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Every request for relevance judgements during the test: (split, whether evaluation access was open)."""
    from inpars import datasets

    calls: list[tuple[str, bool]] = []
    original = datasets.BeirDataset.qrels

    def spy(self: datasets.BeirDataset, split: str) -> list:
        calls.append((split, datasets._EVAL_ACCESS.get()))
        return original(self, split)

    monkeypatch.setattr(datasets.BeirDataset, "qrels", spy)
    return calls
