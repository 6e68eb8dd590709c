"""Scoring on a local Ray cluster (``executor: ray``): 2 CPUs, 2 actors, a tiny random BERT cross-encoder.

One module-scoped cluster whose workers run :func:`ray_helpers.setup` (a scoring actor can be armed to kill
its worker once, on the first shard with a chosen query word).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("torch")

from conftest import write_beir  # noqa: E402
from fakes import tiny_cross_encoder  # noqa: E402
from inpars.config import load_config_dict  # noqa: E402
from inpars.errors import ConfigError, MissingExtraError  # noqa: E402
from inpars.filter import filter_queries, make_filter  # noqa: E402
from inpars.records import GeneratedQuery  # noqa: E402
from inpars.rerank import load_scorer, rerank_run  # noqa: E402

RAY = {"executor": "ray", "executor_options": {"actors": 2}}
SCORER = {"model_type": "cross-encoder", "engine": "torch", "batch_size": 4}
WORDS = ["vitamin", "sleep", "aspirin", "statins", "exercise", "cholesterol", "infection", "obesity", "mood"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_cross_encoder(tmp_path_factory.mktemp("ray_ce") / "ce")


@pytest.fixture(scope="module")
def beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs = [
        {"_id": f"d{i:02d}", "title": WORDS[i % len(WORDS)].title(),
         "text": f"topic{i} " + " ".join(WORDS[(i * k + 1) % len(WORDS)] for k in range(3 + (i * 5) % 17)) + "."}
        for i in range(18)
    ]
    queries = [{"_id": f"q{j}", "text": f"{WORDS[j]} and {WORDS[(j + 3) % len(WORDS)]}"} for j in range(6)]
    return write_beir(tmp_path_factory.mktemp("ray_scoring") / "tiny", docs, queries, {"test": [("q0", "d00", 1)]})


def _pairs() -> list[tuple[str, str]]:
    """Pairs of varied lengths over several shards; one query holds the word 'killword'."""
    pairs = [(f"{WORDS[i % 9]} {WORDS[(i * 2) % 9]}", " ".join(WORDS[(i + k) % 9] for k in range(2 + (i * 7) % 23)))
             for i in range(70)]
    pairs[41] = ("killword " + pairs[41][0], pairs[41][1])
    return pairs


def test_ray_scores_equal_local_and_a_killed_actor_is_restarted(cluster: Path, model: str) -> None:
    pairs = _pairs()
    local = load_scorer(model, **SCORER).score(pairs)
    scorer = load_scorer(model, **SCORER, **RAY)
    try:
        assert scorer.describe()["executor"] == "ray" and scorer.engine == "torch"
        assert (scorer.model_type, scorer.max_length) == ("cross-encoder", 128)
        scores = scorer.score(pairs)
        assert len(scores) == len(local)
        assert max(abs(a - b) for a, b in zip(scores, local, strict=True)) <= 1e-6
        assert len(set(scores)) > 10  # the scores differ by pair: their order is checked, not a constant
        cluster.write_text("exit killword", encoding="utf-8")
        assert scorer.score(pairs) == scores  # the shard of the killed actor was retried on its restart
        assert not cluster.exists(), "the armed actor never ran"
    finally:
        scorer.close()


def test_rerank_run_on_ray_equals_local(cluster: Path, model: str, beir: Path, tmp_path: Path) -> None:
    run = {f"q{j}": {f"d{i:02d}": float(30 - i) for i in range(j, j + 12)} for j in range(6)}
    local = rerank_run(beir, run, model=model, depth=10, **SCORER)
    out = tmp_path / "ray.trec"
    on_ray = rerank_run(beir, run, out, model=model, depth=10, **SCORER, **RAY)
    assert set(on_ray) == set(local)
    for q in local:
        assert set(on_ray[q]) == set(local[q])
        assert all(abs(on_ray[q][d] - local[q][d]) <= 1e-6 for d in local[q])
    # the score cache does not depend on where the scores were computed: a local rerun reuses it
    again = rerank_run(beir, run, out, model=model, depth=10, **SCORER)
    assert again == on_ray


def _records() -> list[GeneratedQuery]:
    return [GeneratedQuery.from_json({"doc_id": f"d{i:02d}", "query": f"topic{i} {WORDS[(i * 4) % 9]} effect",
                                      "log_probs": [], "prompt_text": "P"}) for i in range(12)]


@pytest.mark.parametrize("step", [
    {"name": "reranker", "top_k": 5},
    {"name": "consistency", "top_k": 2, "depth": 6},
])
def test_filter_step_on_ray_keeps_the_same_queries(
    cluster: Path, model: str, beir: Path, tmp_path: Path, step: dict[str, Any]
) -> None:
    step = {**step, "model": model, "options": SCORER}
    kept = []
    for name, extra in (("local", {}), ("ray", RAY)):
        out = tmp_path / f"{name}.jsonl"
        rep = filter_queries(_records(), out, dataset=beir, index_dir=tmp_path / "idx", steps=[{**step, **extra}])
        kept.append([json.loads(line)["query"] for line in out.read_text(encoding="utf-8").splitlines()])
        assert "executor" not in json.dumps(rep.steps[-1].params)  # runtime only: not a parameter of the step
    assert kept[0] == kept[1]
    assert 0 < len(kept[0]) < len(_records())


def test_bad_executor_settings_are_one_clear_error(monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    with pytest.raises(ConfigError, match=r"rerank\.executor_options: .*executor_options\.actor: not an option"):
        load_config_dict({"dataset": {"name": "x"}, "rerank": {"executor": "ray", "executor_options": {"actor": 2}}})
    with pytest.raises(ConfigError, match=r"rerank\.executor: "):
        load_config_dict({"dataset": {"name": "x"}, "rerank": {"executor": "spark"}})
    with pytest.raises(ConfigError, match=r"filter\.steps\.0\.executor_options: .*actors: expected a positive integer"):
        load_config_dict({"dataset": {"name": "x"}, "filter": {"steps": [
            {"name": "reranker", "executor": "ray", "executor_options": {"actors": 0}}]}})
    with pytest.raises(ConfigError, match="filter 'logprob' loads no reranker"):
        make_filter({"name": "logprob", "top_k": 3, "executor": "ray"})
    with pytest.raises(ConfigError, match=r"^executor_options\.cpus_per_actor: expected a number >= 0"):
        load_scorer(model, **SCORER, executor="ray", executor_options={"cpus_per_actor": -1})
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingExtraError, match=r"inpars-toolkit\[ray\]"):
        load_scorer(model, **SCORER, **RAY)


def test_cli_rerank_rejects_an_unknown_executor_option(
    model: str, beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from inpars.cli import main

    run = tmp_path / "first.trec"
    run.write_text("q0 Q0 d00 1 3.0 bm25\nq0 Q0 d01 2 2.0 bm25\n", encoding="utf-8")
    code = main(["rerank", "--dataset", str(beir), "--run", str(run), "--model", model, "--out",
                 str(tmp_path / "out.trec"), "--executor", "ray", "--executor-option", "actor=2"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "executor_options.actor: not an option" in err
