"""Hugging Face transformers backend: causal (decoder-only) and seq2seq (encoder-decoder) models.

>>> from inpars.generation.base import get_backend, SamplingParams
>>> backend = get_backend("transformers", "smollm2-135m", batch_size=8)       # doctest: +SKIP
>>> [[gen]] = backend.generate(["Document: ...\\nRelevant Query:"], SamplingParams())  # doctest: +SKIP

- Model: a local folder, a hub id (offline: must be in the local cache), a GGUF file, or a packaged GGUF
  name (``smollm2-135m``, ``gemma3-270m``). A GGUF is loaded with ``from_pretrained(folder,
  gguf_file=name)`` and dequantised (fp32): slower than llama.cpp, but the same weights. Causal or
  seq2seq is read from ``config.is_encoder_decoder``.
- Batches are left-padded for causal models (pad token = EOS when the tokenizer has none).
- Stopping: ``generate(stop_strings=..., tokenizer=...)``; the text is cut at the first stop string, and
  the tokens from the one that contains the stop string onward are not reported, as llama.cpp does; an
  EOS token is not reported either.
- Log-probabilities: ``compute_transition_scores(sequences, logits, normalize_logits=True)`` on the raw
  logits (``output_logits=True``), i.e. the log-probability of each chosen token under the model's full
  distribution, also when sampling with temperature / top-p (as llama.cpp reports them).
- Seeds: sample ``i`` of a prompt is drawn after ``transformers.set_seed(seed + i)`` with that prompt's
  seed. Sampling draws from one global generator, so with ``temperature > 0`` each prompt is decoded on its
  own (a batch would make a prompt's sample depend on its neighbours); greedy decoding is batched.
"""

from __future__ import annotations

import copy
import gc
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inpars.generation.base import (
    BACKENDS,
    Backend,
    Generation,
    GenerationError,
    SamplingParams,
    finish_generation,
    prompt_seeds,
)
from inpars.models import from_pretrained_source, resolve_model

log = logging.getLogger(__name__)


