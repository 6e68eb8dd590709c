"""Reranking: scorer invariances (length sorting, batch size, truncation), ONNX engines, monoT5 scoring,
rerank_run on a SciFact slice (with resume), interpolation arithmetic, tuning refuses the test split, CLI.

Fusion (tail, sampling of tuning queries, rerank_and_fuse) is tested in test_fusion.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import minilm_tokenizer as _minilm_tokenizer
from inpars import fusion, rerank
from inpars.datasets import load_dataset, ranked, read_run, read_run_dict, write_run
from inpars.errors import ConfigError, InputError, LeakageError

PAIRS = [
    ("does vitamin d prevent infections", "Vitamin D supplementation reduces respiratory infections in children."),
    ("aspirin", "Aspirin lowers the risk of heart attack."),
    ("sleep and obesity in children", "Short sleep is linked to obesity. " * 12),
    ("statins cholesterol cardiovascular events in older adults", "Statins."),
    ("exercise", "Regular exercise improves sleep quality and mood, and lowers blood pressure in adults."),
    ("a", "b"),
    ("protein folding", "Proteins fold into three-dimensional structures " * 3),
]



@pytest.fixture(scope="module")
def tiny_ce(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer, 32-wide BERT with a random one-logit head and the MiniLM tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tok = _minilm_tokenizer()
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, num_labels=1,
    )
    model = BertForSequenceClassification(cfg)
    with torch.no_grad():  # a head with a visible spread, so that differences in scores mean something
        model.classifier.weight.mul_(20)
    path = tmp_path_factory.mktemp("tiny_ce")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)



@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPARS_CACHE", str(tmp_path_factory.getbasetemp() / "inpars-cache"))


@pytest.fixture(autouse=True)
def _keep_threads():  # type: ignore[no-untyped-def]
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------------------------------- scorer


def test_length_sorting_restores_input_order(tiny_ce: str) -> None:
    scorer = rerank.load_scorer(tiny_ce, batch_size=3, max_length=64)
    assert isinstance(scorer, rerank.CrossEncoderScorer)
    batched = scorer.score(PAIRS)
    one_by_one = [scorer.score([p])[0] for p in PAIRS]  # no sorting, no padding
    assert batched == pytest.approx(one_by_one, abs=1e-5)
    assert len(set(round(s, 4) for s in batched)) == len(PAIRS)  # distinct: a permutation would show
    rev = scorer.score(PAIRS[::-1])
    assert rev[::-1] == pytest.approx(batched, abs=1e-5)


def test_batch_size_does_not_change_scores(tiny_ce: str) -> None:
    ref = rerank.load_scorer(tiny_ce, batch_size=1, max_length=64).score(PAIRS)
    for bs in (2, 5, 32):
        assert rerank.load_scorer(tiny_ce, batch_size=bs, max_length=64).score(PAIRS) == pytest.approx(ref, abs=1e-5)


def test_truncation_cuts_the_document_not_the_query(tiny_ce: str) -> None:
    scorer = rerank.load_scorer(tiny_ce, max_length=32)
    q = "does vitamin d prevent infections"
    doc = "word " * 100
    # Past the limit the document's tail is cut: more text changes nothing...
    a, b = scorer.score([(q, doc), (q, doc + "completely different ending text")])
    assert a == pytest.approx(b, abs=1e-6)
    # ...while the query is kept whole: changing its last word changes the score.
    (c,) = scorer.score([("does vitamin d prevent cancer", doc)])
    assert abs(c - a) > 1e-4
    # A query longer than max_length alone still scores (both are cut).
    (d,) = scorer.score([("long query " * 40, doc)])
    assert math.isfinite(d)


def test_last_layer_at_the_first_token_only_gives_the_same_scores(tiny_ce: str) -> None:
    """The pruned last layer (CLS position only) is the same function as the full model: compared with
    the unmodified transformers model on a padded batch, with sdpa and eager attention masks."""
    import torch

    pruned = rerank.load_scorer(tiny_ce, batch_size=4, max_length=64)
    assert isinstance(pruned, rerank.CrossEncoderScorer) and pruned.describe()["first_token_last_layer"]
    full = rerank.CrossEncoderScorer(tiny_ce, batch_size=4, max_length=64, first_token_last_layer=False)
    assert not full.describe()["first_token_last_layer"]
    got, ref = pruned.score(PAIRS), full.score(PAIRS)
    assert got == pytest.approx(ref, abs=1e-5)
    assert len(set(round(s, 4) for s in got)) == len(PAIRS)
    enc = full.tokenizer(
        [q for q, _ in PAIRS], [d for _, d in PAIRS], padding=True, truncation="only_second", max_length=64,
        return_tensors="pt",
    )
    assert int(enc["attention_mask"].sum()) < enc["attention_mask"].numel()  # the batch really is padded
    for impl in ("sdpa", "eager"):
        model = rerank._load_sequence_classifier(tiny_ce, 1, attn_implementation=impl).eval()
        with torch.inference_mode():
            before = model(**enc).logits[:, 0]
            assert rerank.prune_last_layer(model)
            assert not rerank.prune_last_layer(model)  # once only
            after = model(**enc).logits[:, 0]
        assert after.tolist() == pytest.approx(before.tolist(), abs=1e-5)
        assert after.tolist() == pytest.approx(ref, abs=1e-5)
    training = rerank._load_sequence_classifier(tiny_ce, 1).train()
    assert not rerank.prune_last_layer(training)  # dropout would differ: left alone


def test_empty_and_bad_pairs(tiny_ce: str) -> None:
    scorer = rerank.load_scorer(tiny_ce)
    assert scorer.score([]) == []
    with pytest.raises(InputError, match="pair 1"):
        scorer.score([("q", "d"), ("q",)])  # type: ignore[list-item]


def test_onnx_engines_match_torch_and_are_cached(tiny_ce: str) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    ref = rerank.load_scorer(tiny_ce, max_length=64).score(PAIRS)
    onnx = rerank.load_scorer(tiny_ce, max_length=64, engine="onnx", batch_size=3, threads=1)
    assert onnx.score(PAIRS) == pytest.approx(ref, abs=1e-4)
    int8 = rerank.load_scorer(tiny_ce, max_length=64, engine="onnx-int8", batch_size=3)
    got = int8.score(PAIRS)
    assert got != ref  # int8 weights move the scores a little...
    assert got == pytest.approx(ref, abs=0.02 * max(1.0, *map(abs, ref)))  # ...but only a little
    path = rerank.onnx_model_path(tiny_ce, quantize=True)
    assert path.stat().st_size < 0.5 * rerank.onnx_model_path(tiny_ce).stat().st_size
    mtime = path.stat().st_mtime_ns
    rerank.load_scorer(tiny_ce, engine="onnx-int8")  # reuses the cached graph
    assert path.stat().st_mtime_ns == mtime


def test_torch_bf16_engine_is_close_to_fp32_or_refused(tiny_ce: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if not rerank.bf16_supported("cpu"):
        with pytest.raises(ConfigError, match="no native bfloat16"):
            rerank.load_scorer(tiny_ce, engine="torch-bf16", device="cpu")
        return
    ref = rerank.load_scorer(tiny_ce, max_length=64).score(PAIRS)
    bf16 = rerank.load_scorer(tiny_ce, max_length=64, engine="torch-bf16", device="cpu", batch_size=3)
    assert bf16.engine == "torch-bf16"
    got = bf16.score(PAIRS)
    assert all(isinstance(v, float) for v in got)
    assert got == pytest.approx(ref, abs=0.05 * max(1.0, *map(abs, ref)))  # bf16 keeps ~3 significant digits
    from inpars.scoring import engines

    monkeypatch.setattr(engines, "bf16_supported", lambda device="cpu": False)
    with pytest.raises(ConfigError, match="no native bfloat16"):
        rerank.load_scorer(tiny_ce, engine="torch-bf16", device="cpu")


def test_auto_engine_measures_the_faster_exact_engine_and_falls_back_to_torch(
    tiny_ce: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``auto`` on a CPU times onnx and torch on the first four batches, keeps the faster, caches the choice
    per machine and model; the scores are those of the chosen engine, exactly."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import json
    import time

    from inpars.families.cross_encoder import CrossEncoderScorer
    from inpars.scoring import calibrate

    monkeypatch.setenv("INPARS_CACHE", str(tmp_path / "cache"))
    ref = rerank.load_scorer(tiny_ce, max_length=64).score(PAIRS)
    auto = rerank.load_scorer(tiny_ce, max_length=64, engine="auto", device="cpu", batch_size=2)
    assert auto.engine == "auto"  # not measured yet
    got = auto.score(PAIRS)
    assert auto.engine in ("onnx", "torch") and got == pytest.approx(ref, abs=1e-4)
    exact = rerank.load_scorer(tiny_ce, max_length=64, engine=auto.engine, device="cpu", batch_size=2)
    assert got == exact.score(PAIRS)  # the chosen engine's own scores, probe batches included
    cached = json.loads((tmp_path / "cache" / calibrate.CACHE_FILE).read_text())
    assert [e["engine"] for e in cached.values()] == [auto.engine]

    # a slower onnx on another machine (another cache): torch is chosen, and a later scorer loads torch only
    monkeypatch.setenv("INPARS_CACHE", str(tmp_path / "cache2"))
    real = CrossEncoderScorer._forward_onnx

    def slow_onnx(self: CrossEncoderScorer, batch: list) -> list[float]:
        time.sleep(0.5)  # far beyond a tiny model's batch, even on a busy machine
        return real(self, batch)

    monkeypatch.setattr(CrossEncoderScorer, "_forward_onnx", slow_onnx)
    slow = rerank.load_scorer(tiny_ce, max_length=64, engine="auto", device="cpu", batch_size=2)
    assert slow.score(PAIRS) == pytest.approx(ref, abs=1e-6) and slow.engine == "torch"
    again = rerank.load_scorer(tiny_ce, max_length=64, engine="auto", device="cpu", batch_size=2)
    assert again.engine == "torch" and again._session is None  # type: ignore[attr-defined]
    # another batch size is another key: measured again
    assert rerank.load_scorer(tiny_ce, max_length=64, engine="auto", device="cpu", batch_size=3).engine == "auto"
    # the cache can be switched off: every scorer measures
    monkeypatch.setenv("INPARS_ENGINE_CHOICE", "off")
    assert rerank.load_scorer(tiny_ce, max_length=64, engine="auto", device="cpu", batch_size=2).engine == "auto"
    monkeypatch.delenv("INPARS_ENGINE_CHOICE")
    monkeypatch.setattr(CrossEncoderScorer, "_forward_onnx", real)

    def no_onnx(*args: object, **kwargs: object) -> None:
        raise ImportError("onnxruntime is not installed")

    from inpars.scoring import onnx as scoring_onnx

    monkeypatch.setattr(scoring_onnx, "onnx_model_path", no_onnx)
    fallback = rerank.load_scorer(tiny_ce, max_length=64, engine="auto", device="cpu")
    assert fallback.engine == "torch" and fallback.score(PAIRS) == pytest.approx(ref, abs=1e-6)
    with pytest.raises(ImportError):
        rerank.load_scorer(tiny_ce, engine="onnx")  # asked for explicitly: no silent fallback


def test_model_type_is_read_from_the_checkpoint(tiny_ce: str, tiny_t5: str) -> None:
    from inpars.models import resolve_model

    assert rerank.detect_model_type(tiny_ce) == "cross-encoder"
    assert rerank.detect_model_type(tiny_t5) == "monot5"
    # the packaged all-MiniLM-L6-v2 is a sentence-transformers model without a head: a bi-encoder
    assert rerank.detect_model_type(resolve_model("minilm-l6")) == "bi-encoder"
    assert isinstance(rerank.load_scorer("minilm-l6", max_length=32), rerank.BiEncoderScorer)


def test_unknown_engine_and_type(tiny_ce: str, tiny_t5: str) -> None:
    with pytest.raises(ConfigError, match="unknown engine"):
        rerank.load_scorer(tiny_ce, engine="tensorflow")
    with pytest.raises(ConfigError, match="unknown model type"):
        rerank.load_scorer(tiny_ce, "colbert")
    with pytest.raises(ConfigError, match="cross-encoders only"):
        rerank.load_scorer(tiny_t5, engine="onnx")


def test_monot5_scores_are_p_true_at_first_decoder_step(tiny_t5: str) -> None:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    scorer = rerank.load_scorer(tiny_t5, batch_size=2, max_length=128)  # type detected from the config
    assert isinstance(scorer, rerank.MonoT5Scorer)
    got = scorer.score(PAIRS[:4])
    tok = AutoTokenizer.from_pretrained(tiny_t5)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5).eval()
    true_id, false_id = tok.convert_tokens_to_ids("true"), tok.convert_tokens_to_ids("false")
    want = []
    for q, d in PAIRS[:4]:
        enc = tok(f"Query: {q} Document: {d} Relevant:", return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc, decoder_input_ids=torch.tensor([[tok.pad_token_id]])).logits[0, 0]
        want.append(torch.softmax(logits[[true_id, false_id]], dim=0)[0].item())
    assert got == pytest.approx(want, abs=1e-5)
    assert all(0.0 < s < 1.0 for s in got)


# ------------------------------------------------------------------------------------------- rerank_run


class CountingScorer(rerank.Scorer):
    """Wraps a scorer and counts the pairs it is asked to score."""

    def __init__(self, inner: rerank.Scorer) -> None:
        super().__init__(inner.model, inner.batch_size, inner.max_length)
        self.inner, self.pairs = inner, 0
        self.model_type, self.engine = inner.model_type, inner.engine

    def _score(self, pairs, show_progress):  # type: ignore[no-untyped-def]
        self.pairs += len(pairs)
        return self.inner.score(pairs)


@pytest.fixture(scope="module")
def scifact_slice(scifact_dir: Path) -> dict[str, dict[str, float]]:
    run = read_run_dict(scifact_dir / "bm25_top100.test.trec")
    return {q: run[q] for q in sorted(run, key=int)[:5]}


def test_rerank_run_on_scifact_slice(tiny_ce: str, scifact_dir: Path, scifact_slice, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = load_dataset(scifact_dir)
    out = tmp_path / "reranked.trec"
    result = rerank.rerank_run(ds, scifact_slice, out, model=tiny_ce, depth=10, max_length=64, batch_size=8)
    written = read_run_dict(out)
    assert written.keys() == scifact_slice.keys()
    for q, docs in scifact_slice.items():
        top10 = {d for d, _ in ranked(docs)[:10]}
        assert set(written[q]) == top10 == set(result[q])
    lines = out.read_text().splitlines()
    assert len(lines) == 50 and len(read_run(out)) == 50
    first = lines[0].split()
    assert first[1] == "Q0" and first[3] == "1" and first[5] == "inpars-rerank"
    # Scores are the scorer's on (query text, title + text).
    q = next(iter(scifact_slice))
    d = next(iter(result[q]))
    pair = (ds.queries("test")[q], ds.docs()[d].full_text)
    assert rerank.load_scorer(tiny_ce, max_length=64).score([pair])[0] == pytest.approx(result[q][d], abs=1e-5)
    # The ranks follow the new scores.
    ranks = [ln.split()[2] for ln in lines if ln.split()[0] == q]
    assert ranks == [d for d, _ in ranked(result[q])]


def test_rerank_run_resumes_from_its_score_cache(tiny_ce: str, scifact_dir: Path, scifact_slice, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = load_dataset(scifact_dir)
    out = tmp_path / "r.trec"
    scorer = CountingScorer(rerank.load_scorer(tiny_ce, max_length=64))
    full = rerank.rerank_run(ds, scifact_slice, out, scorer=scorer, depth=4)
    assert scorer.pairs == 20
    cache = Path(f"{out}.scores.jsonl")
    lines = cache.read_text().splitlines()
    assert json.loads(lines[0])["meta"]["max_length"] == 64 and len(lines) == 6
    # Simulate a kill: last two queries lost, the one before half-written.
    cache.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])
    scorer.pairs = 0
    again = rerank.rerank_run(ds, scifact_slice, out, scorer=scorer, depth=4)
    assert scorer.pairs == 12  # three queries x 4 documents re-scored
    assert again.keys() == full.keys()
    for q in full:
        assert again[q] == pytest.approx(full[q], abs=1e-6)
    # Another depth changes the document sets: those queries are re-scored, not reused.
    scorer.pairs = 0
    rerank.rerank_run(ds, scifact_slice, out, scorer=scorer, depth=5)
    assert scorer.pairs == 25
    # Another max_length invalidates the whole cache.
    other = CountingScorer(rerank.load_scorer(tiny_ce, max_length=32))
    rerank.rerank_run(ds, scifact_slice, out, scorer=other, depth=5)
    assert other.pairs == 25


def test_rerank_run_input_errors(tiny_ce: str, tiny_beir: Path, tmp_path: Path) -> None:
    scorer = rerank.load_scorer(tiny_ce, max_length=32)
    with pytest.raises(InputError, match="not in the corpus"):
        rerank.rerank_run(tiny_beir, {"q3": {"d5": 1.0, "nope": 0.5}}, scorer=scorer)
    with pytest.raises(InputError, match="no query of the run"):  # texts are given; q1 has none among them
        rerank.rerank_run(tiny_beir, {"q1": {"d1": 1.0}}, scorer=scorer, queries={"q3": "sleep and obesity"})
    with pytest.raises(ConfigError, match="needs a model"):
        rerank.rerank_run(tiny_beir, {"q3": {"d5": 1.0}})


# --------------------------------------------------------------------------------------- interpolation


def test_interpolation_arithmetic() -> None:
    first = {"q": {"a": 9.0, "b": 7.0, "c": 5.0, "d": 1.0}}  # normalised: 1, .75, .5, 0
    rr = {"q": {"a": -2.0, "b": 2.0, "c": 0.0, "d": 1.0}}  # normalised: 0, 1, .5, .75
    half = rerank.interpolate(first, rr, 0.5)["q"]
    assert half == pytest.approx({"a": 0.5, "b": 0.875, "c": 0.5, "d": 0.375})
    assert rerank.interpolate(first, rr, 0.2)["q"]["d"] == pytest.approx(0.2 * 0.75)
    order = lambda run: [d for d, _ in ranked(run["q"])]  # noqa: E731
    assert order(rerank.interpolate(first, rr, 0.0)) == order(first) == ["a", "b", "c", "d"]
    assert order(rerank.interpolate(first, rr, 1.0)) == order(rr) == ["b", "d", "c", "a"]
    # Constant scores normalise to 0; a document without a first-stage score counts as the lowest.
    assert rerank.interpolate({"q": {"a": 3.0}}, {"q": {"a": 5.0, "z": 1.0}}, 0.5)["q"] == {"a": 0.5, "z": 0.0}
    with pytest.raises(ConfigError):
        rerank.interpolate(first, rr, 1.5)


def test_tune_alpha_picks_the_weight_on_train_and_refuses_test(tiny_beir: Path) -> None:
    # Train queries of tiny_beir: q1 (relevant d1), q2 (relevant d3).
    first = {"q1": {"d1": 3.0, "d2": 1.0}, "q2": {"d4": 2.0, "d3": 1.0, "d5": 0.0}}
    rr = {"q1": {"d1": 0.0, "d2": 5.0}, "q2": {"d3": 10.0, "d4": 0.0, "d5": 5.0}}
    alphas = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    qrels = fusion.tuning_qrels(load_dataset(tiny_beir), "train")
    best, table = rerank.tune_alpha(first, rr, qrels, alphas)
    # By hand, normalised and interpolated:
    #   q1: d1 = 1 - a, d2 = a                             -> d1 ranked 1st iff a < 1/2, else 2nd
    #   q2: d3 = a + (1 - a)/2, d4 = 1 - a, d5 = a/2       -> d3 ranked 1st iff a > 1/3, else 2nd
    # nDCG@10 with one relevant document at rank r: 1 / log2(r + 1).
    r2 = 1 / math.log2(3)
    want = {"0": (1 + r2) / 2, "0.2": (1 + r2) / 2, "0.4": 1.0, "0.6": (r2 + 1) / 2, "0.8": (r2 + 1) / 2,
            "1": (r2 + 1) / 2}
    assert table == pytest.approx(want)
    assert best == 0.4
    # Ties go to the larger alpha.
    assert rerank.tune_alpha(first, rr, qrels, [0.0, 0.2])[0] == 0.2
    with pytest.raises(LeakageError, match="reserved for evaluation"):
        fusion.tuning_qrels(load_dataset(tiny_beir), "test")


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_rerank_and_interpolate(tiny_ce: str, tiny_beir: Path, tmp_path: Path) -> None:
    from inpars.cli import main

    test_run = tmp_path / "bm25.test.trec"
    write_run(test_run, {"q3": {"d5": 3.0, "d6": 2.0, "d1": 1.0}, "q4": {"d4": 2.0, "d3": 1.0, "d2": 0.5}})
    train_run = tmp_path / "bm25.train.trec"
    write_run(train_run, {"q1": {"d1": 3.0, "d2": 2.0}, "q2": {"d3": 1.0, "d4": 2.0}})
    out = tmp_path / "rr.trec"
    args = ["rerank", "--dataset", str(tiny_beir), "--run", str(test_run), "--model", tiny_ce, "--out", str(out)]
    assert main([*args, "--depth", "2", "--max-length", "32"]) == 0
    # the top 2 reranked, the first stage's third document kept below them (bug fixed: it was dropped)
    written = read_run_dict(out)
    assert {q: {d for d, _ in ranked(docs)[:2]} for q, docs in written.items()} == {"q3": {"d5", "d6"}, "q4": {"d4", "d3"}}
    assert {q: ranked(docs)[2][0] for q, docs in written.items()} == {"q3": "d1", "q4": "d2"}
    out2 = tmp_path / "interp.trec"
    args[-1] = str(out2)
    # reading a labelled split's judgements is an explicit opt-in: the split must be named
    assert main([*args, "--interpolate", "--tune-run", str(train_run)]) == 2
    assert main([*args, "--interpolate", "--tune-run", str(train_run), "--tune-split", "train"]) == 0
    info = json.loads(Path(f"{out2}.fusion.json").read_text())
    # two tuning queries: fewer than the decision needs, so weight 0.5 is kept and measured (inpars.decision)
    assert info["tuned_on"] == "train" and info["alpha"] == 0.5 and info["alpha_source"] == "fallback"
    assert len(info["table"]) == 11 and info["queries"] == 2 and info["supervised"] is True
    assert read_run_dict(out2).keys() == {"q3", "q4"}
    assert (tmp_path / "interp.rerank-only.trec").is_file()
    # Tuning on the split being reranked is refused.
    assert main([*args, "--interpolate", "--tune-run", str(train_run), "--tune-split", "test"]) == 2


def test_cli_rerank_fuses_at_a_given_alpha_without_labels(
    tiny_ce: str, tiny_beir: Path, tmp_path: Path, qrels_reads: list[tuple[str, bool]]
) -> None:
    from inpars.cli import main

    first = {"q3": {"d5": 3.0, "d6": 2.0, "d1": 1.0}, "q4": {"d4": 2.0, "d3": 1.0, "d2": 0.5}}
    test_run = tmp_path / "bm25.trec"
    write_run(test_run, first)
    out = tmp_path / "fused.trec"
    args = ["rerank", "--dataset", str(tiny_beir), "--run", str(test_run), "--model", tiny_ce, "--out", str(out),
            "--depth", "2", "--max-length", "32"]
    assert main([*args, "--alpha", "0.3"]) == 0
    only = read_run_dict(tmp_path / "fused.rerank-only.trec")
    top = {q: {d: s for d, s in docs.items() if d in dict(ranked(first[q])[:2])} for q, docs in only.items()}
    expected, written = fusion.fuse(first, top, 0.3, 2), read_run_dict(out)
    assert {q: [d for d, _ in ranked(docs)] for q, docs in written.items()} == {
        q: [d for d, _ in ranked(docs)] for q, docs in expected.items()}
    assert all(written[q] == pytest.approx(expected[q], abs=1e-4) for q in expected)
    assert not qrels_reads  # no judgement was read
    # a weight list without a tuning run was silently ignored: now refused, pointing to --alpha
    assert main([*args, "--alphas", "0.5"]) == 2
    assert main([*args, "--alpha", "1.5"]) == 2


@pytest.mark.slow
def test_minilm_onnx_int8_agrees_with_torch_on_scifact(scifact_dir: Path, scifact_slice) -> None:  # type: ignore[no-untyped-def]
    """The packaged MiniLM (untrained head): onnx == torch; onnx-int8 keeps the scores' order closely."""
    pytest.importorskip("onnx")
    from scipy.stats import spearmanr

    ds = load_dataset(scifact_dir)
    queries, docs = ds.queries("test"), ds.docs()
    q = next(iter(scifact_slice))
    pairs = [(queries[q], docs[d].full_text) for d, _ in ranked(scifact_slice[q])[:16]]
    ce = "cross-encoder"  # MiniLM with a seeded head: engine agreement only
    ref = rerank.load_scorer("minilm-l6", ce, max_length=128).score(pairs)
    assert rerank.load_scorer("minilm-l6", ce, max_length=128, engine="onnx").score(pairs) == pytest.approx(ref, abs=1e-4)
    int8 = rerank.load_scorer("minilm-l6", ce, max_length=128, engine="onnx-int8").score(pairs)
    assert spearmanr(ref, int8).statistic > 0.8


