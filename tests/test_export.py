"""``inpars export --format hf``: Parquet + dataset card, loaded back with the real ``datasets`` library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inpars.cli import main
from inpars.errors import InputError
from inpars.export import export_hf


@pytest.fixture
def stage_files(tmp_path: Path) -> tuple[Path, Path]:
    """A generation file with its .meta.json, a filter output with its .report.json, training JSONL."""
    gen_dir, filt_dir = tmp_path / "02-generate", tmp_path / "03-filter"
    gen_dir.mkdir()
    filt_dir.mkdir()
    gen = gen_dir / "queries.jsonl"
    rows = [
        {"doc_id": "d1", "query": "does vitamin d help?", "log_probs": [-0.5, -0.25], "prompt_text": "Document: x\nQuery:",
         "fewshot_examples": [], "query_index": 0, "flags": [], "text": "Vitamin D text.", "model": "smollm2-135m"},
        {"doc_id": "d2", "query": "aspirin?", "log_probs": [], "prompt_text": "Document: y\nQuery:", "fewshot_examples": [],
         "query_index": 0, "flags": ["truncated"], "text": "Aspirin text.", "model": "smollm2-135m"},
    ]
    gen.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (gen_dir / "queries.jsonl.meta.json").write_text(json.dumps({"params": {
        "prompt": "inpars", "backend": "llamacpp", "model": "smollm2-135m", "temperature": 0.0, "seed": 1}}))
    filt = filt_dir / "filtered.jsonl"
    kept = dict(rows[0], filter_scores={"logprob": -0.375})
    filt.write_text(json.dumps(kept) + "\n", encoding="utf-8")
    # the stage records its input as given, relative to where it ran (not to this folder)
    (filt_dir / "filtered.report.json").write_text(json.dumps({"input": "elsewhere/02-generate/queries.jsonl", "steps": [
        {"name": "logprob", "params": {"top_fraction": 0.75}, "n_in": 2, "n_out": 1}]}))
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"query_id": "d1-0", "query": "does vitamin d help?", "pos_doc_id": "d1",
                                 "positive": "Vitamin D text.", "neg_doc_ids": ["d2"],
                                 "negatives": ["Aspirin text."]}) + "\n", encoding="utf-8")
    return filt, train


def test_export_hf_loads_with_datasets(stage_files: tuple[Path, Path], tmp_path: Path) -> None:
    from datasets import load_dataset

    filt, train = stage_files
    out = tmp_path / "hf"
    assert export_hf(out, generated=filt, train=train) == {"queries": 1, "training": 1}
    queries = load_dataset(str(out), "queries", split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert queries[0]["query"] == "does vitamin d help?" and queries[0]["document"] == "Vitamin D text."
    assert queries[0]["mean_log_prob"] == pytest.approx(-0.375)
    assert json.loads(queries[0]["filter_scores"]) == {"logprob": -0.375}
    training = load_dataset("parquet", data_files=str(out / "training" / "*.parquet"), split="train",
                            cache_dir=str(tmp_path / "hf-cache"))
    assert training[0]["negatives"] == ["Aspirin text."] and training[0]["pos_doc_id"] == "d1"
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: unknown\n")
    assert "- model: smollm2-135m" in card and "- prompt: inpars" in card and "- backend: llamacpp" in card
    assert "- logprob: 2 -> 1 queries" in card  # the filter report, followed back to the generation
    assert "Set the licence" in card and "Document: x" in card


def test_export_hf_refuses_to_overwrite(stage_files: tuple[Path, Path], tmp_path: Path) -> None:
    filt, _ = stage_files
    out = tmp_path / "exists"
    out.mkdir()
    with pytest.raises(InputError, match="already exists"):
        export_hf(out, generated=filt)
    with pytest.raises(InputError, match="nothing to export"):
        export_hf(tmp_path / "new")


def test_cli_export_hf(stage_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    filt, _ = stage_files
    out = tmp_path / "cli-hf"
    assert main(["export", "--generated", str(filt), "-o", str(out), "--license", "cc-by-4.0"]) == 0
    assert "queries: 1 rows" in capsys.readouterr().out
    assert "license: cc-by-4.0" in (out / "README.md").read_text()
    assert main(["export", "-o", str(tmp_path / "none")]) == 2


def test_card_fields_are_one_line_and_a_tsv_export_replaces_no_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A newline in --license or --name would inject keys into the card's YAML header; a TSV export over an
    existing file would destroy it (the hf format already refuses an existing folder)."""
    from inpars.cli import main

    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"query_id": "q1", "query": "q", "pos_doc_id": "d1", "positive": "text",
                                 "neg_doc_ids": ["d2"], "negatives": ["x"]}) + "\n")
    for flag, value in (("--license", "mit\nextra_gated_prompt: yes"), ("--name", "a\rb"), ("--name", " ")):
        assert main(["export", "--train", str(train), "-o", str(tmp_path / "hf"), flag, value]) == 2
        assert "one line of printable text" in capsys.readouterr().err
    assert not (tmp_path / "hf").exists()
    unrelated = tmp_path / "notes.tsv"
    unrelated.write_text("mine")
    assert main(["export", "--format", "original-triples", "--train", str(train), "-o", str(unrelated)]) == 2
    assert unrelated.read_text() == "mine" and "exists" in capsys.readouterr().err
