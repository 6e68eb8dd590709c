"""Config validation: one clear message naming every bad key path; flags override the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inpars.cli import main
from inpars.config import PipelineConfig, load_config, load_config_dict
from inpars.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_fill_every_section() -> None:
    cfg = load_config_dict({"dataset": {"name": "scifact"}})
    assert cfg.generate.backend == "llamacpp" and cfg.generate.model == "smollm2-135m"
    assert cfg.retrieve.k1 == 0.9 and cfg.retrieve.b == 0.4
    assert cfg.negatives.n_negatives == 1 and cfg.negatives.depth == 1000


def test_every_error_is_named_by_key_path() -> None:
    with pytest.raises(ConfigError) as err:
        load_config_dict(
            {
                "dataset": {},
                "generate": {"temprature": 0.7, "n_docs": "many"},
                "train": {"batch_size": 0},
                "bogus": 1,
            }
        )
    msg = str(err.value)
    assert "dataset.name: required key is missing" in msg
    assert "generate.temprature: unknown key" in msg
    assert "generate.n_docs: Input should be a valid integer" in msg
    assert "train.batch_size: Input should be greater than or equal to 1" in msg
    assert "bogus: unknown key" in msg


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("dataset:\n  name: scifact\ngenerate: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: invalid YAML"):
        load_config(p)


def test_overrides_win_over_file(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("dataset: {name: scifact}\ngenerate: {n_docs: 10}\n")
    cfg = load_config(p, {"generate.n_docs": 5, "seed": 7})
    assert cfg.generate.n_docs == 5 and cfg.seed == 7


@pytest.mark.parametrize("name", ["demo.yaml", "beir.yaml"])
def test_example_configs_validate(name: str) -> None:
    assert isinstance(load_config(ROOT / "examples" / name), PipelineConfig)


def test_benchmark_config_validates() -> None:
    assert isinstance(load_config(ROOT / "benchmarks" / "scifact.yaml"), PipelineConfig)


def test_cli_reports_config_errors_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("dataset: {name: scifact}\nrerank: {depth: -1}\n")
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err
    assert "rerank.depth" in err and "Traceback" not in err


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("inpars ")


def test_a_field_added_later_is_part_of_the_identity_only_when_set() -> None:
    """generate.doc_selection came after finished runs: at its default ('random', what every earlier run
    did) it leaves their fingerprints as they were; another value is part of the identity."""
    from inpars.config import GenerateConfig
    from inpars.fingerprint import identity

    plain = identity(GenerateConfig())
    assert "doc_selection" not in plain and "selection_options" not in plain
    assert identity(GenerateConfig(doc_selection="random", selection_options={})) == plain
    clusters = identity(GenerateConfig(doc_selection="clusters"))
    assert clusters["doc_selection"] == "clusters" and clusters != plain
    assert identity(GenerateConfig(doc_selection="clusters", selection_options={"clusters": 4})) != clusters


def test_identity_leaves_out_runtime_only_fields() -> None:
    from inpars.config import GenerateConfig, RerankConfig, TrainConfig
    from inpars.fingerprint import fingerprint, identity

    a = GenerateConfig(batch_size=1, backend_options={"n_threads": 1, "n_ctx": 512})
    b = GenerateConfig(batch_size=4, backend_options={"n_threads": 2, "n_threads_batch": 2, "n_ctx": 512})
    assert identity(a) == identity(b) and fingerprint(identity(a)) == fingerprint(identity(b))
    assert "batch_size" not in identity(a) and identity(a)["backend_options"] == {"n_ctx": 512}
    assert identity(a) != identity(GenerateConfig(batch_size=1, backend_options={"n_ctx": 1024}))
    assert identity(a) != identity(GenerateConfig(batch_size=1, temperature=0.7))
    # training batch size changes the model; save_steps only where checkpoints land
    assert identity(TrainConfig(batch_size=8)) != identity(TrainConfig(batch_size=16))
    assert identity(TrainConfig(save_steps=10)) == identity(TrainConfig(save_steps=500))
    assert identity(RerankConfig(batch_size=8)) == identity(RerankConfig(batch_size=64))
    full = load_config_dict({"dataset": {"name": "scifact"}, "threads": 1})
    assert identity(full) == identity(load_config_dict({"dataset": {"name": "scifact"}, "threads": 2}))
    assert full.model_dump()["threads"] == 1  # still part of the config, only not of its identity


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("retrieve.k1", float("inf"), "retrieve.k1"),
    ("generate.temperature", float("nan"), "generate.temperature"),
    ("train.learning_rate", float("inf"), "train.learning_rate"),
    ("rerank.alphas", [0.5, 2], "rerank.alphas: each weight is the reranker's share, in 0..1; got 2"),
    ("generate.selection_options", {"clusters": 0}, "\n  generate.selection_options.clusters: expected a positive"),
    ("rerank.alphas", [], "rerank.alphas"),
    ("evaluate.measures", ["nDCG@abc"], "unknown evaluation measure 'nDCG@abc'"),
    ("evaluate.measures", ["nDCG@0"], "the cut-off must be at least 1"),
    ("seed", -1, "seed"),
    ("generate.queries_per_doc", 10**11, "generate.queries_per_doc"),
    ("negatives.n_negatives", 10**9, "negatives.n_negatives"),
    ("train.max_length", 10**8, "train.max_length"),
    ("rerank.max_length", 10**8, "rerank.max_length"),
])
def test_values_no_stage_could_use_are_refused_when_the_config_loads(key: str, value: object, expected: str) -> None:
    """Checked before the first stage: a non-finite number, a weight outside 0..1, a measure pytrec_eval would
    abort on, a negative seed, counts beyond what memory allows."""
    data: dict = {"dataset": {"name": "scifact"}}
    section, _, field = key.rpartition(".")
    (data.setdefault(section, {}) if section else data)[field] = value
    if key == "generate.selection_options":
        data["generate"]["doc_selection"] = "clusters"
    with pytest.raises(ConfigError, match=re.escape(expected)) as info:
        load_config_dict(data)
    assert "Value error" not in str(info.value)  # our own message, without pydantic's wrapping


def test_thread_counts_are_bounded_by_the_cores() -> None:
    from inpars.safety import THREADS_PER_CORE, check_threads, usable_cores

    check_threads(THREADS_PER_CORE * usable_cores())
    for bad in (-3, THREADS_PER_CORE * usable_cores() + 1, 100000):
        with pytest.raises(ConfigError, match="--threads"):
            check_threads(bad)


def test_a_key_given_twice_and_an_alias_bomb_are_refused(tmp_path: Path) -> None:
    twice = tmp_path / "twice.yaml"
    twice.write_text("dataset: {name: scifact}\ngenerate:\n  n_docs: 5\n  n_docs: 6\n")
    with pytest.raises(ConfigError, match=re.escape(f"{twice}:4: invalid YAML (key 'n_docs' given twice)")):
        load_config(twice)
    levels = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    levels += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("dataset: {name: scifact}\ngenerate:\n  backend_options:\n    extra_body:\n"
                    + "".join(f"      {line}\n" for line in levels))
    with pytest.raises(ConfigError, match="expands to more than 100,000 values"):
        load_config(bomb)
    shared = tmp_path / "anchors.yaml"  # an anchor used plainly still loads
    shared.write_text("dataset: {name: scifact}\nfilter:\n  steps:\n    - &s {name: logprob, top_fraction: 0.5}\n")
    assert load_config(shared).filter.steps[0].top_fraction == 0.5


def test_the_packaged_recommended_recipe_is_examples_beir_yaml() -> None:
    """`inpars run --dataset PATH` runs the packaged recipe; examples/beir.yaml shows it as a config file."""
    import yaml

    from inpars.recipes import recipe_text

    example = yaml.safe_load((ROOT / "examples" / "beir.yaml").read_text(encoding="utf-8"))
    for key in ("dataset", "run_dir"):
        example.pop(key)
    assert yaml.safe_load(recipe_text("recommended")) == example
