"""Generation backends.

- openai: against real HTTP servers on 127.0.0.1: the fault-injecting server of ``fault_server.py``
  (429, 500, hangs past the timeout, garbled JSON, dropped connections) and llama.cpp's own HTTP server
  (the one xllamacpp starts in-process), with an API key read from an environment variable.
- transformers: tiny randomly initialised causal (Llama) and seq2seq (T5) models built here, with a
  byte-level BPE tokenizer trained here; log-probs are checked against an independent forward pass.
- llamacpp (slow): the packaged SmolLM2 GGUF on SciFact documents.
- transformers on the SmolLM2 GGUF vs llama.cpp (slow).

The interface contract shared by every backend (vLLM included, on a GPU) is tested once, parametrised over
the backends, in ``test_backend_interface.py``; this file holds what is particular to each backend.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import pytest

from fault_server import FaultServer, completion_words
from inpars.errors import MissingExtraError
from inpars.generation.base import Generation, GenerationError, SamplingParams, get_backend

KEY_ENV = "INPARS_TEST_API_KEY"
KEY = "sk-test-7f3c9e1d2b"


def _finite_nonpositive(values: list[float]) -> bool:
    return all(math.isfinite(v) and v <= 1e-6 for v in values)


# ---------------------------------------------------------------------------------------------------------
# openai backend: fault-injecting server


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def _openai(server: FaultServer, **options: Any) -> Any:
    opts: dict[str, Any] = dict(base_url=server.base_url, api_key_env=KEY_ENV, timeout=0.5, backoff=0.01, max_backoff=0.05)
    opts.update(options)
    return get_backend("openai", "fake-model", **opts)


def test_openai_retries_every_fault_then_succeeds(api_key: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    script = ["429", "500", "hang", "garbled", "nochoices", "drop", "ok"]
    with FaultServer(script=script, hang_seconds=2.0) as server:
        backend = _openai(server, max_retries=6, concurrency=1)
        [[gen]] = backend.generate(["Document: aspirin\nRelevant Query:"], SamplingParams(max_new_tokens=8))
        backend.close()
    assert server.actions == script  # one attempt per fault, then the success
    assert gen.text == " query about Query"
    assert gen.log_probs == [-0.5, -1.0, -1.5]  # the extra stop token sent by the server is dropped
    assert gen.tokens == completion_words("Query:")
    assert gen.finish_reason == "stop"
    completions = [r for r in server.requests if r[0] == "/v1/completions"]
    assert len(completions) == len(script)
    assert all(headers.get("Authorization") == f"Bearer {KEY}" for _, headers, _ in completions)
    body = completions[-1][2]
    assert body["model"] == "fake-model" and body["stop"] == ["\n"] and body["max_tokens"] == 8 and body["logprobs"] == 1
    # the key is never written anywhere we record
    recorded = json.dumps(backend.describe()) + repr(backend) + json.dumps(gen.__dict__) + caplog.text
    assert KEY not in recorded
    assert backend.describe()["api_key_env"] == KEY_ENV


def test_openai_permanent_failure_is_a_clear_error(api_key: str) -> None:
    with FaultServer(default="500") as server:
        backend = _openai(server, max_retries=2)
        with pytest.raises(GenerationError, match=r"gave up after 3 attempts.*HTTP 500.*injected 500") as err:
            backend.generate(["x"], SamplingParams())
    assert len(server.actions) == 3
    assert KEY not in str(err.value)


def test_openai_client_error_is_not_retried(api_key: str) -> None:
    with FaultServer(default="400") as server:
        backend = _openai(server, max_retries=5)
        with pytest.raises(GenerationError, match=r"HTTP 400.*injected 400"):
            backend.generate(["x"], SamplingParams())
    assert server.actions == ["400"]


def test_openai_timeouts_exhaust_retries(api_key: str) -> None:
    with FaultServer(default="hang", hang_seconds=2.0) as server:
        backend = _openai(server, max_retries=1, timeout=0.3)
        with pytest.raises(GenerationError, match="timeout"):
            backend.generate(["x"], SamplingParams())
    assert server.actions == ["hang", "hang"]


def test_openai_concurrent_requests_keep_order_and_samples(api_key: str) -> None:
    prompts = [f"Document: topic{i}\nQuery: word{i}" for i in range(6)]
    with FaultServer(logprob_style="llamacpp") as server:
        backend = _openai(server, concurrency=3)
        out = backend.generate(prompts, SamplingParams(temperature=0.7, n=2, seed=11, max_new_tokens=3))
    assert [[g.text for g in gens] for gens in out] == [[f" query about word{i}"] * 2 for i in range(6)]
    assert all(g.log_probs == [-0.5, -1.0, -1.5] for gens in out for g in gens)
    seeds = sorted(r[2]["seed"] for r in server.requests)
    assert seeds == sorted([11, 12] * 6)  # sample i uses seed + i
    assert {r[2]["temperature"] for r in server.requests} == {0.7}


def test_openai_chat_endpoint_and_length(api_key: str) -> None:
    with FaultServer() as server:
        backend = _openai(server, endpoint="chat")
        [[gen]] = backend.generate(["Write a query about cats"], SamplingParams(max_new_tokens=2))
        assert backend.chat_prompt("hello") == "hello"  # the server applies its own template
    path, _, body = server.requests[-1]
    assert path == "/v1/chat/completions"
    assert body["messages"] == [{"role": "user", "content": "Write a query about cats"}] and body["logprobs"] is True
    assert gen.text == " query about" and gen.log_probs == [-0.5, -1.0] and gen.finish_reason == "length"


def test_openai_without_logprobs_or_tokenizer_warns_and_approximates(api_key: str, caplog: pytest.LogCaptureFixture) -> None:
    with FaultServer(logprob_style="none") as server:
        backend = _openai(server)
        with caplog.at_level(logging.WARNING):
            out = backend.generate(["a b", "c d"], SamplingParams())
            assert backend.truncate("one two three four", 2) == "one two"
            assert backend.count_tokens("one two three") == 3
            assert backend.chat_prompt("hi") == "hi"
    assert [g[0].log_probs for g in out] == [[], []]
    assert caplog.text.count("no log-probabilities") == 1
    assert "approximated by whitespace words" in caplog.text
    assert backend.describe()["server_tokenizer"] is False


def test_openai_uses_server_tokenizer(api_key: str) -> None:
    with FaultServer(tokenize=True) as server:
        backend = _openai(server)
        assert backend.tokenize("abc") == [97, 98, 99]
        assert backend.truncate("abcdef", 4) == "abcd"


def test_openai_no_key_sends_no_authorization(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with FaultServer() as server:
        backend = _openai(server)
        backend.generate(["x"], SamplingParams())
    assert all("Authorization" not in headers for _, headers, _ in server.requests)


# ---------------------------------------------------------------------------------------------------------
# transformers backend: tiny random models


TINY_CORPUS = [
    "Document: Vitamin D supplementation reduces respiratory infections.\nRelevant Query: vitamin d infections\n",
    "Document: Aspirin lowers the risk of heart attack in older patients.\nRelevant Query: aspirin heart\n",
    "Document: Statins reduce cholesterol and cardiovascular events.\nRelevant Query: statins cholesterol\n",
    "Article: Short sleep is linked to obesity in children.\nQuery: sleep obesity children\n",
]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A causal Llama and a T5, randomly initialised with a fixed seed, with a byte-level BPE tokenizer."""
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
        T5Config,
        T5ForConditionalGeneration,
    )

    root = tmp_path_factory.mktemp("tiny")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(TINY_CORPUS * 5, trainers.BpeTrainer(vocab_size=200, special_tokens=["<eos>", "<pad>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>")
    torch.manual_seed(0)
    causal = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, eos_token_id=tok.eos_token_id, bos_token_id=None,
        pad_token_id=None, initializer_range=0.5,
    )
    LlamaForCausalLM(causal).save_pretrained(root / "causal")
    tok.save_pretrained(root / "causal")  # no pad token: the backend uses EOS
    tok.pad_token = "<pad>"
    t5 = T5Config(
        vocab_size=len(tok), d_model=32, d_ff=64, d_kv=8, num_layers=2, num_decoder_layers=2, num_heads=4,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, decoder_start_token_id=tok.pad_token_id,
        initializer_factor=5.0,
    )
    T5ForConditionalGeneration(t5).save_pretrained(root / "t5")
    tok.save_pretrained(root / "t5")
    return {"causal": root / "causal", "t5": root / "t5"}


PROMPTS = [
    "Document: Vitamin D.\nRelevant Query:",
    "Aspirin",
    "Document: Statins reduce cholesterol and cardiovascular events in adults.\nRelevant Query:",
]


def _independent_log_probs(backend: Any, prompt: str, gen: Generation) -> list[float]:
    """Log-probs of the generated tokens by a plain forward pass (no generate())."""
    import torch

    model, tok = backend.model_obj, backend.tokenizer
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    new = tok("".join(gen.tokens), add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        if backend.is_encoder_decoder:
            start = torch.tensor([[model.config.decoder_start_token_id]])
            dec = torch.cat([start, new], dim=1)
            logits = model(input_ids=ids, decoder_input_ids=dec).logits[0, :-1]
        else:
            full = torch.cat([ids, new], dim=1)
            logits = model(input_ids=full).logits[0, ids.shape[1] - 1 : -1]
    lp = torch.log_softmax(logits.float(), dim=-1)
    return lp[torch.arange(new.shape[1]), new[0]].tolist()


@pytest.mark.parametrize("kind", ["causal", "t5"])
def test_transformers_batch_equals_single_and_logprobs_are_right(tiny_models: dict[str, Path], kind: str) -> None:
    backend = get_backend("transformers", str(tiny_models[kind]), device="cpu", batch_size=3)
    params = SamplingParams(max_new_tokens=8, stop=())
    batched = backend.generate(PROMPTS, params)
    single = [backend.generate([p], params)[0] for p in PROMPTS]
    for prompt, [b], [s] in zip(PROMPTS, batched, single, strict=True):
        assert b.text == s.text
        assert b.log_probs == pytest.approx(s.log_probs, abs=1e-3)  # padding changes float rounding
        assert len(b.log_probs) == len(b.tokens) > 0 and "".join(b.tokens) == b.text
        assert _finite_nonpositive(b.log_probs)
        if b.finish_reason == "length":
            assert len(b.log_probs) == 8
        assert s.log_probs == pytest.approx(_independent_log_probs(backend, prompt, s), abs=1e-3)
        assert b.prompt_tokens == len(backend.tokenizer(prompt)["input_ids"])
    assert backend.describe()["encoder_decoder"] is (kind == "t5")
    backend.close()


@pytest.mark.parametrize("kind", ["causal", "t5"])
def test_transformers_stop_string_cuts_text_and_logprobs(tiny_models: dict[str, Path], kind: str) -> None:
    backend = get_backend("transformers", str(tiny_models[kind]), device="cpu")
    prompt = PROMPTS[2]
    [[free]] = backend.generate([prompt], SamplingParams(max_new_tokens=10, stop=()))
    # a stop string = a token piece whose first occurrence in the text is where that token starts
    k, piece = next(
        (k, t) for k, t in enumerate(free.tokens) if k >= 2 and t.strip() and free.text.find(t) == len("".join(free.tokens[:k]))
    )
    [[cut]] = backend.generate([prompt], SamplingParams(max_new_tokens=10, stop=(piece,)))
    assert cut.text == free.text[: free.text.find(piece)]
    assert cut.tokens == free.tokens[:k]
    assert cut.log_probs == pytest.approx(free.log_probs[:k], abs=1e-5)
    assert cut.finish_reason == "stop"


def test_transformers_sampling_is_seeded(tiny_models: dict[str, Path]) -> None:
    backend = get_backend("transformers", str(tiny_models["causal"]), device="cpu")
    params = SamplingParams(max_new_tokens=6, temperature=1.0, n=3, seed=3, stop=())
    a = backend.generate(PROMPTS[:2], params)
    b = backend.generate(PROMPTS[:2], params)
    assert [[g.text for g in gs] for gs in a] == [[g.text for g in gs] for gs in b]
    assert len({g.text for g in a[0]}) > 1  # seed + i per sample
    greedy = backend.generate(PROMPTS[:1], SamplingParams(max_new_tokens=6, n=2, stop=()))
    assert greedy[0][0].text == greedy[0][1].text


def test_transformers_per_prompt_seeds_do_not_depend_on_the_batch(tiny_models: dict[str, Path]) -> None:
    backend = get_backend("transformers", str(tiny_models["causal"]), device="cpu", batch_size=4)
    params = SamplingParams(max_new_tokens=6, temperature=1.0, n=2, stop=())
    seeds = [11, 22, 33]
    batched = backend.generate(PROMPTS[:3], params, seeds=seeds)
    alone = [backend.generate([p], params, seeds=[s])[0] for p, s in zip(PROMPTS[:3], seeds, strict=True)]
    assert [[g.text for g in gs] for gs in batched] == [[g.text for g in gs] for gs in alone]
    # the same prompt with another seed samples something else; without seeds, params.seed is used
    other = backend.generate([PROMPTS[0]], params, seeds=[12])[0]
    assert [g.text for g in other] != [g.text for g in alone[0]]
    default = backend.generate([PROMPTS[0]], SamplingParams(max_new_tokens=6, temperature=1.0, n=2, stop=(), seed=11))
    assert [g.text for g in default[0]] == [g.text for g in alone[0]]
    with pytest.raises(ValueError, match="2 seeds for 3 prompts"):
        backend.generate(PROMPTS[:3], params, seeds=[1, 2])


def test_transformers_tokenizer_helpers(tiny_models: dict[str, Path]) -> None:
    backend = get_backend("transformers", str(tiny_models["causal"]), device="cpu")
    text = "Statins reduce cholesterol and cardiovascular events."
    cut = backend.truncate(text, 4)
    assert backend.count_tokens(cut) == 4 and text.startswith(cut)
    assert backend.truncate(text, 1000) == text
    assert backend.chat_prompt("hi") == "hi"  # no chat template in this tokenizer
    with pytest.raises(GenerationError, match="exceeds the model's 256 positions"):
        backend.generate(["word " * 300], SamplingParams(max_new_tokens=4))


def test_vllm_adapter_tokenizes_each_prompt_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The vLLM adapter on a stand-in ``vllm`` module (vLLM needs a CUDA GPU): a prompt is tokenised once
    (the length check's ids go to vLLM as a token prompt, for every sample), and the records are built from
    vLLM's outputs as for the other backends."""
    import sys
    import types

    class Tokenizer:
        eos_token_id = 0
        calls = 0

        def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
            Tokenizer.calls += 1
            return [1] * add_special_tokens + [ord(c) for c in text]

        def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
            return "".join(chr(i) for i in ids if i > 1 or not skip_special_tokens)

    received: list[Any] = []

    class LLM:
        def __init__(self, **kwargs: Any) -> None:
            self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=64))

        def get_tokenizer(self) -> Tokenizer:
            return Tokenizer()

        def generate(self, prompts: list[Any], params: list[Any], use_tqdm: bool = False) -> list[Any]:
            received.extend(prompts)
            out = []
            for prompt in prompts:
                ids = [ord(c) for c in "ok\nmore"]
                lps = [{t: types.SimpleNamespace(logprob=-0.5)} for t in ids]
                out.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=ids, logprobs=lps)],
                                                 prompt_token_ids=prompt["prompt_token_ids"], num_cached_tokens=0))
            return out

    fake = types.ModuleType("vllm")
    fake.LLM = LLM  # type: ignore[attr-defined]
    fake.SamplingParams = lambda **kw: kw  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", fake)
    backend = get_backend("vllm", "any-model")
    gens = backend.generate(["Document: a\nQuery:", "Document: b\nQuery:"],
                            SamplingParams(n=3, temperature=0.7, stop=("\n",)), seeds=[5, 9])
    assert Tokenizer.calls == 2 and len(received) == 6
    assert received[0] == received[2] == {"prompt_token_ids": [1] + [ord(c) for c in "Document: a\nQuery:"]}
    assert [[g.text for g in group] for group in gens] == [["ok"] * 3] * 2
    assert gens[0][0].log_probs == [-0.5, -0.5]
    with pytest.raises(GenerationError, match="exceeds the model's 64 positions"):
        backend.generate(["x" * 80], SamplingParams())


