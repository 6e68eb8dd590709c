"""llama.cpp in-process through xllamacpp: the embedded default backend (CPU, GGUF models).

>>> from inpars.generation.base import get_backend, SamplingParams
>>> with get_backend("llamacpp", "smollm2-135m") as backend:          # doctest: +SKIP
...     [[gen]] = backend.generate(["Document: ...\\nRelevant Query:"], SamplingParams(max_new_tokens=32))
...     gen.text, gen.log_probs, gen.cached_tokens

How it works: ``xllamacpp.Server`` runs llama.cpp's server loop in-process; each prompt goes through
``Server.handle_completions`` as an OpenAI ``/v1/completions`` request (one request per prompt and sample).

- Log-probabilities: ``n_probs: 1`` returns, for each generated token, its log-probability under the full
  (pre-sampling) distribution. The stop string's token is not among them (llama.cpp cuts it); an
  end-of-generation token (empty text) is removed too, so ``log_probs`` and ``tokens`` describe ``text``.
- Prefix cache: with ``cache_prompt`` a slot keeps the KV cache of its last prompt, and the next prompt
  that shares a prefix (the few-shot examples) only evaluates the rest; ``Generation.cached_tokens`` is
  llama.cpp's ``timings.cache_n``. On 2 CPU cores one slot with the cache is fastest (see STACK.md).
- Slots: ``n_parallel`` slots decode concurrently (continuous batching); requests are then submitted from
  a thread pool. ``n_ctx`` is the context *per slot*; llama.cpp gets ``n_ctx * n_parallel``.
- Sampling: ``temperature == 0`` is greedy. Otherwise plain temperature + top-p sampling (llama.cpp's
  default top-k 40, min-p 0.05 and repeat penalty are switched off, to match the other backends); sample
  ``i`` of a prompt uses that prompt's seed ``+ i`` (per-prompt seeds: see :mod:`inpars.generation.base`).
- Errors: xllamacpp returns errors as a dict (e.g. a prompt longer than the context); every response is
  checked and an error raises :class:`~inpars.generation.base.GenerationError` with llama.cpp's message.
- Tokenizer and chat template: the server also listens on a loopback HTTP port; ``/tokenize``,
  ``/detokenize`` and ``/apply-template`` of that llama.cpp server give the model's own tokenizer and chat
  template. :attr:`LlamaCppBackend.base_url` is that address (an OpenAI-compatible server: ``base_url +
  "/v1"``).
- Flash attention: ``flash_attn="auto"`` (llama.cpp's default, used for the timings in STACK.md) can make
  the log-probs of the same prompt differ slightly between an evaluation with and without a cached
  prefix; with ``"off"`` they were identical (so scores do not depend on which document came before).
  Greedy texts can differ between the two settings.
- Gemma-3 (sliding-window attention) reuses a cached prefix only with ``swa_full``; it is on whenever
  ``cache_prompt`` is (``swa_full=None``).
"""

from __future__ import annotations

import copy
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from inpars.errors import require
from inpars.generation.base import (
    BACKENDS,
    Backend,
    Generation,
    GenerationError,
    SamplingParams,
    prompt_seeds,
)
from inpars.models import resolve_model
from inpars.safety import usable_cores

log = logging.getLogger(__name__)

