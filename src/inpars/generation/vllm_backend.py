"""vLLM backend (GPU; extra ``[vllm]``): offline batched generation with ``vllm.LLM``.

>>> backend = get_backend("vllm", "meta-llama/Llama-3.1-8B", max_model_len=4096)   # doctest: +SKIP
>>> [[gen]] = backend.generate(["Document: ...\\nRelevant Query:"], SamplingParams())  # doctest: +SKIP

- All prompts of a call go to ``LLM.generate`` at once, tokenised here once each (as token prompts, which
  also serve the length check); vLLM batches them continuously and, with
  ``enable_prefix_caching`` (on by default), reuses the KV cache of the shared few-shot prefix
  (``Generation.cached_tokens`` is ``RequestOutput.num_cached_tokens`` where vLLM reports it).
- ``SamplingParams(logprobs=0)`` returns the log-probability of each sampled token (from the raw model
  distribution in vLLM's default ``logprobs_mode``); the stop string and EOS are handled as by the other
  backends (:func:`~inpars.generation.base.finish_generation`: the token holding the stop string and the
  EOS token are not reported).
- Sample ``i`` of a prompt has that prompt's seed ``+ i`` (vLLM's per-request seed).
"""

from __future__ import annotations

import copy
import gc
import logging
from collections.abc import Sequence
from typing import Any

from inpars.errors import require
from inpars.generation.base import (
    BACKENDS,
    Backend,
    Generation,
    GenerationError,
    SamplingParams,
    finish_generation,
    prompt_seeds,
)
from inpars.models import resolve_model

log = logging.getLogger(__name__)


@BACKENDS.register("vllm")
class VLLMBackend(Backend):
    """vLLM's offline engine.

    Args:
        model: hub id or local folder (a packaged GGUF name resolves to its file; vLLM's GGUF support is
            experimental and needs ``tokenizer``).
        tokenizer: tokenizer id/folder when it differs from ``model``.
        dtype: ``"auto"`` or a torch dtype name.
        max_model_len: context length (prompt + generation); ``None``: the model's.
        gpu_memory_utilization: fraction of GPU memory vLLM may take.
        tensor_parallel_size: GPUs to shard the model over.
        enable_prefix_caching: reuse KV cache of shared prompt prefixes.
        seed: engine seed and default sampling seed.
        llm_kwargs: more keyword arguments for ``vllm.LLM``.
    """

    name = "vllm"
    model_check = "hub"

    def __init__(
        self,
        model: str,
        *,
        tokenizer: str | None = None,
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        tensor_parallel_size: int = 1,
        enable_prefix_caching: bool = True,
        seed: int = 0,
        llm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model)
        vllm = require("vllm", "vllm", "the vLLM backend")
        self._vllm = vllm
        self.seed = seed
        self.settings = {
            "dtype": dtype,
            "max_model_len": max_model_len,
            "gpu_memory_utilization": gpu_memory_utilization,
            "tensor_parallel_size": tensor_parallel_size,
            "enable_prefix_caching": enable_prefix_caching,
        }
        kwargs: dict[str, Any] = dict(
            model=resolve_model(model),
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            enable_prefix_caching=enable_prefix_caching,
            seed=seed,
        )
        if tokenizer is not None:
            kwargs["tokenizer"] = resolve_model(tokenizer)
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        kwargs.update(llm_kwargs or {})
        self.llm: Any = vllm.LLM(**kwargs)
        self.tokenizer: Any = self.llm.get_tokenizer()
        eos = getattr(self.tokenizer, "eos_token_id", None)
        self.eos_ids: set[int] = {eos} if eos is not None else set()
        self.default_batch_size = 256
        try:
            self.context_length = int(self.llm.llm_engine.model_config.max_model_len)
        except AttributeError:  # pragma: no cover - engine layout differs across vLLM versions
            self.context_length = max_model_len

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def detokenize(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=False))

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def chat_prompt(self, user_message: str) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            log.warning("the tokenizer of %s has no chat template; prompt left unchanged", self.model)
            return user_message
        return str(
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": user_message}], tokenize=False, add_generation_prompt=True
            )
        )

    def _sampling(self, params: SamplingParams, seed: int) -> Any:
        return self._vllm.SamplingParams(
            n=1,
            temperature=params.temperature,
            top_p=params.top_p if params.temperature > 0 else 1.0,
            top_k=-1,
            min_p=0.0,
            max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None,
            seed=seed,
            logprobs=0,
            skip_special_tokens=True,
        )

    def generate(
        self, prompts: list[str], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[list[Generation]]:
        """For each prompt, ``params.n`` generations (greedy: computed once and repeated)."""
        if params.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {params.n}")
        if self.llm is None:
            raise GenerationError("the vLLM backend is closed")
        bases = prompt_seeds(self, params, len(prompts), seeds)
        token_ids = self._token_ids(prompts)
        n_distinct = 1 if params.temperature == 0 else params.n
        # token prompts: vLLM does not tokenize again (nor once per sample)
        flat_prompts = [{"prompt_token_ids": ids} for ids in token_ids for _ in range(n_distinct)]
        flat_params = [self._sampling(params, base + j) for base in bases for j in range(n_distinct)]
        outputs = self.llm.generate(flat_prompts, flat_params, use_tqdm=False)
        gens = [self._convert(o, params) for o in outputs]
        out = []
        for i in range(len(prompts)):
            group = gens[i * n_distinct : (i + 1) * n_distinct]
            group += [copy.deepcopy(group[0]) for _ in range(params.n - n_distinct)]
            out.append(group)
        return out

    def _token_ids(self, prompts: list[str]) -> list[list[int]]:
        """Each prompt's token ids, with the special tokens vLLM adds to a text prompt (its tokenizer's
        ``encode``). A prompt that leaves no room to generate is a :class:`GenerationError` (as for the other
        backends), raised before any prompt of the call runs."""
        out = []
        for i, prompt in enumerate(prompts):
            ids = list(self.tokenizer.encode(prompt))
            if self.context_length and len(ids) >= self.context_length:
                raise GenerationError(
                    f"prompt {i} of {len(ids)} tokens exceeds the model's {self.context_length} positions "
                    "(max_model_len); lower max_doc_tokens / n_examples"
                )
            out.append(ids)
        return out

    def _convert(self, request_output: Any, params: SamplingParams) -> Generation:
        completion = request_output.outputs[0]
        ids = list(completion.token_ids)
        lps: list[float] = []
        for tid, entry in zip(ids, completion.logprobs or [], strict=False):
            lps.append(float(entry[tid].logprob))
        if len(lps) != len(ids):
            raise RuntimeError(f"vLLM returned {len(lps)} log-probs for {len(ids)} tokens")
        gen = finish_generation(
            ids, lps, self._decode, params.stop, self.eos_ids, len(request_output.prompt_token_ids or [])
        )
        gen.cached_tokens = int(getattr(request_output, "num_cached_tokens", 0) or 0)
        return gen

    def close(self) -> None:
        self.llm = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "engine": f"vllm {getattr(self._vllm, '__version__', '?')}",
            "seed": self.seed,
            **self.settings,
        }