def test_missing_optional_backend_names_the_extra() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError, match=r"inpars-toolkit\[vllm\]"):
            get_backend("vllm", "any-model")
    else:  # pragma: no cover
        pytest.skip("vllm is installed")


def test_gguf_through_transformers_without_gguf_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    gguf_path = tmp_path / "model.gguf"
    gguf_path.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "gguf", None)  # makes `import gguf` raise ImportError
    with pytest.raises(MissingExtraError, match=r"inpars-toolkit\[gguf\]"):
        get_backend("transformers", str(gguf_path), device="cpu")


# ---------------------------------------------------------------------------------------------------------
# llama.cpp (real SmolLM2)


@pytest.fixture(scope="module")
def scifact_docs(scifact_dir: Path) -> list[Any]:
    from inpars.datasets import load_dataset

    return list(itertools.islice(load_dataset(scifact_dir).docs_iter(), 3))


@pytest.fixture(scope="module")
def llama() -> Any:
    pytest.importorskip("xllamacpp")
    # flash attention off: log-probs do not depend on how much of the prompt came from the cache
    backend = get_backend("llamacpp", "smollm2-135m", n_ctx=1024, flash_attn="off")
    yield backend
    backend.close()


def _inpars_prompts(backend: Any, docs: list[Any]) -> list[str]:
    from inpars.prompts import get_prompt

    prompt = get_prompt("inpars", truncate=backend.truncate, max_doc_tokens=48)
    return [prompt.build(d).text for d in docs]


