"""Fast tier of `inpars run`: the whole stage table on a fake generation backend and a tiny BERT, on a
slice of SciFact. The real-model end-to-end run is in test_pipeline.py (slow)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import generated_records
from fakes import register_fake_backend, tiny_bi_encoder, tiny_cross_encoder, tiny_pipeline_config
from inpars.cli import main
from inpars.config import load_config_dict
from inpars.datasets import read_run_dict
from inpars.errors import ConfigError
from inpars.layout import STAGES, output_path, stage_dir
from inpars.pipeline import reusable_stages, run_pipeline


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_cross_encoder(tmp_path_factory.mktemp("tiny_ce"))


def test_stage_table_runs_caches_and_keeps_generation_across_runtime_changes(
    tmp_path: Path, scifact_dir: Path, tiny_model: str
) -> None:
    register_fake_backend()
    run_dir = tmp_path / "run"
    first = run_pipeline(load_config_dict(tiny_pipeline_config(run_dir, tiny_model)))
    assert list(first.stages) == [s for s in STAGES if s != "report"]
    assert not any(r.skipped for r in first.stages.values())
    for name in first.stages:
        assert (stage_dir(run_dir, name) / "manifest.json").is_file()
    assert output_path(run_dir, "report", "markdown").is_file()
    metrics = json.loads(output_path(run_dir, "evaluate", "metrics").read_text())["aggregate"]
    assert set(metrics) == {"bm25", "reranked", "interpolated"}
    # the reranked run keeps the first-stage documents below the reranked depth
    reranked = output_path(run_dir, "rerank", "reranked", eval_split="test").read_text().splitlines()
    bm25 = output_path(run_dir, "retrieve", "eval_run", eval_split="test").read_text().splitlines()
    assert len(reranked) == len(bm25)

    # Runtime-only settings (threads, batch sizes, save steps) never invalidate finished work.
    again = run_pipeline(load_config_dict(tiny_pipeline_config(
        run_dir, tiny_model, **{"generate.batch_size": 1, "rerank.batch_size": 3, "train.save_steps": 7},
        **{"generate.backend_options": {"n_threads": 1}})))
    assert all(r.skipped for r in again.stages.values()), {n: r.skipped for n, r in again.stages.items()}
    assert (run_dir / "config.json").is_file()

    # A changed setting redoes its stage and the ones whose inputs change.
    changed = run_pipeline(load_config_dict(tiny_pipeline_config(run_dir, tiny_model, **{"evaluate.measures": ["nDCG@10"]})))
    assert [n for n, r in changed.stages.items() if not r.skipped] == ["evaluate"]


def test_another_average_start_reuses_the_finished_training(tmp_path: Path, scifact_dir: Path, tiny_model: str) -> None:
    """train.average_start acts after the last step: changing it re-averages the finished run's last
    checkpoint (no training step) in the stage's new folder; other training settings retrain."""
    register_fake_backend()

    def cfg(**over: object) -> object:
        return load_config_dict(tiny_pipeline_config(tmp_path / "run", tiny_model, **over))

    first = run_pipeline(cfg(), until="train").stages["train"]
    steps = first.manifest["summary"]["steps"]
    # a training finished before its stage declared the setting reusable has no grow record: derived
    manifest = stage_dir(tmp_path / "run", "train") / "manifest.json"
    recorded = json.loads(manifest.read_text())
    assert recorded.pop("grow")["sizes"] == {}
    manifest.write_text(json.dumps(recorded))
    averaged = run_pipeline(cfg(**{"train.average_start": 0.5}), until="train").stages["train"]
    assert not averaged.skipped and averaged.manifest["extended"]
    assert averaged.manifest["summary"]["resumed_from_step"] == averaged.manifest["summary"]["steps"] == steps
    assert averaged.manifest["outputs"]["model"] != first.manifest["outputs"]["model"]
    assert run_pipeline(cfg(**{"train.average_start": 0.5}), until="train").stages["train"].skipped
    other = run_pipeline(cfg(**{"train.average_start": 0.5, "train.learning_rate": 1e-4}), until="train").stages["train"]
    assert not other.manifest["extended"] and other.manifest["summary"]["resumed_from_step"] == 0