def test_bi_encoder_scores_are_cosines_and_each_text_is_encoded_once() -> None:
    from sentence_transformers import SentenceTransformer

    from inpars.models import resolve_model

    docs = [
        "Statins lower LDL cholesterol and reduce cardiovascular events.",
        "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
    ]
    pairs = [("what lowers cholesterol", d) for d in docs] + [("tall tower in paris", d) for d in docs]
    scorer = rerank.load_scorer("minilm-l6", "bi-encoder", max_length=64, batch_size=2)
    assert scorer.model_type == "bi-encoder" and scorer.describe()["model_type"] == "bi-encoder"
    got = scorer.score(pairs)
    assert scorer.encoded == 4  # two queries + two documents, not four pairs x 2
    reference = SentenceTransformer(resolve_model("minilm-l6"), device="cpu")
    reference.max_seq_length = 64
    q = reference.encode([p[0] for p in pairs], normalize_embeddings=True)
    d = reference.encode([p[1] for p in pairs], normalize_embeddings=True)
    assert got == pytest.approx([float(a @ b) for a, b in zip(q, d, strict=True)], abs=1e-5)
    assert got[0] > got[1] and got[3] > got[2]  # the relevant document wins for each query
    assert scorer.score(pairs[:2]) == got[:2] and scorer.encoded == 4  # served from the cache
    vectors = scorer.encode([docs[1], "a new text", docs[1]])  # rows in order, from the cache where it can
    assert vectors.shape == (3, 384) and scorer.encoded == 5
    assert vectors[0] == pytest.approx(d[1], abs=1e-5) and (vectors[0] == vectors[2]).all()
    assert scorer.encode([]).shape == (0, 384)
    with pytest.raises(ConfigError, match="cross-encoders only"):
        rerank.load_scorer("minilm-l6", "bi-encoder", engine="onnx")