@pytest.mark.slow
def test_llamacpp_generates_with_logprobs_and_prefix_cache(llama: Any, scifact_docs: list[Any]) -> None:
    prompts = _inpars_prompts(llama, scifact_docs)
    params = SamplingParams(max_new_tokens=32)
    first = [g for [g] in llama.generate(prompts, params)]
    for prompt, gen in zip(prompts, first, strict=True):
        assert gen.text.strip() and "\n" not in gen.text
        assert len(gen.log_probs) == len(gen.tokens) > 0 and "".join(gen.tokens) == gen.text
        assert _finite_nonpositive(gen.log_probs)
        assert abs(gen.prompt_tokens - llama.count_tokens(prompt)) <= 1
    # the second prompt shares the 3 fixed examples with the first: they come from the KV cache
    shared = len(os.path.commonprefix(prompts[:2]))
    assert first[1].cached_tokens >= llama.count_tokens(prompts[0][:shared]) - 2 > 100
    # greedy is deterministic; the first prompt ran without cache, then with its examples cached, and
    # (flash attention off) the log-probs are exactly the same
    again = [g for [g] in llama.generate(prompts, params)]
    assert first[0].cached_tokens == 0 < again[0].cached_tokens
    assert [g.text for g in again] == [g.text for g in first]
    assert [g.log_probs for g in again] == [g.log_probs for g in first]