# the in-process server listens on 127.0.0.1: never route its requests through an HTTP proxy
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@BACKENDS.register("llamacpp")
class LlamaCppBackend(Backend):
    """llama.cpp through xllamacpp (extra ``[llamacpp]``).

    Args:
        model: a GGUF file, or a packaged model name (``smollm2-135m``, ``gemma3-270m``; see
            :mod:`inpars.models`).
        n_ctx: context length *per slot* in tokens (prompt + generated).
        n_parallel: slots decoding concurrently (continuous batching).
        n_threads: CPU threads for prompt processing (default: all available cores). Speed only: the
            results do not depend on it.
        decode_threads: CPU threads for decoding the generated tokens (default 1). llama.cpp's
            log-probabilities, and so sampled and even greedy text, depend on this number, so it is part of
            a generation's identity and its default does not depend on the machine. Decoding one token of a
            small model is a short step whose threads wait on each other: one thread loses little, and
            loses least when another process wants the cores.
        poll: how hard llama.cpp's idle worker threads spin before they sleep (llama.cpp's ``--poll``,
            0-100; 0 = they sleep at once). Speed only.
        cache_prompt: reuse the KV cache of a shared prompt prefix.
        swa_full: full-size sliding-window cache (needed by Gemma-3 for prefix reuse); ``None``: same as
            ``cache_prompt``.
        n_gpu_layers: layers to offload when llama.cpp was built with a GPU backend (``None``: its default).
        flash_attn: ``"auto"``, ``"on"`` or ``"off"`` (see the module docstring).
        seed: default sampling seed when :class:`SamplingParams` has none.
        verbosity: llama.cpp's log verbosity (0 silences it).
    """

    name = "llamacpp"
    model_check = "gguf"

    @staticmethod
    def check_options(options: dict[str, Any], where: str = "backend_options") -> None:
        """Refuse thread counts below 1 or above the machine's bound (:func:`inpars.safety.check_threads`),
        and context, batch and slot sizes out of range, before a model is loaded."""
        from inpars.errors import ConfigError
        from inpars.safety import check_threads

        for key in ("n_threads", "decode_threads"):
            value = options.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                if value < 1 and not (key == "n_threads" and value == 0):
                    raise ConfigError(f"{where}.{key}: expected a positive number of threads, got {value}")
                check_threads(value, f"{where}.{key}")
        bounds = {"n_ctx": (16, 1 << 20), "n_parallel": (1, 1024), "n_batch": (1, 1 << 20), "poll": (0, 100)}
        for key, (low, high) in bounds.items():
            value = options.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
                raise ConfigError(f"{where}.{key}: expected {low}..{high}, got {value}")

    def __init__(
        self,
        model: str = "smollm2-135m",
        *,
        n_ctx: int = 2048,
        n_parallel: int = 1,
        n_threads: int | None = None,
        decode_threads: int = 1,
        n_batch: int = 2048,
        poll: int = 50,
        cache_prompt: bool = True,
        swa_full: bool | None = None,
        n_gpu_layers: int | None = None,
        flash_attn: str = "auto",
        seed: int = 0,
        verbosity: int = 0,
    ) -> None:
        super().__init__(model)
        if n_ctx < 16:
            raise ValueError(f"n_ctx must be >= 16, got {n_ctx}")
        if n_parallel < 1:
            raise ValueError(f"n_parallel must be >= 1, got {n_parallel}")
        if decode_threads < 1:
            raise ValueError(f"decode_threads must be >= 1, got {decode_threads}")
        if not 0 <= poll <= 100:
            raise ValueError(f"poll must be between 0 and 100, got {poll}")
        xllamacpp = require("xllamacpp", "llamacpp", "the llama.cpp backend")
        path = Path(resolve_model(model))
        if not path.is_file():
            raise FileNotFoundError(f"GGUF model file not found: {path} (give a .gguf path or a packaged name)")
        self.model_path = path
        self.n_ctx = n_ctx
        self.context_length = n_ctx
        self.n_parallel = n_parallel
        self.n_threads = n_threads or usable_cores()
        self.cache_prompt = cache_prompt
        self.swa_full = cache_prompt if swa_full is None else swa_full
        self.seed = seed
        self.default_batch_size = max(8, 2 * n_parallel)

        p = xllamacpp.CommonParams()
        p.model.path = str(path)
        p.n_ctx = n_ctx * n_parallel  # llama.cpp splits n_ctx across the slots
        p.n_parallel = n_parallel
        p.n_batch = n_batch
        self.decode_threads = decode_threads
        p.cpuparams.n_threads = decode_threads
        p.cpuparams_batch.n_threads = self.n_threads
        p.cpuparams.poll = poll
        p.cpuparams_batch.poll = poll
        self.poll = poll
        p.cache_prompt = cache_prompt
        p.swa_full = self.swa_full
        p.verbosity = verbosity
        p.cont_batching = True
        if n_gpu_layers is not None:
            p.n_gpu_layers = n_gpu_layers
        fa_types = {
            "auto": xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_AUTO,
            "on": xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED,
            "off": xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED,
        }
        if flash_attn not in fa_types:
            raise ValueError(f"flash_attn must be one of {', '.join(fa_types)}, got {flash_attn!r}")
        p.flash_attn_type = fa_types[flash_attn]
        self.flash_attn = flash_attn
        try:
            self._server: Any = xllamacpp.Server(p)
        except Exception as exc:  # xllamacpp raises RuntimeError on a file it cannot load
            raise GenerationError(f"llama.cpp could not load {path}: {exc}") from exc
        self.base_url: str = str(self._server.listening_address or "")
        log.info(
            "llama.cpp: %s, %d slot(s) x %d tokens, %d prompt / %d decode threads, prompt cache %s",
            path.name,
            n_parallel,
            n_ctx,
            self.n_threads,
            decode_threads,
            "on" if cache_prompt else "off",
        )

    # -- engine access ---------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._server is None:
            raise GenerationError("the llama.cpp backend is closed")

    @property
    def server(self) -> Any:
        """The ``xllamacpp.Server``."""
        self._check_open()
        return self._server

    def _http(self, endpoint: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST to the in-process llama.cpp HTTP server (loopback)."""
        if not self.base_url:
            raise GenerationError("xllamacpp did not start its HTTP server; cannot reach " + endpoint)
        req = urllib.request.Request(
            self.base_url + endpoint,
            data=json.dumps(payload).encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )
        try:
            with _LOOPBACK.open(req, timeout=120) as resp:
                out: dict[str, Any] = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise GenerationError(f"llama.cpp {endpoint} failed: HTTP {exc.code} {exc.read()[:300]!r}") from None
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
            raise GenerationError(f"llama.cpp {endpoint} failed: {exc}") from None
        return out

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS), with the model's own tokenizer (llama.cpp ``/tokenize``)."""
        self._check_open()
        return [int(t) for t in self._http("/tokenize", {"content": text, "add_special": False})["tokens"]]

    def detokenize(self, ids: list[int]) -> str:
        self._check_open()
        return str(self._http("/detokenize", {"tokens": list(ids)})["content"])

    def chat_prompt(self, user_message: str) -> str:
        """``user_message`` as the user turn of the model's chat template, ready for the assistant's answer."""
        self._check_open()
        return str(self._http("/apply-template", {"messages": [{"role": "user", "content": user_message}]})["prompt"])

    # -- generation --------------------------------------------------------------------------------------
    def _request(self, prompt: str, params: SamplingParams, seed: int) -> dict[str, Any]:
        req: dict[str, Any] = {
            "prompt": prompt,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": 0,
            "min_p": 0.0,
            "repeat_penalty": 1.0,
            "seed": seed,
            "stop": list(params.stop),
            "n_probs": 1,
            "cache_prompt": self.cache_prompt,
        }
        return req

    def _complete(self, req: dict[str, Any]) -> Generation:
        resp = self.server.handle_completions(req)
        return parse_completion(resp, n_ctx=self.n_ctx)

    def generate(
        self, prompts: list[str], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[list[Generation]]:
        """For each prompt, ``params.n`` generations (greedy: computed once and repeated)."""
        if params.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {params.n}")
        bases = prompt_seeds(self, params, len(prompts), seeds)
        n_distinct = 1 if params.temperature == 0 else params.n
        jobs = [
            self._request(p, params, base + j) for p, base in zip(prompts, bases, strict=True) for j in range(n_distinct)
        ]
        if self.n_parallel > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(max_workers=self.n_parallel) as pool:
                results = list(pool.map(self._complete, jobs))
        else:
            results = [self._complete(job) for job in jobs]
        out: list[list[Generation]] = []
        for i in range(len(prompts)):
            gens = results[i * n_distinct : (i + 1) * n_distinct]
            if n_distinct < params.n:
                gens = gens + [copy.deepcopy(gens[0]) for _ in range(params.n - n_distinct)]
            out.append(gens)
        return out

    def close(self) -> None:
        self._server = None  # the Server's destructor stops its loop and HTTP threads

    def describe(self) -> dict[str, Any]:
        import xllamacpp

        return {
            "backend": self.name,
            "model": self.model,
            "model_file": self.model_path.name,
            "model_bytes": self.model_path.stat().st_size,
            "engine": f"xllamacpp {getattr(xllamacpp, '__version__', '?')}",
            "n_ctx": self.n_ctx,
            "n_parallel": self.n_parallel,
            "n_threads": self.n_threads,
            "decode_threads": self.decode_threads,
            "poll": self.poll,
            "cache_prompt": self.cache_prompt,
            "swa_full": self.swa_full,
            "flash_attn": self.flash_attn,
            "seed": self.seed,
        }


def parse_completion(resp: Any, n_ctx: int | None = None) -> Generation:
    """One llama.cpp ``/v1/completions`` response -> :class:`Generation`; an error dict raises.

    >>> parse_completion({"error": {"code": 400, "message": "request (9 tokens) exceeds the available context size"}})
    Traceback (most recent call last):
    ...
    inpars.generation.base.GenerationError: llama.cpp error 400: request (9 tokens) exceeds the available context size
    """
    if isinstance(resp, str):
        try:
            resp = json.loads(resp)
        except json.JSONDecodeError:
            raise GenerationError(f"llama.cpp returned a response that is not JSON: {resp[:200]!r}") from None
    if not isinstance(resp, dict):
        raise GenerationError(f"llama.cpp returned {type(resp).__name__}, expected a dict")
    if "error" in resp:
        err = resp["error"] if isinstance(resp["error"], dict) else {"message": resp["error"]}
        msg = f"llama.cpp error {err.get('code', '?')}: {err.get('message', err)}"
        if err.get("type") == "exceed_context_size_error" and n_ctx is not None:
            msg += f" (n_ctx per slot is {n_ctx}: raise n_ctx, or lower max_doc_tokens / n_examples)"
        raise GenerationError(msg)
    choices = resp.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise GenerationError(f"llama.cpp response has no choices: {json.dumps(resp)[:300]}")
    choice = choices[0]
    text = str(choice.get("text") or "")
    content = (choice.get("logprobs") or {}).get("content") or []
    # an end-of-generation token (EOS/EOT) is reported with empty text: it is not part of the query
    while content and not content[-1].get("token") and not content[-1].get("bytes"):
        content = content[:-1]
    finish = "length" if choice.get("finish_reason") == "length" else "stop"
    timings = resp.get("timings") or {}
    usage = resp.get("usage") or {}
    return Generation(
        text=text,
        log_probs=[float(c["logprob"]) for c in content],
        tokens=[str(c.get("token", "")) for c in content],
        finish_reason=finish,
        prompt_tokens=int(usage.get("prompt_tokens") or (timings.get("prompt_n", 0) + timings.get("cache_n", 0))),
        cached_tokens=int(timings.get("cache_n") or 0),
        extra={"prompt_ms": timings.get("prompt_ms"), "predicted_ms": timings.get("predicted_ms")},
    )