def test_more_documents_extend_the_finished_generation(tmp_path: Path, scifact_dir: Path, tiny_model: str) -> None:
    """Raising generate.n_docs (random sample) keeps the finished queries and generates only the new
    documents'; the file equals a fresh run's. Lowering it, or a clusters selection, starts afresh."""
    register_fake_backend()

    def cfg(run_dir: Path, n_docs: int, **over: object) -> object:
        return load_config_dict(tiny_pipeline_config(run_dir, tiny_model, **{"generate.n_docs": n_docs}, **over))

    run_pipeline(cfg(tmp_path / "run", 6), until="generate")
    grown = run_pipeline(cfg(tmp_path / "run", 12), until="generate").stages["generate"]
    assert not grown.skipped and grown.manifest["extended"]
    assert grown.manifest["summary"]["n_skipped_existing"] == 6
    assert grown.manifest["summary"]["n_generated"] == 6
    fresh = run_pipeline(cfg(tmp_path / "fresh", 12), until="generate").stages["generate"]
    assert not fresh.manifest["extended"]

    assert generated_records(output_path(tmp_path / "run", "generate", "queries")) == generated_records(
        output_path(tmp_path / "fresh", "generate", "queries"))
    assert not list((tmp_path / "run").glob(".*.previous"))  # the finished folder went once the new one was done

    smaller = run_pipeline(cfg(tmp_path / "run", 9), until="generate").stages["generate"]
    assert not smaller.manifest["extended"] and smaller.manifest["summary"]["n_skipped_existing"] == 0
    other_seed = run_pipeline(load_config_dict({**tiny_pipeline_config(tmp_path / "run", tiny_model,
                                                                       **{"generate.n_docs": 12}), "seed": 6}),
                              until="generate").stages["generate"]
    assert not other_seed.manifest["extended"] and other_seed.manifest["summary"]["n_skipped_existing"] == 0


def test_reusable_stages_predicts_which_copied_stages_the_pipeline_takes_over(
    tmp_path: Path, scifact_dir: Path, tiny_model: str
) -> None:
    """reusable_stages names the finished stages of another run folder that a config would skip (or, the last
    one, extend): copied into its run folder, exactly those are taken over by run_pipeline."""
    register_fake_backend()
    source = tmp_path / "source"
    run_pipeline(load_config_dict(tiny_pipeline_config(source, tiny_model)))
    every = [s for s in STAGES if s != "report"]
    cases = {"same": ({}, every), "averaged": ({"train.average_start": 0.5}, every[: every.index("train") + 1]),
             "measures": ({"evaluate.measures": ["nDCG@10"]}, every[:-1]),
             "filter": ({"filter.min_words": 3}, ["retrieve", "generate"])}
    for name, (over, expected) in cases.items():
        run_dir = tmp_path / name
        cfg = load_config_dict(tiny_pipeline_config(run_dir, tiny_model, **over))
        predicted = reusable_stages(cfg, source)
        assert predicted == expected, name
        for stage in predicted:
            shutil.copytree(stage_dir(source, stage), stage_dir(run_dir, stage))
        shutil.copytree(source / "bm25-index", run_dir / "bm25-index")
        res = run_pipeline(cfg).stages
        taken = [s for s, r in res.items() if r.skipped or (r.manifest or {}).get("extended")]
        assert taken == predicted, name
        assert [s for s in taken if not res[s].skipped] == (["train"] if name == "averaged" else [])


def test_a_run_that_cannot_start_leaves_the_run_folder_alone(tmp_path: Path, scifact_dir: Path, tiny_model: str) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"dataset": {"name": "scifact"}}')
    cfg = tiny_pipeline_config(run_dir, tiny_model, **{"dataset.name": str(tmp_path / "no-such-dataset")})
    with pytest.raises(FileNotFoundError):
        run_pipeline(load_config_dict(cfg))
    assert json.loads((run_dir / "config.json").read_text()) == {"dataset": {"name": "scifact"}}


def test_from_after_until_is_an_error(tmp_path: Path, tiny_model: str) -> None:
    with pytest.raises(ConfigError, match="--from"):
        run_pipeline(load_config_dict(tiny_pipeline_config(tmp_path, tiny_model)), from_stage="rerank", until="filter")