@pytest.mark.slow
def test_llamacpp_sampling_tokenizer_and_errors(llama: Any) -> None:
    prompt = "Q: What is the capital of France?\nA:"
    params = SamplingParams(max_new_tokens=12, temperature=1.0, n=3, seed=7)
    a, b = llama.generate([prompt], params)[0], llama.generate([prompt], params)[0]
    assert [g.text for g in a] == [g.text for g in b]
    assert len({g.text for g in a}) > 1
    text = "Vitamin D supplementation reduces respiratory infections."
    cut = llama.truncate(text, 5)
    assert llama.count_tokens(cut) == 5 and text.startswith(cut)
    assert llama.detokenize(llama.tokenize(text)) == text
    assert llama.chat_prompt("hi").endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    with pytest.raises(GenerationError, match=r"exceeds the available context size.*n_ctx per slot is 1024"):
        llama.generate(["word " * 1500], SamplingParams(max_new_tokens=4))


@pytest.mark.slow
def test_llamacpp_per_prompt_seeds_do_not_depend_on_the_batch(llama: Any) -> None:
    prompts = ["Q: What is the capital of France?\nA:", "Q: Name a fruit.\nA:"]
    params = SamplingParams(max_new_tokens=10, temperature=1.0, n=2)
    batched = llama.generate(prompts, params, seeds=[5, 9])
    alone = [llama.generate([p], params, seeds=[s])[0] for p, s in zip(prompts, [5, 9], strict=True)]
    assert [[g.text for g in gs] for gs in batched] == [[g.text for g in gs] for gs in alone]
    assert [g.text for g in llama.generate(prompts[1:], SamplingParams(max_new_tokens=10, temperature=1.0, n=2,
                                                                        seed=9))[0]] == [g.text for g in alone[1]]


