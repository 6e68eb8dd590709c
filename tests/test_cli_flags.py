"""The stage subcommands' flags are generated from their config sections (a parameter is written once):
every field has a flag, a flag's value reaches the library call, and an invalid choice is a usage error."""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel

from inpars.cli import build_parser, main
from inpars.config import (
    FilterConfig,
    GenerateConfig,
    NegativesConfig,
    RerankConfig,
    RetrieveConfig,
    TrainConfig,
)

# subcommand -> (its section, fields with hand-written flags or none: dicts of options, filter steps)
SECTIONS: dict[str, tuple[type[BaseModel], set[str]]] = {
    # --backend-option / --executor-option / --selection-option KEY=VALUE
    "generate": (GenerateConfig, {"backend_options", "executor_options", "selection_options"}),
    "retrieve": (RetrieveConfig, set()),
    "filter": (FilterConfig, {"steps"}),  # --step NAME[:k=v,...]
    "negatives": (NegativesConfig, set()),
    "train": (TrainConfig, set()),
    "rerank": (RerankConfig, {"executor_options"}),  # --executor-option KEY=VALUE
}


class Called(BaseException):  # not an Exception: the CLI's error boundary must let it through
    """Raised by a stand-in library function once it has recorded its arguments."""


def _subparser(cmd: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[cmd]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@pytest.mark.parametrize("cmd", sorted(SECTIONS))
def test_every_field_has_a_flag(cmd: str) -> None:
    model, skipped = SECTIONS[cmd]
    sub = _subparser(cmd)
    options = {s for a in sub._actions for s in a.option_strings}
    text = sub.format_help()
    for name in model.model_fields:
        if name in skipped:
            continue
        assert _flag(name) in options, f"inpars {cmd}: no flag for {model.__name__}.{name}"
        assert _flag(name) in text


@pytest.mark.parametrize("cmd", ["generate", "negatives"])
def test_train_split_flag(cmd: str) -> None:
    assert "--train-split" in _subparser(cmd).format_help()


def _capture(monkeypatch: pytest.MonkeyPatch, target: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake(*args: Any, **kwargs: Any) -> Any:
        seen["args"] = args
        seen.update(kwargs)
        raise Called

    monkeypatch.setattr(target, fake)
    return seen


def _run(argv: list[str]) -> None:
    with pytest.raises(Called):
        main(argv)


def test_generate_flags_reach_generate_queries(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    seen = _capture(monkeypatch, "inpars.generate.generate_queries")
    _run(["generate", "-d", "scifact", "-o", str(tmp_path / "q.jsonl"), "--prompt", "promptagator",
          "--temperature", "0.5", "--top-p", "0.9", "--chat", "--n-docs", "7", "--batch-size", "4",
          "--train-split", "train", "--backend-option", "n_threads=2", "--seed", "3",
          "--doc-selection", "clusters", "--selection-option", "clusters=5"])
    assert seen["args"][0] == "scifact"
    assert (seen["prompt"], seen["temperature"], seen["top_p"], seen["chat"]) == ("promptagator", 0.5, 0.9, True)
    assert (seen["n_docs"], seen["batch_size"], seen["seed"]) == (7, 4, 3)
    assert seen["train_split"] == "train"
    assert seen["backend_options"] == {"n_threads": 2}
    assert (seen["doc_selection"], seen["selection_options"]) == ("clusters", {"clusters": 5})
    assert seen["backend"] == GenerateConfig().backend  # not given: the section's default


def test_generate_is_label_free_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    seen = _capture(monkeypatch, "inpars.generate.generate_queries")
    _run(["generate", "-d", "scifact", "-o", str(tmp_path / "q.jsonl")])
    assert seen["train_split"] is None
    assert seen["chat"] is False


def test_flags_override_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("dataset: {name: scifact, train_split: train}\n"
                      "generate: {temperature: 0.3, n_examples: 2, model: gemma3-270m}\n")
    seen = _capture(monkeypatch, "inpars.generate.generate_queries")
    _run(["generate", "-c", str(config), "-o", str(tmp_path / "q.jsonl"), "--temperature", "0.7",
          "--n-examples", "none", "--train-split", "none"])
    assert (seen["temperature"], seen["model"]) == (0.7, "gemma3-270m")
    assert seen["n_examples"] is None  # 'none' clears a nullable field set in the config
    assert seen["train_split"] is None


def test_retrieve_flags_reach_retrieve(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    seen = _capture(monkeypatch, "inpars.retrieval.retrieve")
    _run(["retrieve", "-d", "scifact", "-o", str(tmp_path / "r.trec"), "--k", "10", "--k1", "1.2", "--b", "0.75",
          "--stopwords", "none", "--split", "dev"])
    assert (seen["k"], seen["k1"], seen["b"], seen["split"]) == (10, 1.2, 0.75, "dev")
    assert seen["stopwords"] is None
    assert seen["stemmer"] == RetrieveConfig().stemmer


def test_filter_flags_reach_filter_queries(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    seen = _capture(monkeypatch, "inpars.filter.filter_queries")
    _run(["filter", "-d", "scifact", "--in", "q.jsonl", "-o", str(tmp_path / "f.jsonl"), "--min-words", "3",
          "--max-words", "20", "--copy-threshold", "none", "--step", "logprob:top_k=5"])
    assert (seen["min_words"], seen["max_words"], seen["copy_threshold"]) == (3, 20, None)
    assert [s["name"] for s in seen["steps"]] == ["logprob"] and seen["steps"][0]["top_k"] == 5


def test_filter_copy_threshold_is_validated(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    _capture(monkeypatch, "inpars.filter.filter_queries")
    assert main(["filter", "-d", "scifact", "--in", "q.jsonl", "-o", str(tmp_path / "f.jsonl"),
                 "--copy-threshold", "1.5"]) == 2


def test_negatives_flags_reach_mine_negatives(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    seen = _capture(monkeypatch, "inpars.negatives.mine_negatives")
    out = str(tmp_path / "t.jsonl")
    _run(["negatives", "-d", "scifact", "--in", "q.jsonl", "-o", out, "--method", "random", "--n-negatives", "4",
          "--depth", "50", "--skip-top", "2", "--train-split", "train"])
    assert (seen["method"], seen["n_negatives"], seen["depth"], seen["skip_top"]) == ("random", 4, 50, 2)
    assert seen["qrels_split"] == "train"
    _run(["negatives", "-d", "scifact", "--in", "q.jsonl", "-o", out])
    assert seen["qrels_split"] is None  # label-free unless --train-split (or dataset.train_split) is given


def test_train_flags_reach_train_reranker(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    seen = _capture(monkeypatch, "inpars.training.train_reranker")
    _run(["train", "--train", "t.jsonl", "-o", str(tmp_path / "m"), "--model-type", "monot5", "--loss", "bce",
          "--learning-rate", "1e-4", "--max-steps", "5", "--bf16", "--save-steps", "2", "--threads", "1",
          "--no-resume"])
    assert (seen["model_type"], seen["loss"], seen["learning_rate"]) == ("monot5", "bce", 1e-4)
    assert (seen["max_steps"], seen["bf16"], seen["save_steps"]) == (5, True, 2)
    assert (seen["threads"], seen["resume"]) == (1, False)


def test_rerank_flags_reach_the_scorer(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    ds = SimpleNamespace(queries=lambda *split: {"q1": "a query"})
    monkeypatch.setattr("inpars.datasets.load_dataset", lambda name: ds)
    monkeypatch.setattr("inpars.datasets.read_run_dict", lambda path: {"q1": {"d1": 1.0}})
    monkeypatch.setattr("inpars.safety.check_model", lambda *a, **k: None)  # 'ckpt' names no real model
    seen = _capture(monkeypatch, "inpars.rerank.load_scorer")
    _run(["rerank", "-d", "scifact", "-r", "bm25.trec", "-m", "ckpt", "--model-type", "monot5", "--engine", "torch",
          "--batch-size", "4", "--max-length", "128", "-o", str(tmp_path / "r.trec")])
    assert seen["args"] == ("ckpt", "monot5")
    assert (seen["engine"], seen["batch_size"], seen["max_length"]) == ("torch", 4, 128)
    args = build_parser().parse_args(["rerank", "--run", "x.trec", "-o", "o", "--depth", "9"])
    assert getattr(args, "RerankConfig.first_stage") == "x.trec"
    assert getattr(args, "RerankConfig.depth") == 9


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "-o", "o", "--prompt", "nope"],
        ["generate", "-o", "o", "--backend", "nope"],
        ["retrieve", "-o", "o", "--k", "many"],
        ["filter", "--in", "i", "-o", "o", "--min-words", "x"],
        ["negatives", "--in", "i", "-o", "o", "--method", "nope"],
        ["train", "--train", "t", "-o", "o", "--model-type", "nope"],
        ["train", "--train", "t", "-o", "o", "--loss", "nope"],
        ["rerank", "-o", "o", "--engine", "nope"],
        ["rerank", "-o", "o", "--model-type", "nope"],
    ],
)
def test_invalid_value_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert "error: argument --" in capsys.readouterr().err


def test_registry_choices_are_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "10000")  # no wrapping (argparse breaks lines at hyphens)
    from inpars.families import FAMILIES
    from inpars.prompts import PROMPTS
    from inpars.rerank.engines import ENGINES

    generate = " ".join(_subparser("generate").format_help().split())
    assert all(name in generate for name in PROMPTS.names())
    for cmd in ("train", "rerank"):
        text = " ".join(_subparser(cmd).format_help().split())
        assert "one of: " + ", ".join(FAMILIES.names()) in text
    rerank = " ".join(_subparser("rerank").format_help().split())
    assert "one of: " + ", ".join(ENGINES.names()) in rerank