def test_set_without_equals_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: {name: scifact}\n")
    assert main(["run", str(cfg), "--set", "generate.n_docs"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_report_of_a_folder_that_is_no_run_is_an_error(tmp_path: Path) -> None:
    assert main(["report", str(tmp_path / "typo")]) == 2
    assert not (tmp_path / "typo").exists()


def test_report_and_pipeline_do_not_import_each_other() -> None:
    code = "import sys, inpars.report; print('inpars.pipeline' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture(scope="module")
def unlabeled_scifact(tmp_path_factory: pytest.TempPathFactory, scifact_dir: Path) -> Path:
    """The copy of SciFact a user's own collection resembles: corpus, queries, qrels/test.tsv only."""
    out = tmp_path_factory.mktemp("nolabels") / "scifact"
    script = scifact_dir.parent / "unlabeled_copy.py"
    subprocess.run([sys.executable, str(script), str(scifact_dir), str(out)], check=True, capture_output=True)
    return out


def test_label_free_run_tunes_the_fusion_on_held_out_synthetic_queries(
    tmp_path: Path, unlabeled_scifact: Path, tiny_model: str, qrels_reads: list[tuple[str, bool]]
) -> None:
    register_fake_backend()
    calls = qrels_reads
    run_dir = tmp_path / "run"
    cfg = tiny_pipeline_config(run_dir, tiny_model, **{"dataset.name": str(unlabeled_scifact), "rerank.tune_queries": 2})
    run_pipeline(load_config_dict(cfg))
    # judgements were read by evaluation only
    assert calls and all(split == "test" and access for split, access in calls)
    fusion = json.loads(output_path(run_dir, "rerank", "fusion").read_text())
    assert fusion["tuned_on"] == "pseudo-dev" and fusion["supervised"] is False and fusion["queries"] == 2
    # the pseudo-dev set is a stage of its own: held-out documents, their queries and their BM25 run
    held = output_path(run_dir, "pseudo-dev", "queries").read_text().splitlines()
    train = output_path(run_dir, "negatives", "train").read_text().splitlines()
    held_docs = {json.loads(x)["doc_id"] for x in held}
    assert held_docs == set(output_path(run_dir, "pseudo-dev", "docs").read_text().split())
    assert len(held_docs) == 2 and not held_docs & {json.loads(x)["pos_doc_id"] for x in train}
    assert set(read_run_dict(output_path(run_dir, "pseudo-dev", "run"))) == set(fusion["query_ids"])
    report = output_path(run_dir, "report", "markdown").read_text()
    assert "- Label-free: no stage but evaluation read" in report and "tuned on `pseudo-dev`" in report


def test_a_named_split_that_does_not_exist_stops_before_any_stage(
    tmp_path: Path, unlabeled_scifact: Path, tiny_model: str
) -> None:
    cfg = tiny_pipeline_config(tmp_path / "run", tiny_model, **{"dataset.name": str(unlabeled_scifact), "rerank.tune_split": "train"})
    with pytest.raises(ConfigError, match="no qrels/train.tsv"):
        run_pipeline(load_config_dict(cfg))
    assert not (tmp_path / "run").exists()


def test_label_free_bi_encoder_run_chooses_between_trained_and_start_model_on_pseudo_dev(
    tmp_path: Path, unlabeled_scifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    register_fake_backend()
    start = tiny_bi_encoder(tmp_path_factory.mktemp("tiny_bi"))
    run_dir = tmp_path / "run"
    over = {"dataset.name": str(unlabeled_scifact), "train.model_type": "bi-encoder", "train.loss": "margin-mse",
            "negatives.method": "dense", "negatives.teacher": "fused", "negatives.model": start,
            "negatives.max_length": 48}
    run_pipeline(load_config_dict(tiny_pipeline_config(run_dir, start, **over)))
    train = [json.loads(x) for x in output_path(run_dir, "negatives", "train").read_text().splitlines()]
    assert all(len(r["scores"]) == 1 + len(r["negatives"]) for r in train)  # GPL pseudo-labels
    fusion = json.loads(output_path(run_dir, "rerank", "fusion").read_text())
    # three pseudo-dev queries are too few to decide on: the start model and the fallback weight are kept
    assert fusion["queries"] == 3 and fusion["selected_model"] == "start" and fusion["alpha"] == 0.5
    assert "fewer than the 30 a choice needs" in fusion["reason"]
    ranker = json.loads(output_path(run_dir, "rerank", "ranker").read_text())
    assert ranker["model"] == start and ranker["alpha"] == 0.5 and ranker["model_choice"] == "start"
    report = output_path(run_dir, "report", "markdown").read_text()
    assert report.index("## Verdict") < report.index("## Run") and "fewer than the 30" in report
    # allowed to decide on them: the trained model only where it fuses better with p < decision_p
    over["rerank.min_decision_queries"] = 1
    run_pipeline(load_config_dict(tiny_pipeline_config(run_dir, start, **over)))
    fusion = json.loads(output_path(run_dir, "rerank", "fusion").read_text())
    seen, comparison = fusion["selection_pseudo_dev"], fusion["comparison"]
    assert set(seen) == {"trained", "start"}
    assert abs(comparison["gain"] - (seen["trained"] - seen["start"])) < 1e-6
    better = comparison["gain"] > 0 and comparison["p"] < 0.05
    assert fusion["selected_model"] == ("trained" if better else "start")
    assert abs(seen[fusion["selected_model"]] - fusion["table"][f"{fusion['alpha']:g}"]) < 1e-6
    assert "Model selection on `pseudo-dev`" in output_path(run_dir, "report", "markdown").read_text()
    # switched off, or a cross-encoder (whose start has no head): no selection
    run_pipeline(load_config_dict(tiny_pipeline_config(tmp_path / "off", start, **over, **{"rerank.select_start": False})))
    assert "selected_model" not in json.loads(output_path(tmp_path / "off", "rerank", "fusion").read_text())


def _own_collection(root: Path, scifact_dir: Path, n: int = 30) -> Path:
    """A user's own collection: a corpus only (no queries.jsonl, no qrels/), with what real collections
    hold: an empty and a blank document, a duplicate text, a one-word document, a 1 MB document and odd ids."""
    lines = (scifact_dir / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    docs = [json.loads(x) for x in lines]
    docs += [{"_id": "empty doc", "title": "", "text": ""}, {"_id": "blank/1", "title": " ", "text": "\t "},
             {"_id": "dup-ü", "title": docs[0]["title"], "text": docs[0]["text"]},
             {"_id": "one", "title": "", "text": "Cells."},
             {"_id": "huge", "title": "A 1 MB document", "text": "cells divide and grow " * 48000}]
    root.mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return root


def test_own_collection_without_judgements_runs_end_to_end_and_its_ranker_searches(
    tmp_path: Path, scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str], qrels_reads: list[tuple[str, bool]],
) -> None:
    """`inpars run --dataset PATH` (the recommended recipe, no config file) on a folder with no qrels/ at all,
    then `inpars search RUN_DIR` and the Python Ranker on new queries."""
    register_fake_backend()
    coll = _own_collection(tmp_path / "mine", scifact_dir)
    start = tiny_bi_encoder(tmp_path_factory.mktemp("tiny_bi_own"))
    run_dir = tmp_path / "run"
    tiny = {"generate.backend": "fake", "generate.model": "none", "generate.max_doc_tokens": 40,
            "train.model": start, "train.max_steps": 2, "train.batch_size": 4, "train.max_length": 48,
            "rerank.max_length": 48, "rerank.engine": "torch", "rerank.depth": 10, "retrieve.k": 20,
            "negatives.depth": 20}
    sets = [x for k, v in tiny.items() for x in ("--set", f"{k}={v}")]
    assert main(["run", "--dataset", str(coll), "--run-dir", str(run_dir), *sets]) == 0
    out = capsys.readouterr().out
    assert "[evaluate] skipped: the collection has no judged split" in out
    assert f"inpars search {run_dir}" in out and "ranker:" in out and "report:" in out
    assert not qrels_reads  # nothing asked for judgements
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["dataset"]["eval_split"] is None and cfg["generate"]["n_docs"] == 1000  # the recipe, unchanged
    generated = [json.loads(x) for x in output_path(run_dir, "generate", "queries").read_text().splitlines()]
    assert {r["doc_id"] for r in generated} >= {"dup-ü", "one"}  # every document with text, odd ids included
    assert not {r["doc_id"] for r in generated} & {"empty doc", "blank/1"}  # never an empty positive
    assert not stage_dir(run_dir, "evaluate").exists()
    ranker = json.loads(output_path(run_dir, "rerank", "ranker").read_text())
    assert ranker["alpha"] is not None and ranker["first_stage"]["index"] == "bm25-index"
    report = output_path(run_dir, "report", "markdown").read_text()
    assert report.startswith(f"# inpars report: {run_dir}\n\n## Verdict")
    assert "no effectiveness figure on real queries" in report and "## Effectiveness" not in report

    queries = tmp_path / "q.tsv"
    queries.write_text("u1\tvitamin d and the immune system\nu2\tgene expression in tumour cells\n")
    trec = tmp_path / "run.trec"
    assert main(["search", str(run_dir), "--queries", str(queries), "--out", str(trec), "--k", "15"]) == 0
    from inpars.datasets import read_run_dict
    from inpars.ranker import Ranker

    written = read_run_dict(trec)
    assert set(written) == {"u1", "u2"} and all(0 < len(docs) <= 15 for docs in written.values())
    r = Ranker.load(run_dir)
    assert r.search(["vitamin d and the immune system"], k=15)["1"] == pytest.approx(written["u1"], abs=1e-5)
    r.close()
    # printed hits without --out
    assert main(["search", str(run_dir), "--query", "gene expression in tumour cells", "--show", "3"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-4].startswith("1\tgene expression") and printed[-3].lstrip().startswith("1. ")
    # a folder that is no run, or a run without its rerank stage: one clear line, exit 2
    assert main(["search", str(tmp_path), "--query", "x"]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_quick_recipe_trains_nothing_and_tunes_the_given_model_on_every_generated_document(
    tmp_path: Path, scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    register_fake_backend()
    coll = _own_collection(tmp_path / "mine", scifact_dir, n=20)
    model = tiny_bi_encoder(tmp_path_factory.mktemp("tiny_bi_quick"))
    run_dir = tmp_path / "run"
    tiny = {"generate.backend": "fake", "generate.model": "none", "generate.max_doc_tokens": 40,
            "rerank.model": model, "rerank.max_length": 48, "rerank.engine": "torch", "rerank.depth": 10,
            "rerank.min_decision_queries": 5}
    sets = [x for k, v in tiny.items() for x in ("--set", f"{k}={v}")]
    assert main(["-q", "run", "--dataset", str(coll), "--recipe", "quick", "--run-dir", str(run_dir), *sets]) == 0
    # nothing trained, so no filter steps, no negatives: the generated queries serve the pseudo-dev set only
    assert not any(stage_dir(run_dir, s).exists() for s in ("filter", "negatives", "train"))
    summary = json.loads((stage_dir(run_dir, "pseudo-dev") / "manifest.json").read_text())["summary"]
    generated = {json.loads(x)["doc_id"] for x in output_path(run_dir, "generate", "queries").read_text().splitlines()}
    assert summary["documents"] == len(generated) == 23  # 20 + dup + one word + 1 MB
    fusion = json.loads(output_path(run_dir, "rerank", "fusion").read_text())
    assert fusion["model"] == "given" and fusion["alpha_source"] == "tuned" and "the model the config gives" in fusion["reason"]
    ranker = json.loads(output_path(run_dir, "rerank", "ranker").read_text())
    assert ranker["model"] == str(Path(model).resolve()) and ranker["alpha"] == fusion["alpha"]
    out = capsys.readouterr().out
    assert "[generate]" not in out and "ranker:" in out  # -q: no stage lines, the products still named


def test_a_second_writer_of_a_run_folder_or_a_generation_file_gets_one_line(
    tmp_path: Path, scifact_dir: Path, tiny_model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An OS lock per run folder and per generation output: the second writer exits 2 at once instead of
    writing every record twice (the lock dies with its holder, so a killed run never blocks)."""
    from inpars.io import exclusive

    register_fake_backend()
    run_dir = tmp_path / "run"
    cfg = load_config_dict(tiny_pipeline_config(run_dir, tiny_model))
    with exclusive(run_dir / "run", "held"), pytest.raises(ConfigError, match="another inpars process"):
        run_pipeline(cfg)
    assert not (run_dir / "config.json").exists()
    out = tmp_path / "q.jsonl"
    argv = ["generate", "--dataset", "scifact", "--backend", "fake", "--model", "none", "--n-docs", "2", "--out", str(out)]
    with exclusive(out, "held"):
        assert main(argv) == 2
    assert "being written by another inpars process" in capsys.readouterr().err and not out.exists()
    assert main(argv) == 0 and len(out.read_text().splitlines()) == 2  # released: the next writer runs


def test_the_report_of_a_half_finished_run_names_what_is_missing(
    tmp_path: Path, scifact_dir: Path, tiny_model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    register_fake_backend()
    run_dir = tmp_path / "run"
    run_pipeline(load_config_dict(tiny_pipeline_config(run_dir, tiny_model)), until="pseudo-dev")
    (stage_dir(run_dir, "negatives")).mkdir()
    (stage_dir(run_dir, "negatives") / "pending.json").write_text("{}")
    assert main(["report", str(run_dir)]) == 0
    report = output_path(run_dir, "report", "markdown").read_text()
    assert ("**Unfinished run**: negatives (interrupted), train (not run yet), rerank (not run yet), "
            "evaluate (not run yet)") in report
    # a damaged manifest or one with wrong types: one line naming the file (and field), exit 2
    manifest = stage_dir(run_dir, "filter") / "manifest.json"
    good = json.loads(manifest.read_text())
    manifest.write_text('{"stage": "filter", "finished"')
    assert main(["report", str(run_dir)]) == 2
    assert "03-filter/manifest.json:1: invalid JSON" in capsys.readouterr().err
    for key, bad in (("seconds", [1, 2]), ("summary", "x"), ("resumed", 3)):
        manifest.write_text(json.dumps({**good, key: bad}))
        assert main(["report", str(run_dir)]) == 2
        assert f"manifest.json: field '{key}': expected" in capsys.readouterr().err