@pytest.mark.slow
def test_llamacpp_prompt_threads_never_change_the_output(llama: Any, scifact_docs: list[Any]) -> None:
    """``n_threads`` (prompt processing) is speed only; ``decode_threads`` is part of the output's identity."""
    prompts = _inpars_prompts(llama, scifact_docs[:2])
    params = SamplingParams(max_new_tokens=16, temperature=0.8, n=2, seed=3)

    def run(**options: Any) -> list[tuple[str, list[float]]]:
        with get_backend("llamacpp", "smollm2-135m", n_ctx=1024, flash_attn="off", **options) as backend:
            return [(g.text, g.log_probs) for gens in backend.generate(prompts, params) for g in gens]

    one = run(n_threads=1)
    assert run(n_threads=2) == one
    assert llama.describe()["decode_threads"] == 1
    with pytest.raises(ValueError, match="decode_threads: expected a positive number of threads"):
        get_backend("llamacpp", "smollm2-135m", decode_threads=0)


@pytest.mark.slow
def test_llamacpp_parallel_slots_keep_order() -> None:
    pytest.importorskip("xllamacpp")
    countries = {"France": "Paris", "Italy": "Rome", "Japan": "Tokyo", "Germany": "Berlin"}
    prompts = [f"Q: What is the capital of {c}?\nA: The capital of {c} is" for c in countries]
    with get_backend("llamacpp", "smollm2-135m", n_ctx=256, n_parallel=2, cache_prompt=False) as backend:
        out = backend.generate(prompts, SamplingParams(max_new_tokens=6))
        assert backend.describe()["n_parallel"] == 2
        with pytest.raises(GenerationError, match="n_ctx per slot is 256"):
            backend.generate(["word " * 300], SamplingParams(max_new_tokens=4))
    for [gen], capital in zip(out, countries.values(), strict=True):
        assert capital in gen.text
        assert gen.cached_tokens == 0 and len(gen.log_probs) == len(gen.tokens) > 0