def pick_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; anything else unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: str, device: str) -> Any:
    """``"auto"``: bfloat16 on a CUDA device that supports it (else float16), float32 on CPU."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype '{dtype}'; use auto, {', '.join(names)}")
    return names[dtype]


@BACKENDS.register("transformers")
class TransformersBackend(Backend):
    """A transformers model.

    Args:
        model: folder, hub id, ``.gguf`` file or packaged name (see :mod:`inpars.models`).
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dtype: ``"auto"`` (bf16 on CUDA where supported, fp32 on CPU), ``"float32"``, ``"bfloat16"``,
            ``"float16"``.
        batch_size: prompts per forward batch.
        gguf_file: the GGUF file name inside the folder ``model`` (alternative to a ``.gguf`` path).
        seed: default sampling seed when :class:`SamplingParams` has none.
        trust_remote_code: passed to ``from_pretrained``.
    """

    name = "transformers"
    model_check = "hub"

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        gguf_file: str | None = None,
        seed: int = 0,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__(model)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        import transformers

        source, extra = from_pretrained_source(resolve_model(model), gguf_file,
                                               purpose="loading a GGUF file with the transformers backend")
        gguf_file = extra.get("gguf_file")
        kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, **extra}
        self.device = pick_device(device)
        self.torch_dtype = pick_dtype(dtype, self.device)
        self.batch_size = batch_size
        self.default_batch_size = batch_size
        self.seed = seed
        self.source = source
        self.gguf_file = gguf_file
        try:
            config = transformers.AutoConfig.from_pretrained(source, **kwargs)
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
        except OSError as exc:
            raise FileNotFoundError(f"cannot load model '{model}' ({source}): {exc}") from exc
        self.is_encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
        auto: Any = transformers.AutoModelForSeq2SeqLM if self.is_encoder_decoder else transformers.AutoModelForCausalLM
        self.model_obj: Any = auto.from_pretrained(source, dtype=self.torch_dtype, **kwargs)
        self.model_obj = self.model_obj.to(self.device).eval()
        tok = self.tokenizer
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if not self.is_encoder_decoder:
            tok.padding_side = "left"
        gen_cfg = self.model_obj.generation_config
        eos = gen_cfg.eos_token_id if gen_cfg.eos_token_id is not None else tok.eos_token_id
        self.eos_ids: set[int] = set(eos if isinstance(eos, list) else [eos]) - {None}
        self.max_positions: int | None = None
        if not self.is_encoder_decoder:
            self.max_positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        self.context_length = self.max_positions
        log.info("transformers: %s (%s) on %s, %s", source, type(self.model_obj).__name__, self.device, self.torch_dtype)

    # -- tokenizer ---------------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def detokenize(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False))

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))

    def chat_prompt(self, user_message: str) -> str:
        """``user_message`` in the tokenizer's chat template (unchanged when it has none)."""
        if not getattr(self.tokenizer, "chat_template", None):
            log.warning("the tokenizer of %s has no chat template; prompt left unchanged", self.model)
            return user_message
        return str(
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": user_message}], tokenize=False, add_generation_prompt=True
            )
        )

    # -- generation --------------------------------------------------------------------------------------
    def generate(
        self, prompts: list[str], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[list[Generation]]:
        """For each prompt, ``params.n`` generations (greedy: computed once and repeated)."""
        if params.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {params.n}")
        bases = prompt_seeds(self, params, len(prompts), seeds)
        out: list[list[Generation]] = [[] for _ in prompts]
        if params.temperature == 0:
            for start in range(0, len(prompts), self.batch_size):
                batch = prompts[start : start + self.batch_size]
                for i, gen in enumerate(self._generate_batch(batch, params, 0)):
                    out[start + i].append(gen)
            for gens in out:
                gens.extend(copy.deepcopy(gens[0]) for _ in range(params.n - 1))
            return out
        for i, (prompt, base) in enumerate(zip(prompts, bases, strict=True)):
            for j in range(params.n):
                out[i].extend(self._generate_batch([prompt], params, base + j))
        return out

    def _generate_batch(self, batch: list[str], params: SamplingParams, seed: int) -> list[Generation]:
        import torch
        import transformers

        if self.model_obj is None:
            raise GenerationError("the transformers backend is closed")
        enc = self.tokenizer(batch, return_tensors="pt", padding=True).to(self.device)
        input_len = int(enc["input_ids"].shape[1])
        if self.max_positions and input_len + params.max_new_tokens > self.max_positions:
            raise GenerationError(
                f"prompt of {input_len} tokens + max_new_tokens={params.max_new_tokens} exceeds the model's "
                f"{self.max_positions} positions; lower max_doc_tokens / n_examples"
            )
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "return_dict_in_generate": True,
            "output_logits": True,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if params.stop:
            kwargs["stop_strings"] = list(params.stop)
            kwargs["tokenizer"] = self.tokenizer
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
            transformers.set_seed(seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.model_obj.generate(**enc, **kwargs)
            scores = self.model_obj.compute_transition_scores(out.sequences, out.logits, normalize_logits=True)
        n_gen = scores.shape[1]
        gen_ids = out.sequences[:, -n_gen:].tolist() if n_gen else [[] for _ in batch]
        prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
        results = []
        for row, ids in enumerate(gen_ids):
            lps = scores[row].float().tolist()
            results.append(
                finish_generation(ids, lps, self._decode, params.stop, self.eos_ids, int(prompt_tokens[row]))
            )
        return results

    def close(self) -> None:
        self.model_obj = None
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def describe(self) -> dict[str, Any]:
        import transformers

        return {
            "backend": self.name,
            "model": self.model,
            "source": self.source if not Path(self.source).exists() else Path(self.source).name,
            "gguf_file": self.gguf_file,
            "architecture": type(self.model_obj).__name__ if self.model_obj is not None else None,
            "encoder_decoder": self.is_encoder_decoder,
            "device": self.device,
            "dtype": str(self.torch_dtype).replace("torch.", ""),
            "batch_size": self.batch_size,
            "seed": self.seed,
            "engine": f"transformers {transformers.__version__}",
        }
