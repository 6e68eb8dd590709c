"""The generation stage: sampling, output fields, flags, resume, metadata checks, reading files, CLI.

Unit tests use a deterministic fake backend registered here; the tests marked slow run the real llama.cpp
backend with SmolLM2 on SciFact (CLI run, and a SIGKILL-then-resume of a real subprocess).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from conftest import generated_records
from inpars.cli import main as cli_main
from inpars.datasets import load_dataset
from inpars.errors import ConfigError, InputError
from inpars.fingerprint import item_seed
from inpars.generate import (
    FLAG_COPIES_DOCUMENT,
    FLAG_EMPTY,
    FLAG_REPEATS_PROMPT,
    FLAG_TRUNCATED,
    flag_generation,
    generate_queries,
    meta_path,
    read_generated,
    sample_documents,
)
from inpars.generation.base import BACKENDS, Backend, Generation, SamplingParams, prompt_seeds
from inpars.prompts import get_prompt
from inpars.records import Document

ROOT = Path(__file__).resolve().parents[1]


class FakeBackend(Backend):
    """Deterministic generations chosen by markers in the document; counts the prompts it is given.

    Word-level tokenizer. A document containing EMPTY gives "", REPEAT gives the prompt's first example
    query, COPY gives the document's first four words, LONG stops at max_new_tokens; any other gives
    "what about <first word> <sample index>" (greedy) or "what about <first word> <seed + sample index>"
    (temperature > 0: the text depends on the prompt's seed, as a real sampler's does), with log-prob
    -0.1 * (position + 1).
    """

    name = "fake-test"
    calls: list[list[str]] = []
    seeds: list[list[int]] = []
    fail_after_calls: int | None = None  # raise KeyboardInterrupt in the call after this many

    def __init__(self, model: str, **options: Any) -> None:
        super().__init__(model, **options)
        self.closed = False

    def tokenize(self, text: str) -> list[int]:
        return [len(w) for w in text.split()]

    def truncate(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split()[:max_tokens])

    def chat_prompt(self, user_message: str) -> str:
        return f"<user>{user_message}</user><assistant>"

    def generate(
        self, prompts: list[str], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[list[Generation]]:
        FakeBackend.calls.append(list(prompts))
        FakeBackend.seeds.append(list(prompt_seeds(self, params, len(prompts), seeds)))
        delay = float(self.options.get("delay", 0))
        out = []
        for prompt, seed in zip(prompts, FakeBackend.seeds[-1], strict=True):
            if delay:
                time.sleep(delay)
            if FakeBackend.fail_after_calls is not None and len(FakeBackend.calls) > FakeBackend.fail_after_calls:
                raise KeyboardInterrupt  # an interrupted run: the batches before this one are on disk
            doc = prompt.rsplit("Document:", 1)[-1]
            gens = []
            for i in range(params.n):
                finish = "stop"
                if "EMPTY" in doc:
                    text = "  "
                elif "REPEAT" in doc:
                    text = " " + prompt.split("Relevant Query:", 1)[1].split("\n", 1)[0].strip()
                elif "COPY" in doc:
                    text = " " + " ".join(doc.split()[:4])
                elif "LONG" in doc:
                    text = " " + " ".join(["word"] * params.max_new_tokens)
                    finish = "length"
                else:
                    text = f" what about {doc.split()[0].lower()} {seed + i if params.temperature > 0 else i}"
                words = text.split()
                gens.append(
                    Generation(
                        text=text,
                        log_probs=[-0.1 * (k + 1) for k in range(len(words))],
                        tokens=words,
                        finish_reason=finish,
                        prompt_tokens=len(prompt.split()),
                    )
                )
            out.append(gens)
        return out

    def close(self) -> None:
        self.closed = True


if "fake-test" not in BACKENDS:
    BACKENDS.register("fake-test")(FakeBackend)


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    FakeBackend.calls = []
    FakeBackend.seeds = []
    FakeBackend.fail_after_calls = None


def n_prompts() -> int:
    return sum(len(c) for c in FakeBackend.calls)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def marker_beir(tmp_path: Path) -> Path:
    from conftest import write_beir

    docs = [
        {"_id": "n1", "title": "Vitamin", "text": "Vitamin D reduces infections in children."},
        {"_id": "n2", "title": "Aspirin", "text": "Aspirin lowers heart attack risk."},
        {"_id": "e1", "title": "", "text": "EMPTY nothing comes out of this one."},
        {"_id": "r1", "title": "", "text": "REPEAT the model repeats an example here."},
        {"_id": "c1", "title": "", "text": "COPY copies the first words of the document verbatim."},
        {"_id": "l1", "title": "", "text": "LONG generation that never stops."},
    ]
    return write_beir(tmp_path / "markers", docs, [{"_id": "q1", "text": "a query"}], {"train": [("q1", "n1", 1)]})


def gen(ds: Any, out: Path, **kw: Any):
    kw.setdefault("backend", "fake-test")
    kw.setdefault("model", "fake-model")
    kw.setdefault("progress", False)
    return generate_queries(ds, out, **kw)


# ------------------------------------------------------------------------------------------ sampling


def test_sampling_is_seeded_sorted_and_capped(scifact_dir: Path) -> None:
    ds = load_dataset(scifact_dir)
    ids = sorted(ds.docs())
    got = [d.doc_id for d in sample_documents(ds, 50, seed=1)]
    # worked independently: a seeded permutation of the sorted ids, first 50
    assert got == random.Random(1).sample(ids, len(ids))[:50]
    assert got == [d.doc_id for d in sample_documents(ds, 50, seed=1)]
    assert got != [d.doc_id for d in sample_documents(ds, 50, seed=2)]
    # a larger sample extends a smaller one
    assert [d.doc_id for d in sample_documents(ds, 80, seed=1)][:50] == got
    # min_doc_chars leaves out short documents before sampling
    long_ids = sorted(i for i, d in ds.docs().items() if len(d.full_text) >= 1500)
    got_long = [d.doc_id for d in sample_documents(ds, 20, seed=1, min_doc_chars=1500)]
    assert got_long == random.Random(1).sample(long_ids, len(long_ids))[:20]
    assert all(len(ds.docs()[i].full_text) >= 1500 for i in got_long)


def test_sampling_caps_at_corpus_size(tiny_beir: Path) -> None:
    docs = sample_documents(load_dataset(tiny_beir), 100, seed=3)
    assert sorted(d.doc_id for d in docs) == ["d1", "d2", "d3", "d4", "d5", "d6"]


# ------------------------------------------------------------------------------------------ output


def test_output_fields_and_summary(tiny_beir: Path, tmp_path: Path) -> None:
    ds = load_dataset(tiny_beir)
    out = tmp_path / "q.jsonl"
    # max_doc_tokens 8: the smallest the config allows (generate.max_doc_tokens), below some documents' length
    summary = gen(ds, out, n_docs=4, queries_per_doc=2, temperature=0.7, seed=5, max_doc_tokens=8, batch_size=3)
    recs = lines(out)
    assert len(recs) == 8 and summary.n_queries == 8 and summary.n_generated == 8
    assert summary.n_docs == 4 and summary.n_skipped_existing == 0
    assert summary.backend == {"backend": "fake-test", "model": "fake-model"}
    assert summary.queries_per_second > 0 and summary.tokens_per_second > 0
    # sampling: one prompt per query, 3 prompts per backend call -> 8 prompts in 3 calls
    assert [len(c) for c in FakeBackend.calls] == [3, 3, 2]
    sampled = [d.doc_id for d in sample_documents(ds, 4, seed=5)]
    assert [r["doc_id"] for r in recs] == [d for d in sampled for _ in range(2)]
    assert [r["query_index"] for r in recs] == [0, 1] * 4
    docs = ds.docs()
    assert any(len(docs[d].full_text.split()) > 8 for d in sampled)  # the cut below cuts something
    prompt = get_prompt("inpars")
    for r in recs:
        assert set(r) == {
            "doc_id", "query", "log_probs", "prompt_text", "fewshot_examples", "text", "query_index",
            "backend", "model", "finish_reason", "n_tokens", "prompt_tokens", "cached_tokens", "seconds",
            "flags",
        }
        doc = docs[r["doc_id"]]
        first = doc.full_text.split()[0].lower()
        # stripped; sampled with the seed of its (seed, doc_id, query_index)
        assert r["query"] == f"what about {first} {item_seed(5, r['doc_id'], r['query_index'])}"
        assert r["log_probs"] == pytest.approx([-0.1, -0.2, -0.3, -0.4])
        assert r["n_tokens"] == 4 and r["finish_reason"] == "stop" and r["flags"] == []
        assert r["text"] == doc.full_text
        # the document is cut to max_doc_tokens=8 words of the (fake) tokenizer
        short = Document(doc.doc_id, " ".join(doc.full_text.split()[:8]))
        assert r["prompt_text"] == prompt.build(short).text
        assert r["fewshot_examples"] == []
        assert (r["backend"], r["model"]) == ("fake-test", "fake-model")
        assert r["seconds"] >= 0
    # read back through the reader
    back = read_generated(out)
    assert [(g.doc_id, g.query) for g in back] == [(r["doc_id"], r["query"]) for r in recs]
    assert back[0].query_index == 0 and back[0].mean_log_prob == pytest.approx(-0.25)
    meta = json.loads(meta_path(out).read_text())
    assert meta["n_docs"] == 4 and meta["params"]["temperature"] == 0.7 and meta["params"]["seed"] == 5


def test_chat_mode_wraps_prompt(tiny_beir: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    gen(tiny_beir, out, n_docs=2, chat=True)
    for r in lines(out):
        assert r["prompt_text"].startswith("<user>Example 1:") and r["prompt_text"].endswith("</user><assistant>")
    assert all(p.startswith("<user>") for c in FakeBackend.calls for p in c)


def test_a_prompt_that_varies_with_the_index_asks_each_form_once_even_greedy(tiny_beir: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    gen(tiny_beir, out, n_docs=2, prompt="inpars-forms", queries_per_doc=4, batch_size=3)
    recs = lines(out)
    assert [(r["doc_id"], r["query_index"]) for r in recs] == [(d, i) for d in dict.fromkeys(r["doc_id"] for r in recs)
                                                               for i in range(4)]
    labels = [r["prompt_text"].splitlines()[-1] for r in recs]
    assert labels == ["Question:", "Keywords:", "Claim:", "Question:"] * 2
    # greedy: one continuation of each prompt (not queries_per_doc of the first one), 8 prompts in all
    assert sum(len(c) for c in FakeBackend.calls) == 8
    assert [r["query"] for r in recs[:4]] == [recs[0]["query"]] * 4  # the fake ignores the label


def test_promptagator_examples_come_from_the_train_split(tiny_beir: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    gen(tiny_beir, out, prompt="promptagator", n_examples=2, n_docs=6, seed=3, train_split="train")
    recs = {r["doc_id"]: r for r in lines(out)}
    assert len(recs) == 6
    for doc_id, r in recs.items():
        # train qrels are q1->d1 and q2->d3; test pairs (q3, q4) must never be shown
        shown = r["fewshot_examples"]
        assert set(shown) <= {"q1:d1", "q2:d3"} and all(not s.endswith(f":{doc_id}") for s in shown)
        assert len(shown) == (1 if doc_id in ("d1", "d3") else 2)
        assert "sleep and obesity" not in r["prompt_text"] and "statins cholesterol" not in r["prompt_text"]
    assert "Query: does vitamin d prevent infections" in recs["d2"]["prompt_text"]
    # another train split is another configuration
    with pytest.raises(ConfigError, match="train_split"):
        gen(tiny_beir, out, prompt="promptagator", n_examples=2, n_docs=6, seed=3, train_split="dev")


def test_template_prompt_and_template_changes(tiny_beir: Path, tmp_path: Path) -> None:
    tmpl = tmp_path / "t.txt"
    tmpl.write_text("Title: {title}\nText: {document}\nQuestion:", encoding="utf-8")
    out = tmp_path / "q.jsonl"
    gen(tiny_beir, out, prompt="template", template=str(tmpl), n_docs=2)
    ds = load_dataset(tiny_beir)
    for r in lines(out):
        doc = ds.docs()[r["doc_id"]]
        assert r["prompt_text"] == f"Title: {doc.title}\nText: {doc.text}\nQuestion:"
    tmpl.write_text("Passage: {document}\nQuery:", encoding="utf-8")
    with pytest.raises(ConfigError, match="template_sha256"):
        gen(tiny_beir, out, prompt="template", template=str(tmpl), n_docs=2)


def test_backend_instance_is_used_and_left_open(tiny_beir: Path, tmp_path: Path) -> None:
    be = FakeBackend("my-model")
    summary = generate_queries(tiny_beir, tmp_path / "q.jsonl", n_docs=2, backend_instance=be, progress=False)
    assert not be.closed and summary.backend["model"] == "my-model"
    assert {r["model"] for r in lines(tmp_path / "q.jsonl")} == {"my-model"}


def test_flags(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    summary = gen(marker_beir(tmp_path), out, n_docs=6, max_new_tokens=7)
    by_doc = {r["doc_id"]: r for r in lines(out)}
    assert by_doc["n1"]["flags"] == [] and by_doc["n2"]["flags"] == []
    assert by_doc["e1"]["flags"] == [FLAG_EMPTY] and by_doc["e1"]["query"] == ""
    assert by_doc["r1"]["flags"] == [FLAG_REPEATS_PROMPT]
    # the repeated query is the first example query of the inpars prompt
    assert by_doc["r1"]["query"] and f"Relevant Query: {by_doc['r1']['query']}\n" in by_doc["r1"]["prompt_text"]
    assert by_doc["c1"]["flags"] == [FLAG_COPIES_DOCUMENT] and by_doc["c1"]["query"] == "COPY copies the first"
    assert by_doc["l1"]["flags"] == [FLAG_TRUNCATED] and by_doc["l1"]["finish_reason"] == "length"
    assert by_doc["l1"]["n_tokens"] == 7
    assert summary.n_flagged == {FLAG_COPIES_DOCUMENT: 1, FLAG_EMPTY: 1, FLAG_REPEATS_PROMPT: 1, FLAG_TRUNCATED: 1}


def test_flag_rules() -> None:
    prompt = "Example 1:\nDocument: alpha beta\nRelevant Query: what is alpha\n\nDocument: gamma delta\nRelevant Query:"
    assert flag_generation("What is alpha?", prompt, "gamma delta") == [FLAG_REPEATS_PROMPT]
    assert flag_generation("what is alpha beta gamma", prompt, "gamma delta") == []
    assert flag_generation("Gamma  DELTA", prompt, "gamma delta") == [FLAG_COPIES_DOCUMENT]
    assert flag_generation(" \n ", prompt, "gamma delta", "length") == [FLAG_EMPTY, FLAG_TRUNCATED]


# ------------------------------------------------------------------------------------------ resume


def test_resume_skips_done_and_extends(tiny_beir: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    gen(tiny_beir, out, n_docs=3, queries_per_doc=2, temperature=0.5)
    first = out.read_bytes()
    assert n_prompts() == 6  # sampling: one prompt per query
    # same arguments: nothing to do, no backend call, file unchanged
    s = gen(tiny_beir, out, n_docs=3, queries_per_doc=2, temperature=0.5)
    assert n_prompts() == 6 and s.n_generated == 0 and s.n_skipped_existing == 6 and out.read_bytes() == first
    # a larger n_docs extends the file: only the 3 new documents go to the backend
    s = gen(tiny_beir, out, n_docs=6, queries_per_doc=2, temperature=0.5)
    assert n_prompts() == 12 and s.n_generated == 6 and s.n_skipped_existing == 6 and s.n_queries == 12
    assert out.read_bytes().startswith(first)
    recs = lines(out)
    before = generated_records(out)
    assert sorted((r["doc_id"], r["query_index"]) for r in recs) == sorted(
        (f"d{i}", q) for i in range(1, 7) for q in range(2)
    )
    # lose the last 3 records, one torn in half: the rerun regenerates exactly those
    data = out.read_text(encoding="utf-8").splitlines(keepends=True)
    kept, last = data[:9], data[9]
    out.write_text("".join(kept) + last[: len(last) // 2], encoding="utf-8")
    s = gen(tiny_beir, out, n_docs=6, queries_per_doc=2, temperature=0.5)
    assert s.n_skipped_existing == 9 and s.n_generated == 3
    recs2 = lines(out)
    assert recs2[:9] == recs[:9]
    assert sorted((r["doc_id"], r["query_index"]) for r in recs2) == sorted(
        (r["doc_id"], r["query_index"]) for r in recs
    )
    # per-item seeds: the regenerated queries are the ones that were lost
    assert generated_records(out) == before


def test_refuses_other_arguments(tiny_beir: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    gen(tiny_beir, out, n_docs=3)
    with pytest.raises(ConfigError, match=r"temperature: 0\.0 in the file, 0\.9 now"):
        gen(tiny_beir, out, n_docs=3, temperature=0.9)
    with pytest.raises(ConfigError, match="seed"):
        gen(tiny_beir, out, n_docs=3, seed=2)
    with pytest.raises(ConfigError, match="n_docs=3"):
        gen(tiny_beir, out, n_docs=2)
    with pytest.raises(ConfigError, match="backend_options"):
        gen(tiny_beir, out, n_docs=3, backend_options={"n_ctx": 512})
    assert len(lines(out)) == 3 and n_prompts() == 3
    # runtime-only backend options (threads, retries...) may change on resume
    s = gen(tiny_beir, out, n_docs=3, backend_options={"n_threads": 1, "timeout": 5})
    assert s.n_skipped_existing == 3 and s.n_generated == 0
    # overwrite starts again
    s = gen(tiny_beir, out, n_docs=2, temperature=0.9, overwrite=True)
    assert s.n_generated == 2 and s.n_skipped_existing == 0 and len(lines(out)) == 2
    assert json.loads(meta_path(out).read_text())["params"]["temperature"] == 0.9
    # a file without its sidecar has unknown arguments
    meta_path(out).unlink()
    with pytest.raises(ConfigError, match="no q.jsonl.meta.json"):
        gen(tiny_beir, out, n_docs=2, temperature=0.9)


def test_a_document_whose_text_changed_under_its_id_is_not_resumed(tiny_beir: Path, tmp_path: Path) -> None:
    """Queries written for an old text are never kept for a new one: resuming after the corpus changed
    under the same ids is refused, naming the file, line and document."""
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(tiny_beir, ds)
    out = tmp_path / "q.jsonl"
    gen(ds, out, n_docs=3)
    first = out.read_bytes()
    doc_id = lines(out)[1]["doc_id"]
    corpus = ds / "corpus.jsonl"
    docs = [json.loads(x) for x in corpus.read_text(encoding="utf-8").splitlines()]
    for d in docs:
        if d["_id"] == doc_id:
            d["text"] = "A wholly different text about volcanoes."
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"q.jsonl:2: the text of 1 document\(s\) changed .*'{doc_id}'"):
        gen(ds, out, n_docs=3)
    assert out.read_bytes() == first  # nothing written
    s = gen(ds, out, n_docs=3, overwrite=True)
    assert s.n_generated == 3


def test_runtime_settings_never_refuse_a_resume(tiny_beir: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    gen(tiny_beir, out, n_docs=2, batch_size=1, backend_options={"n_threads": 1, "n_ctx": 256})
    s = gen(tiny_beir, out, n_docs=4, batch_size=4,
            backend_options={"n_threads": 2, "n_threads_batch": 2, "poll": 0, "n_ctx": 256})
    assert s.n_skipped_existing == 2 and s.n_generated == 2
    meta = json.loads(meta_path(out).read_text())
    assert meta["params"]["backend_options"] == {"n_ctx": 256} and "batch_size" not in meta["params"]
    assert meta["params"]["code_version"] >= 2


# ------------------------------------------------------------------------------------------ seeds


def _sampled(tiny_beir: Path, out: Path, **kw: Any) -> list[dict]:
    gen(tiny_beir, out, n_docs=5, queries_per_doc=3, temperature=0.8, seed=11, **kw)
    return generated_records(out)


def test_sampling_does_not_depend_on_the_batch_size(tiny_beir: Path, tmp_path: Path) -> None:
    one = _sampled(tiny_beir, tmp_path / "b1.jsonl", batch_size=1)
    four = _sampled(tiny_beir, tmp_path / "b4.jsonl", batch_size=4)
    assert len(one) == 15 and one == four
    assert len({r["query"] for r in one}) == 15  # each query has its own seed
    assert FakeBackend.seeds[0] == [item_seed(11, one[0]["doc_id"], 0)]


def test_interrupted_sampling_resumes_to_the_uninterrupted_file(tiny_beir: Path, tmp_path: Path) -> None:
    whole = _sampled(tiny_beir, tmp_path / "whole.jsonl", batch_size=4)
    out = tmp_path / "resumed.jsonl"
    FakeBackend.calls = []
    FakeBackend.fail_after_calls = 2
    with pytest.raises(KeyboardInterrupt):
        _sampled(tiny_beir, out, batch_size=4)
    assert len(lines(out)) == 8  # two batches of four were written before the interruption
    FakeBackend.fail_after_calls = None
    resumed = _sampled(tiny_beir, out, batch_size=3)
    assert resumed == whole


# ------------------------------------------------------------------------------------------ reading


def test_reads_original_inpars_file(tmp_path: Path) -> None:
    # A line as the original toolkit's generate.py writes it (pandas to_json: doc_id, text, then the
    # generation columns; '/' escaped as '\/'; fewshot_examples are example query ids).
    line = (
        '{"doc_id":"4983","text":"Microstructural development of human newborn cerebral white matter assessed'
        ' in vivo by diffusion tensor magnetic resonance imaging.","query":"what is diffusion tensor mri",'
        '"log_probs":[-0.52,-1.25,-0.03,-0.74],"prompt_text":"Example 1:\\nDocument: caffeine\\/coffee ...'
        '\\nRelevant Query:","fewshot_examples":["1035651","8212","437987"]}\n'
    )
    path = tmp_path / "inpars_original.jsonl"
    path.write_text(line + line.replace('"4983"', '"1234"'), encoding="utf-8")
    recs = read_generated(path)
    assert [r.doc_id for r in recs] == ["4983", "1234"]
    r = recs[0]
    assert r.query == "what is diffusion tensor mri"
    assert r.log_probs == [-0.52, -1.25, -0.03, -0.74]
    assert r.mean_log_prob == pytest.approx(-0.635)
    assert r.prompt_text == "Example 1:\nDocument: caffeine/coffee ...\nRelevant Query:"
    assert r.fewshot_examples == ["1035651", "8212", "437987"]
    assert r.extra == {"text": json.loads(line)["text"]}


@pytest.mark.parametrize(
    ("content", "line", "field", "message"),
    [
        ('{"doc_id": "a", "query": "q"}\n{"query": "q2"}\n', 2, "doc_id", "missing"),
        ('{"doc_id": "a"}\n', 1, "query", "missing"),
        ('{"doc_id": "a", "query": 3}\n', 1, "query", "expected a string"),
        ('{"doc_id": "a", "query": "q", "log_probs": "x"}\n', 1, "log_probs", "expected a list"),
        ('{"doc_id": "a", "query": "q", "log_probs": [-1, "x"]}\n', 1, "log_probs", "expected numbers"),
        ('{"doc_id": ["a"], "query": "q"}\n', 1, "doc_id", "expected a string"),
        ('{"doc_id": "a", "query": "q", "query_index": "0"}\n', 1, "query_index", "expected an integer"),
        ('{"doc_id": "a", "query": "q"}\n{"doc_id": "b", "query" "q"}\n{"doc_id": "c", "query": "q"}\n', 2, None, "invalid JSON"),
    ],
)
def test_bad_lines_name_file_line_field(
    tmp_path: Path, content: str, line: int, field: str | None, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message) as err:
        read_generated(path)
    assert err.value.path == str(path) and err.value.line == line and err.value.field == field


def test_torn_last_line_is_skipped_when_reading(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"doc_id": "a", "query": "q"}\n{"doc_id": "b", "qu', encoding="utf-8")
    assert [r.doc_id for r in read_generated(path)] == ["a"]


# ------------------------------------------------------------------------------------------ CLI


def test_cli_flags_override_config(tiny_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"seed: 4\ndataset:\n  name: {tiny_beir}\n"
        "generate:\n  backend: fake-test\n  model: cfg-model\n  n_docs: 2\n  temperature: 0.3\n  max_new_tokens: 9\n",
        encoding="utf-8",
    )
    out = tmp_path / "q.jsonl"
    rc = cli_main(
        ["generate", "--config", str(cfg), "--out", str(out), "--n-docs", "3", "--temperature", "0.6",
         "--backend-option", "delay=0", "--backend-option", "note=x y", "--no-progress"]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "3 queries for 3 documents (3 new, 0 already there)" in printed and "flagged: none" in printed
    params = json.loads(meta_path(out).read_text())["params"]
    assert params["temperature"] == 0.6 and params["max_new_tokens"] == 9 and params["seed"] == 4
    assert params["model"] == "cfg-model" and params["backend_options"] == {"delay": 0, "note": "x y"}
    sampled = [d.doc_id for d in sample_documents(load_dataset(tiny_beir), 3, seed=4)]
    assert [r["doc_id"] for r in lines(out)] == sampled
    # a rerun with other arguments is refused with a clear message and exit code 2
    rc = cli_main(["generate", "-d", str(tiny_beir), "--out", str(out), "--backend", "fake-test", "--no-progress"])
    assert rc == 2 and "different arguments" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ real model


def _has_llamacpp() -> bool:
    try:
        import inpars.generation.llamacpp  # noqa: F401
    except ImportError:
        return False
    return True


needs_llamacpp = pytest.mark.skipif(not _has_llamacpp(), reason="inpars.generation.llamacpp is not available")


# One llama.cpp thread: on a busy 2-core machine two spinning threads are many times slower (STACK.md
# measures 2 threads fastest on an idle machine); the option does not change what is generated.
# prompt threads: the machine's two cores (tests run one at a time); they never change the queries
THREADS = ("--backend-option", "n_threads=2")


def _cli_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from inpars.cli import main; sys.exit(main())", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.slow
@needs_llamacpp
def test_cli_real_smollm2_on_scifact(scifact_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    proc = subprocess.run(
        _cli_cmd("generate", "--dataset", str(scifact_dir), "--n-docs", "3", "--seed", "1", "--out", str(out),
                 "--max-new-tokens", "32", "--max-doc-tokens", "96", *THREADS),
        capture_output=True, text=True, env=_env(), timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 queries for 3 documents" in proc.stdout
    recs = read_generated(out)
    ds = load_dataset(scifact_dir)
    assert [r.doc_id for r in recs] == [d.doc_id for d in sample_documents(ds, 3, seed=1)]
    for r in recs:
        assert r.extra["backend"] == "llamacpp" and r.extra["model"] == "smollm2-135m"
        assert r.prompt_text.startswith("Example 1:\nDocument:") and r.prompt_text.endswith("Relevant Query:")
        # one log-prob per generated token, each a log-probability
        assert len(r.log_probs) == r.extra["n_tokens"]
        assert all(lp <= 0 for lp in r.log_probs)
        if not r.flags:
            assert r.query.strip() and "\n" not in r.query and r.extra["n_tokens"] > 0


@pytest.mark.slow
@needs_llamacpp
def test_sigkill_then_resume_real_subprocess(scifact_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    n_docs = 6
    cmd = _cli_cmd(
        "generate", "--dataset", str(scifact_dir), "--n-docs", str(n_docs), "--seed", "7", "--out", str(out),
        "--max-new-tokens", "24", "--max-doc-tokens", "64", "--batch-size", "1", "--no-progress", *THREADS,
    )
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if out.is_file() and out.read_bytes().count(b"\n") >= 2:
                break
            assert proc.poll() is None, f"generation ended early: {proc.stderr.read().decode() if proc.stderr else ''}"
            time.sleep(0.05)
        else:
            pytest.fail("no 2 records within 240 s")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = out.read_bytes()
    n_before = before.count(b"\n")
    assert 2 <= n_before < n_docs, "the kill came too late to test resuming"
    complete = before[: before.rfind(b"\n") + 1]
    # simulate a torn write on top of whatever the kill left
    with open(out, "ab") as f:
        f.write(b'{"doc_id": "torn", "query": "half a rec')
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = out.read_bytes()
    assert after.startswith(complete)  # records written before the kill are unchanged
    recs = read_generated(out)
    keys = [(r.doc_id, r.query_index) for r in recs]
    assert len(keys) == len(set(keys)) == n_docs
    sampled = [d.doc_id for d in sample_documents(load_dataset(scifact_dir), n_docs, seed=7)]
    assert sorted(keys) == sorted((d, 0) for d in sampled)
    assert f"{n_docs} queries for {n_docs} documents" in done.stdout


class SmallContextBackend(FakeBackend):
    """The fake backend with a known context length (as llama.cpp's n_ctx per slot)."""

    name = "fake-small-context"
    context_length = 32 + 8 + 40  # margin + max_new_tokens + room for the prompt


BACKENDS.register("fake-small-context")(SmallContextBackend)


def test_few_shot_examples_are_dropped_to_fit_the_context(tiny_beir: Path, tmp_path: Path) -> None:
    from inpars.generate import PROMPT_MARGIN

    out = tmp_path / "q.jsonl"
    gen(tiny_beir, out, backend="fake-small-context", prompt="promptagator", train_split="train", n_examples=2, n_docs=6,
        max_new_tokens=8)
    room = SmallContextBackend.context_length - 8 - PROMPT_MARGIN
    shown = [len(r["fewshot_examples"]) for r in lines(out)]
    assert all(len(r["prompt_text"].split()) <= room for r in lines(out))
    assert max(shown) < 2  # two examples do not fit in 40 words here; one does for some documents
    assert max(shown) == 1


@pytest.mark.slow
@needs_llamacpp
def test_real_sampling_is_the_same_for_any_batch_size_and_after_a_resume(scifact_dir: Path, tmp_path: Path) -> None:
    # flash attention off: log-probs then do not depend on which prompt filled the prefix cache before
    kw: dict[str, Any] = dict(
        backend="llamacpp", model="smollm2-135m", n_docs=4, temperature=0.8, max_new_tokens=16, seed=3,
        max_doc_tokens=64, backend_options={"n_threads": 2, "flash_attn": "off", "n_ctx": 1024}, progress=False,
    )
    ds = load_dataset(scifact_dir)
    generate_queries(ds, tmp_path / "b1.jsonl", batch_size=1, **kw)
    generate_queries(ds, tmp_path / "b4.jsonl", batch_size=4, **kw)
    one, four = read_generated(tmp_path / "b1.jsonl"), read_generated(tmp_path / "b4.jsonl")
    assert [(r.doc_id, r.query) for r in one] == [(r.doc_id, r.query) for r in four]
    for a, b in zip(one, four, strict=True):
        assert a.log_probs == pytest.approx(b.log_probs, abs=1e-4)
    # interrupted after two records (the rest lost), then resumed: the same queries as the whole run
    out = tmp_path / "b4.jsonl"
    kept = out.read_text(encoding="utf-8").splitlines(keepends=True)[:2]
    out.write_text("".join(kept), encoding="utf-8")
    s = generate_queries(ds, out, batch_size=2, **kw)
    assert s.n_skipped_existing == 2 and s.n_generated == 2
    resumed = read_generated(out)
    assert [(r.doc_id, r.query) for r in resumed] == [(r.doc_id, r.query) for r in one]
    for a, b in zip(resumed, one, strict=True):
        assert a.log_probs == pytest.approx(b.log_probs, abs=1e-4)
