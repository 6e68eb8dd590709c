"""benchmarks/bench_scale.py on a tiny synthetic collection, and benchmarks/gpu_check.sh's syntax."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench_scale() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "benchmarks" / "bench_scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_script_parses() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    script = ROOT / "benchmarks" / "gpu_check.sh"
    done = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_synthetic_collection_is_zipfian_and_realistic(tmp_path: Path) -> None:
    from collections import Counter

    mod = _bench_scale()
    folder = mod.make_collection(tmp_path / "c", 300, 20, 1.07)
    docs = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()]
    assert len(docs) == 300 and len({d["_id"] for d in docs}) == 300
    lengths = sorted(len(d["text"].split()) for d in docs)
    assert 120 <= lengths[len(lengths) // 2] <= 300  # median around 200 words
    counts = [c for _, c in Counter(w.lower().strip(".") for d in docs for w in d["text"].split()).most_common()]
    assert counts[0] > 5 * counts[9] > 0  # a heavy head: frequency falls with rank
    assert len((folder / "queries.jsonl").read_text().splitlines()) == 20
    # written once: a second call reuses the folder
    before = (folder / "corpus.jsonl").stat().st_mtime_ns
    mod.make_collection(tmp_path / "c", 300, 20, 1.07)
    assert (folder / "corpus.jsonl").stat().st_mtime_ns == before


def test_bench_scale_measures_every_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPARS_CACHE", str(tmp_path / "cache"))
    mod = _bench_scale()
    out = tmp_path / "scale.json"
    assert mod.main(["--sizes", "300", "--queries", "20", "--work", str(tmp_path / "w"), "--out", str(out)]) == 0
    row = json.loads(out.read_text())["sizes"]["300"]
    for stage in mod.STAGES:
        assert "error" not in row[stage], row[stage]
        assert row[stage]["peak_rss_mib"] > 0 and row[stage]["cpu_seconds"] >= 0
    assert row["index"]["documents"] == 300 and row["bm25s-reference"]["documents"] == 300
    assert row["index_rss_ratio"] > 0
    assert row["search"]["queries_per_second"] > 0 and row["search"]["hits"] > 0
    assert row["sample"]["sampled"] == 300  # capped at the corpus size
    assert row["negatives"]["examples"] == 20