def test_rerank_run_with_a_bi_encoder(tmp_path: Path, scifact_dir: Path, scifact_slice) -> None:  # type: ignore[no-untyped-def]
    first = {q: dict(ranked(scifact_slice[q])[:10]) for q in list(scifact_slice)[:2]}
    out = tmp_path / "dense.trec"
    reranked = rerank.rerank_run(scifact_dir, first, out, model="minilm-l6", model_type="bi-encoder", depth=10)
    assert reranked.keys() == first.keys()
    assert all(set(reranked[q]) == set(first[q]) for q in first)
    assert all(-1.0 <= s <= 1.0 for docs in reranked.values() for s in docs.values())


# ------------------------------------------------------------------------------------------ registries


def test_registries_drive_the_cli_choices_and_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Families and engines are listed once (their registries): the CLI's choices and the config's
    validation follow them, so a new family is one registered class."""
    import argparse

    from inpars.cli import build_parser
    from inpars.config import load_config_dict
    from inpars.families import FAMILIES, Family
    from inpars.rerank.engines import ENGINES

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for cmd in ("rerank", "train"):
        opts = {o: a for a in sub.choices[cmd]._actions for o in a.option_strings}
        assert list(opts["--model-type"].choices) == FAMILIES.names()
        assert {"bi-encoder", "cross-encoder", "monot5"} <= set(FAMILIES.names())
    rr = {o: a for a in sub.choices["rerank"]._actions for o in a.option_strings}
    assert list(rr["--engine"].choices) == ENGINES.names()
    assert all(ENGINES.get(e).description in " ".join(rr["--engine"].help.split()) for e in ENGINES.names())

    with pytest.raises(ConfigError, match="unknown engine 'tensorflow'"):
        load_config_dict({"dataset": {"name": "x"}, "rerank": {"engine": "tensorflow"}})
    with pytest.raises(ConfigError, match="unknown model type 'colbert'"):
        load_config_dict({"dataset": {"name": "x"}, "train": {"model_type": "colbert"}})

    class Toy(Family):
        name, description = "toy", "a toy family"

        def detect(self, path: str, config: object = None) -> bool:
            return False

        @property
        def scorer(self) -> type[rerank.Scorer]:
            raise NotImplementedError

        def build(self, base_model, examples, *, loss, max_length):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def usage(self, where: Path) -> str:
            return ""

    monkeypatch.setitem(FAMILIES._items, "toy", Toy())
    assert load_config_dict({"dataset": {"name": "x"}, "rerank": {"model_type": "toy"}}).rerank.model_type == "toy"
    with pytest.raises(ConfigError, match="loss 'bce'"):
        Toy().check_loss("listwise")


def test_packaged_models_registry() -> None:
    from inpars import models

    assert models.PACKAGED_MODELS.names() == ["gemma3-270m", "minilm-l6", "smollm2-135m"]
    assert models.packaged("gguf") == ["gemma3-270m", "smollm2-135m"] and models.packaged("hf") == ["minilm-l6"]
    gemma = models.PACKAGED_MODELS.get("gemma3-270m")
    assert not gemma.open_source and "Gemma terms" in gemma.licence
    assert models.resolve_model("minilm-l6") == str(models.minilm_dir())
    assert models.resolve_model("org/some-model") == "org/some-model"