def test_llamacpp_missing_model_file(tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp")
    with pytest.raises(FileNotFoundError, match="GGUF model file not found"):
        get_backend("llamacpp", str(tmp_path / "nope.gguf"))


# ---------------------------------------------------------------------------------------------------------
# openai backend against llama.cpp's real HTTP server


@pytest.mark.slow
def test_openai_against_llamacpp_http_server(api_key: str, scifact_docs: list[Any]) -> None:
    xllamacpp = pytest.importorskip("xllamacpp")
    from inpars.models import resolve_model

    p = xllamacpp.CommonParams()
    p.model.path = resolve_model("smollm2-135m")
    p.n_ctx = 1024
    p.verbosity = 0
    p.api_keys = [KEY]  # the server refuses requests without the key
    server = xllamacpp.Server(p)
    base = server.listening_address
    assert base.startswith("http://127.0.0.1:")
    backend = get_backend("openai", "smollm2", base_url=base + "/v1", api_key_env=KEY_ENV, concurrency=1)
    prompts = _inpars_prompts(backend, scifact_docs[:2])
    assert backend.describe()["server_tokenizer"] is True  # llama.cpp's /tokenize was used
    out = [g for [g] in backend.generate(prompts, SamplingParams(max_new_tokens=24))]
    assert out[1].cached_tokens > 100  # llama.cpp reports the reused prefix through the HTTP API too
    # without the prompt cache, the HTTP answer equals the in-process one exactly
    uncached = get_backend(
        "openai", "smollm2", base_url=base + "/v1", api_key_env=KEY_ENV, extra_body={"cache_prompt": False}
    )
    [[via_http]] = uncached.generate(prompts[:1], SamplingParams(max_new_tokens=24))
    direct = server.handle_completions(
        {"prompt": prompts[0], "max_tokens": 24, "temperature": 0, "stop": ["\n"], "n_probs": 1, "cache_prompt": False}
    )
    assert via_http.text == direct["choices"][0]["text"] == out[0].text and via_http.text.strip()
    assert via_http.log_probs == [c["logprob"] for c in direct["choices"][0]["logprobs"]["content"]]
    assert via_http.cached_tokens == 0
    assert "<|im_start|>user\nhi" in backend.chat_prompt("hi")
    os.environ[KEY_ENV] = "wrong-key"
    bad = get_backend("openai", "smollm2", base_url=base + "/v1", api_key_env=KEY_ENV)
    with pytest.raises(GenerationError, match=rf"HTTP 401 \(check the API key in \${KEY_ENV}\)"):
        bad.generate(["x"], SamplingParams(max_new_tokens=2))
    del server


# ---------------------------------------------------------------------------------------------------------
# transformers on the real SmolLM2 GGUF


@pytest.mark.slow
def test_transformers_gguf_is_the_same_model_as_llamacpp(llama: Any, scifact_docs: list[Any]) -> None:
    backend = get_backend("transformers", "smollm2-135m", device="cpu", batch_size=2)
    prompts = _inpars_prompts(llama, scifact_docs[:2])
    params = SamplingParams(max_new_tokens=24)
    hf = [g for [g] in backend.generate(prompts, params)]
    ref = [g for [g] in llama.generate(prompts, params)]
    for prompt, h, r in zip(prompts, hf, ref, strict=True):
        assert h.text.strip() and "\n" not in h.text and h.finish_reason == "stop"
        assert backend.tokenize(prompt) == llama.tokenize(prompt)
        assert h.prompt_tokens == r.prompt_tokens
        # llama.cpp's query scored by the dequantised fp32 model: close to llama.cpp's own log-probs (its
        # kernels quantise activations, so greedy texts can part after a near-tie)
        forced = _independent_log_probs(backend, prompt, r)
        assert len(forced) == len(r.log_probs)
        assert forced == pytest.approx(r.log_probs, abs=0.3)
    backend.close()
