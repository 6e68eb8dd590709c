"""The generation backend interface (:class:`inpars.generation.base.Backend`), one set of tests for every
backend that can run here:

- ``transformers``: a tiny random causal Llama built from a config, with a byte-level BPE tokenizer trained
  here (on CUDA when a GPU is visible, else on the CPU);
- ``vllm``: the same tiny model on vLLM (``gpu``: skipped without a CUDA GPU and vllm);
- ``llamacpp`` (``slow``): the packaged SmolLM2 GGUF in-process;
- ``openai`` (``slow``): the OpenAI-compatible client against llama.cpp's own HTTP server on 127.0.0.1.

Every case is built offline. The contract checked: one list of ``n`` generations per prompt, in prompt
order; per-token log-probs that are finite, non-positive and aligned with the token pieces (whose
concatenation is the text); greedy decoding repeatable and independent of the batch; per-prompt seeds
that reproduce samples whatever the batch; stop strings that cut the text, tokens and log-probs at the
same place; tokenizer helpers that agree with each other; a prompt longer than the context is a
:class:`~inpars.generation.base.GenerationError`. Where the model is a transformers folder, the reported
log-probs are also checked against a plain forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from inpars.generation.base import Backend, Generation, GenerationError, SamplingParams, get_backend

CORPUS = [
    "Document: Vitamin D supplementation reduces respiratory infections.\nRelevant Query: vitamin d infections\n",
    "Document: Aspirin lowers the risk of heart attack in older patients.\nRelevant Query: aspirin heart\n",
    "Document: Statins reduce cholesterol and cardiovascular events.\nRelevant Query: statins cholesterol\n",
    "Article: Short sleep is linked to obesity in children.\nQuery: sleep obesity children\n",
]
PROMPTS = [
    "Document: Vitamin D.\nRelevant Query:",
    "Aspirin lowers",
    "Document: Statins reduce cholesterol and cardiovascular events in adults.\nRelevant Query:",
]
TEXT = "Statins reduce cholesterol and cardiovascular events."


@dataclass
class Case:
    """A backend under test and what can be checked beyond the common contract."""

    backend: Backend
    hf_folder: Path | None = None  # a transformers folder of the same weights: check log-probs by a forward pass
    log_prob_tolerance: float = 1e-3
    prompt_token_slack: int = 0  # llama.cpp counts the BOS token it adds
    context: int | None = None  # prompts longer than this many tokens are refused


def _cuda_and_vllm() -> bool:
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _cuda() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False
    return bool(torch.cuda.is_available())


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama (head size 64, which every vLLM attention kernel supports), fixed seed."""
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("tiny_lm")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(CORPUS * 5, trainers.BpeTrainer(vocab_size=200, special_tokens=["<eos>", "<pad>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>", pad_token="<pad>")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=256, eos_token_id=tok.eos_token_id, bos_token_id=None,
        pad_token_id=tok.pad_token_id, initializer_range=0.2, tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(root)
    tok.save_pretrained(root)
    return root


def _transformers(request: pytest.FixtureRequest) -> Iterator[Case]:
    folder = request.getfixturevalue("tiny_lm")
    backend = get_backend("transformers", str(folder), device="cuda" if _cuda() else "cpu", batch_size=3)
    yield Case(backend, hf_folder=folder, context=256)
    backend.close()


def _vllm(request: pytest.FixtureRequest) -> Iterator[Case]:  # pragma: no cover - GPU only
    folder = request.getfixturevalue("tiny_lm")
    backend = get_backend("vllm", str(folder), max_model_len=256, gpu_memory_utilization=0.3)
    # vLLM computes in bf16/fp16 (the folder is fp32): its log-probs are close to the fp32 forward pass
    yield Case(backend, hf_folder=folder, log_prob_tolerance=0.3, context=256)
    backend.close()


def _llamacpp(request: pytest.FixtureRequest) -> Iterator[Case]:
    pytest.importorskip("xllamacpp")
    # no prompt cache and no flash attention: log-probs do not depend on what ran before
    backend = get_backend("llamacpp", "smollm2-135m", n_ctx=512, flash_attn="off", cache_prompt=False)
    yield Case(backend, prompt_token_slack=1, context=512)
    backend.close()


def _openai(request: pytest.FixtureRequest) -> Iterator[Case]:
    xllamacpp = pytest.importorskip("xllamacpp")
    from inpars.models import resolve_model

    p = xllamacpp.CommonParams()
    p.model.path = resolve_model("smollm2-135m")
    p.n_ctx = 512
    p.verbosity = 0
    server = xllamacpp.Server(p)
    backend = get_backend(
        "openai", "smollm2", base_url=server.listening_address + "/v1", extra_body={"cache_prompt": False}, concurrency=1
    )
    yield Case(backend, prompt_token_slack=1, context=512)
    backend.close()
    del server


BUILDERS = {"transformers": _transformers, "vllm": _vllm, "llamacpp": _llamacpp, "openai": _openai}
VLLM_SKIP = pytest.mark.skipif(not _cuda_and_vllm(), reason="needs a CUDA GPU and vllm")


@pytest.fixture(
    scope="module",
    params=[
        "transformers",
        pytest.param("vllm", marks=[pytest.mark.gpu, VLLM_SKIP]),
        pytest.param("llamacpp", marks=pytest.mark.slow),
        pytest.param("openai", marks=pytest.mark.slow),
    ],
)
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    yield from BUILDERS[request.param](request)


def _check_generation(gen: Generation, max_new_tokens: int) -> None:
    assert isinstance(gen.text, str) and "".join(gen.tokens) == gen.text
    assert len(gen.log_probs) == len(gen.tokens) <= max_new_tokens
    assert all(math.isfinite(v) and v <= 1e-6 for v in gen.log_probs)
    assert gen.finish_reason in ("stop", "length")
    if gen.finish_reason == "length":
        assert len(gen.tokens) >= 1


def test_one_list_of_n_generations_per_prompt(case: Case) -> None:
    out = case.backend.generate(PROMPTS, SamplingParams(max_new_tokens=8, n=2))
    assert len(out) == len(PROMPTS) and all(len(gens) == 2 for gens in out)
    for prompt, gens in zip(PROMPTS, out, strict=True):
        for gen in gens:
            _check_generation(gen, 8)
            assert "\n" not in gen.text  # the default stop string
            assert abs(gen.prompt_tokens - case.backend.count_tokens(prompt)) <= case.prompt_token_slack
        assert gens[0].text == gens[1].text and gens[0].log_probs == gens[1].log_probs  # greedy: n copies
    assert any(gen.tokens for gens in out for gen in gens)


def test_greedy_is_repeatable_and_independent_of_the_batch(case: Case) -> None:
    params = SamplingParams(max_new_tokens=8, stop=())
    batched = case.backend.generate(PROMPTS, params)
    single = [case.backend.generate([p], params)[0] for p in PROMPTS]
    again = case.backend.generate(PROMPTS, params)
    assert [g.text for [g] in batched] == [g.text for [g] in single] == [g.text for [g] in again]
    for [b], [s] in zip(batched, single, strict=True):
        _check_generation(b, 8)
        assert b.tokens == s.tokens
        assert b.log_probs == pytest.approx(s.log_probs, abs=max(case.log_prob_tolerance, 1e-3))


def test_seeds_reproduce_samples_whatever_the_batch(case: Case) -> None:
    params = SamplingParams(max_new_tokens=8, temperature=1.0, n=3, stop=())
    seeds = [5, 9]
    batched = case.backend.generate(PROMPTS[:2], params, seeds=seeds)
    alone = [case.backend.generate([p], params, seeds=[s])[0] for p, s in zip(PROMPTS[:2], seeds, strict=True)]
    assert [[g.text for g in gs] for gs in batched] == [[g.text for g in gs] for gs in alone]
    for gens in batched:
        for gen in gens:
            _check_generation(gen, 8)
    assert len({g.text for g in batched[0]}) > 1  # sample i uses seed + i
    # without per-prompt seeds, params.seed applies to every prompt
    default = case.backend.generate([PROMPTS[1]], SamplingParams(max_new_tokens=8, temperature=1.0, n=3, stop=(), seed=9))
    assert [g.text for g in default[0]] == [g.text for g in alone[1]]
    with pytest.raises(ValueError, match="2 seeds for 3 prompts"):
        case.backend.generate(PROMPTS, params, seeds=seeds)


def test_stop_string_cuts_text_tokens_and_log_probs_together(case: Case) -> None:
    prompt = PROMPTS[2]
    [[free]] = case.backend.generate([prompt], SamplingParams(max_new_tokens=10, stop=()))
    # a stop string = a token piece whose first occurrence in the text is where that token starts
    found = [
        (k, t) for k, t in enumerate(free.tokens)
        if k >= 1 and t.strip() and free.text.find(t) == len("".join(free.tokens[:k]))
    ]
    assert found, f"no usable stop string in {free.tokens!r}"
    k, piece = found[0]
    [[cut]] = case.backend.generate([prompt], SamplingParams(max_new_tokens=10, stop=(piece,)))
    assert cut.text == free.text[: free.text.find(piece)]
    assert cut.tokens == free.tokens[:k]
    assert cut.log_probs == pytest.approx(free.log_probs[:k], abs=max(case.log_prob_tolerance, 1e-5))
    assert cut.finish_reason == "stop"


def test_tokenizer_helpers_agree(case: Case) -> None:
    backend = case.backend
    ids = backend.tokenize(TEXT)
    assert ids and all(isinstance(i, int) for i in ids)
    assert backend.count_tokens(TEXT) == len(ids)
    assert backend.detokenize(ids) == TEXT
    short = backend.truncate(TEXT, 4)
    assert backend.count_tokens(short) == 4 and TEXT.startswith(short)
    assert backend.truncate(TEXT, 1000) == TEXT
    assert isinstance(backend.chat_prompt("hi"), str) and "hi" in backend.chat_prompt("hi")
    assert backend.describe()["backend"] == backend.name


def test_prompt_longer_than_the_context_is_a_generation_error(case: Case) -> None:
    assert case.context is not None
    with pytest.raises(GenerationError):
        case.backend.generate([" word" * (2 * case.context)], SamplingParams(max_new_tokens=4))
    [[gen]] = case.backend.generate(PROMPTS[:1], SamplingParams(max_new_tokens=4))  # still usable after it
    _check_generation(gen, 4)


def test_log_probs_match_a_forward_pass(case: Case) -> None:
    if case.hf_folder is None:
        pytest.skip("no transformers folder of the same weights")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(case.hf_folder, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(case.hf_folder)
    by_piece: dict[str, int] = {}
    for i in range(len(tok)):
        by_piece.setdefault(tok.decode([i]), i)
    out = case.backend.generate(PROMPTS, SamplingParams(max_new_tokens=8, stop=()))
    for prompt, [gen] in zip(PROMPTS, out, strict=True):
        # the backend's own tokens, mapped back to their ids (not the text re-tokenised), in one forward pass
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        new = [by_piece[piece] for piece in gen.tokens]
        with torch.no_grad():
            logits = model(input_ids=torch.cat([ids, torch.tensor([new], dtype=ids.dtype)], dim=1)).logits[0]
        lp = torch.log_softmax(logits[ids.shape[1] - 1 : ids.shape[1] - 1 + len(new)].float(), dim=-1)
        expected = [float(lp[k, t]) for k, t in enumerate(new)]
        assert gen.log_probs == pytest.approx(expected, abs=case.log_prob_tolerance)
        # greedy: every token is the most likely one (up to the backend's precision)
        best = lp.max(dim=-1).values.tolist() if new else []
        assert all(e >= b - case.log_prob_tolerance for e, b in zip(expected, best, strict=True))


def test_close_releases_the_backend(tiny_lm: Path) -> None:
    """Closing is the last call: a closed backend refuses to generate (checked on a backend of its own)."""
    backend: Any = get_backend("transformers", str(tiny_lm), device="cpu")
    with backend:
        [[gen]] = backend.generate(PROMPTS[:1], SamplingParams(max_new_tokens=2))
        _check_generation(gen, 2)
    with pytest.raises(GenerationError, match="closed"):
        backend.generate(PROMPTS[:1], SamplingParams(max_new_tokens=2))
