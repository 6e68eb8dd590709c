"""The interface every generation backend implements, and the registry that names them.

A backend turns prompts into continuations with per-token log-probabilities::

    >>> backend = get_backend("llamacpp", "smollm2-135m")          # doctest: +SKIP
    >>> [gens] = backend.generate(["Document: ...\\nQuery:"], SamplingParams(max_new_tokens=32))  # doctest: +SKIP
    >>> gens[0].text, gens[0].log_probs[:3]                        # doctest: +SKIP

A new backend is one class: subclass :class:`Backend` and decorate it with ``@BACKENDS.register("name")``.

Seeds: ``generate(prompts, params, seeds=[...])`` gives each prompt its own sampling seed; sample ``j`` of
prompt ``i`` is drawn with ``seeds[i] + j``. A backend's output for a prompt depends on that prompt and
its seed only, never on the other prompts of the call, so the caller's batch size does not change what is
sampled (:func:`prompt_seeds` resolves the defaults).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from inpars.errors import ConfigError, InparsError
from inpars.registry import Registry


class GenerationError(InparsError, RuntimeError):
    """A backend failed to generate (an error returned by the engine or server, or retries exhausted)."""


@dataclass(frozen=True)
class SamplingParams:
    """How to decode. ``temperature == 0`` is greedy; ``n`` continuations per prompt.

    ``seed`` is the default seed of every prompt of a call that passes no per-prompt ``seeds``.
    """

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ("\n",)
    n: int = 1


@dataclass
class Generation:
    """One continuation: its text (stop string excluded) and one log-prob per generated token."""

    text: str
    log_probs: list[float] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    finish_reason: str = "stop"  # "stop" (stop string / end of sequence) or "length"
    prompt_tokens: int = 0
    cached_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """A text generator. Subclasses set ``name`` and implement :meth:`generate` and :meth:`tokenize`."""

    name: str = "backend"
    #: prompts per :meth:`generate` call that keep this backend busy (the stage's default batch size)
    default_batch_size: int = 8
    #: tokens (prompt + generation) one sequence may hold, where known (prompts can pass
    #: ``max_prompt_tokens=context_length - max_new_tokens``); ``None``: unknown
    context_length: int | None = None
    #: sampling seed of prompts that get none (neither per prompt nor in :class:`SamplingParams`)
    seed: int = 0
    #: how :func:`check_backend` checks a model before anything loads: a key of :data:`MODEL_CHECKS`
    #: (``hub``: a packaged name, model folder or hub id; ``gguf``: a .gguf file or a packaged name), or
    #: None: not checked (a remote model, a test double)
    model_check: ClassVar[str | None] = None

    def __init__(self, model: str, **options: Any) -> None:
        self.model = model
        self.options = options

    @abstractmethod
    def generate(
        self, prompts: list[str], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[list[Generation]]:
        """Return, for each prompt, ``params.n`` generations; sample ``j`` of prompt ``i`` uses ``seeds[i] + j``.

        Without ``seeds`` every prompt uses ``params.seed`` (or the backend's ``seed``). The generations of
        a prompt must not depend on the other prompts of the call.
        """

    @abstractmethod
    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` with the generator's own tokenizer (no special tokens)."""

    def detokenize(self, ids: list[int]) -> str:
        raise NotImplementedError(f"{type(self).__name__} cannot detokenize")

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` with the generator's tokenizer."""
        return len(self.tokenize(text))

    def truncate(self, text: str, max_tokens: int) -> str:
        """Cut ``text`` to at most ``max_tokens`` tokens of this generator's tokenizer.

        A character split between two byte-level tokens is dropped (no trailing U+FFFD).
        """
        ids = self.tokenize(text)
        if len(ids) <= max_tokens:
            return text
        return self.detokenize(ids[:max_tokens]).rstrip("\ufffd")

    def chat_prompt(self, user_message: str) -> str:
        """Wrap a message in the model's chat template (for instruct models); default: unchanged."""
        return user_message

    def close(self) -> None:
        """Free the model; the backend is unusable afterwards."""
        return None

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """What to write into outputs and manifests about this backend."""
        return {"backend": self.name, "model": self.model}


def prompt_seeds(backend: Backend, params: SamplingParams, n_prompts: int, seeds: Sequence[int] | None) -> list[int]:
    """The sampling seed of each prompt of a call: ``seeds``, else ``params.seed``, else ``backend.seed``.

    >>> class B(Backend):
    ...     def generate(self, prompts, params, seeds=None): return []
    ...     def tokenize(self, text): return []
    >>> prompt_seeds(B("m"), SamplingParams(seed=5), 2, None), prompt_seeds(B("m"), SamplingParams(), 2, [7, 9])
    ([5, 5], [7, 9])
    """
    if seeds is None:
        base = backend.seed if params.seed is None else params.seed
        return [int(base)] * n_prompts
    out = [int(s) for s in seeds]
    if len(out) != n_prompts:
        raise ValueError(f"got {len(out)} seeds for {n_prompts} prompts")
    return out


def cut_at_stop(text: str, stop: tuple[str, ...] | list[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest occurrence of any stop string; say whether one was found.

    >>> cut_at_stop("what is x?\\nExample", ("\\n",))
    ('what is x?', True)
    >>> cut_at_stop("no stop", ("\\n",))
    ('no stop', False)
    """
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def finish_generation(
    ids: list[int],
    log_probs: list[float],
    decode: Callable[[list[int]], str],
    stop: tuple[str, ...] | list[str],
    eos_ids: set[int] | frozenset[int] = frozenset(),
    prompt_tokens: int = 0,
) -> Generation:
    """Turn generated token ids (and their log-probs) into a :class:`Generation`, as llama.cpp reports it.

    The ids are cut at the first end-of-sequence id; the decoded text is cut at the first stop string, and
    only the tokens wholly before the cut are kept (the token holding the stop string is dropped, with its
    log-prob). ``decode`` must skip special tokens. For engines (transformers, vLLM) that return every
    generated id.

    >>> pieces = {1: "What", 2: " is", 3: " it?", 4: "\\n", 9: "<eos>"}
    >>> dec = lambda ids: "".join(pieces[i] for i in ids if i != 9)
    >>> g = finish_generation([1, 2, 3, 4, 1], [-1.0, -2.0, -3.0, -4.0, -5.0], dec, ("\\n",), {9})
    >>> g.text, g.log_probs, g.tokens, g.finish_reason
    ('What is it?', [-1.0, -2.0, -3.0], ['What', ' is', ' it?'], 'stop')
    >>> finish_generation([1, 9, 2], [-1.0, -2.0, -3.0], dec, ("\\n",), {9}).log_probs
    [-1.0]
    """
    finish = "length"
    for k, tid in enumerate(ids):
        if tid in eos_ids:
            ids, log_probs, finish = ids[:k], log_probs[:k], "stop"
            break
    text, found = cut_at_stop(decode(ids), stop)
    prefixes = [decode(ids[:k]) for k in range(len(ids) + 1)]
    keep = len(ids)
    if found:
        finish = "stop"
        keep = max(k for k in range(len(ids) + 1) if text.startswith(prefixes[k]))
    return Generation(
        text=text,
        log_probs=[float(x) for x in log_probs[:keep]],
        tokens=[prefixes[k + 1][len(prefixes[k]) :] for k in range(keep)],
        finish_reason=finish,
        prompt_tokens=prompt_tokens,
    )


BACKENDS: Registry[type[Backend]] = Registry("generation backend")

# name -> module that registers it; imported only when that backend is asked for (heavy imports stay lazy).
_BACKEND_MODULES = {
    "llamacpp": "inpars.generation.llamacpp",
    "transformers": "inpars.generation.hf",
    "vllm": "inpars.generation.vllm_backend",
    "openai": "inpars.generation.openai_backend",
}


def backend_class(name: str) -> type[Any]:
    """The generation backend class registered as ``name`` (its module imported on demand), or a
    :class:`~inpars.errors.ConfigError` listing the available backends."""
    import importlib

    if name not in BACKENDS and name in _BACKEND_MODULES:
        importlib.import_module(_BACKEND_MODULES[name])
    if name not in BACKENDS:
        available = ", ".join(sorted({*_BACKEND_MODULES, *BACKENDS.names()}))
        raise ConfigError(f"generate.backend: unknown backend '{name}'; available: {available}")
    return BACKENDS.get(name)


def _type_ok(value: Any, hint: Any) -> bool:
    import types
    import typing

    if hint is Any or value is None and (hint is type(None) or type(None) in typing.get_args(hint)):
        return True
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    if origin in (dict, list, tuple):
        return isinstance(value, origin)
    return True  # anything else: left to the backend


def check_backend_options(name: str, options: dict[str, Any], what: str = "generate") -> bool:
    """Refuse an unknown backend, an option it does not take or of the wrong type, and a value its own
    ``check_options`` refuses (:class:`~inpars.errors.ConfigError` naming the key path); False when the
    backend's signature cannot be read (nothing was checked)."""
    import inspect
    import typing

    cls = backend_class(name)
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return False
    params = {k: p for k, p in list(sig.parameters.items())[1:] if k != "model"}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = sorted(k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: check the names only
        hints = {}
    checker = getattr(cls, "check_options", None)  # a backend's own checks of its option values
    if callable(checker):
        checker(options, f"{what}.backend_options")
    for key, value in options.items():
        if key not in params:
            if takes_any:
                continue
            raise ConfigError(f"{what}.backend_options.{key}: not an option of the {name} backend; options: "
                              f"{', '.join(named) or '(none)'} (--backend-option KEY=VALUE)")
        hint = hints.get(key)
        if hint is not None and not _type_ok(value, hint):
            raise ConfigError(f"{what}.backend_options.{key}: expected {getattr(hint, '__name__', hint)}, got "
                              f"{value!r} (--backend-option {key}=VALUE)")
    return True


def _check_hub_model(model: str, key: str) -> None:
    from inpars.safety import check_model  # looked up when called, as before it moved here

    check_model(model, key)


def _check_gguf_model(model: str, key: str) -> None:
    path = Path(model).expanduser()
    if not path.exists() and (model.startswith(("/", ".", "~")) or model.endswith(".gguf")):
        from inpars.models import PACKAGED_MODELS

        raise ConfigError(f"{key}: {model} does not exist (give a .gguf file or a packaged name: "
                          f"{', '.join(PACKAGED_MODELS.names())})")


#: the checks of a model before loading, by :attr:`Backend.model_check`: ``check(model, key)`` raises a
#: :class:`~inpars.errors.ConfigError` naming ``key``
MODEL_CHECKS: dict[str, Callable[[str, str], None]] = {"hub": _check_hub_model, "gguf": _check_gguf_model}


def check_backend(name: str, model: str | None, options: dict[str, Any], what: str = "generate") -> None:
    """Refuse an unknown backend, a backend option it does not take or of the wrong type
    (:func:`check_backend_options`), and a model that cannot load, as the backend's
    :attr:`~Backend.model_check` says (:data:`MODEL_CHECKS`), before anything is generated."""
    if not check_backend_options(name, options, what):
        return
    kind = getattr(backend_class(name), "model_check", None)
    if model and kind is not None:
        MODEL_CHECKS[kind](model, f"{what}.model")


def get_backend(name: str, model: str, **options: Any) -> Backend:
    """Instantiate the backend registered as ``name``; an unknown name or option is a
    :class:`~inpars.errors.ConfigError` naming what is available."""
    check_backend_options(name, options)
    return backend_class(name)(model, **options)
