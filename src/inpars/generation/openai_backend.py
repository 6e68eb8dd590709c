"""Any OpenAI-compatible HTTP server: ``/v1/completions`` or ``/v1/chat/completions`` (extra ``[openai]``).

Works with the OpenAI API, vLLM's and llama.cpp's servers, and others speaking the same protocol::

    >>> backend = get_backend("openai", "gpt-4o-mini", endpoint="chat",
    ...                       base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY")  # doctest: +SKIP

- The API key is read from the environment variable named by ``api_key_env`` and sent as
  ``Authorization: Bearer ...``; it is never written to an output, a manifest, a log line or
  :meth:`OpenAIBackend.describe` (error messages have it masked).
- Requests run on a thread pool of ``concurrency`` workers (one request per prompt and sample).
- Retries: HTTP 429 and 5xx, timeouts, connection errors and garbled responses (not JSON, or without
  ``choices``) are retried up to ``max_retries`` times with exponential backoff ``backoff * 2**attempt``
  (capped at ``max_backoff``) times a jitter factor in [0.5, 1.5) drawn from a seeded generator; a
  ``Retry-After`` header raises the wait (capped too). Other 4xx answers fail at once. Every failure raises
  :class:`~inpars.generation.base.GenerationError` naming the URL, the status and the server's message.
- Log-probabilities, where the server returns them: completions ``logprobs.token_logprobs`` (OpenAI,
  vLLM) or ``logprobs.content[i].logprob`` (llama.cpp); chat ``choices[0].logprobs.content[i].logprob``.
  Otherwise ``log_probs`` is empty and a warning is logged once. Tokens beyond the returned text (a stop
  token some servers report) are dropped, and an empty end-of-generation token too.
- Tokenizer: the server's ``/tokenize`` and ``/detokenize`` (llama.cpp and vLLM have them, at the root
  beside ``/v1``). A server without them (the OpenAI API) gets an *approximation*: whitespace-separated
  words stand for tokens (``tokenize`` then returns word positions, only their number means anything),
  and a warning is logged once.
- ``chat_prompt``: with ``endpoint="chat"`` the server applies its own template, so the message is
  returned unchanged; with ``"completions"`` llama.cpp's ``/apply-template`` is used when the server has it.
- Sampling: sample ``i`` of a prompt is requested with that prompt's seed ``+ i`` (servers honour
  ``seed`` to varying degrees; OpenAI's is best effort).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from inpars.errors import ConfigError, require
from inpars.generation.base import (
    BACKENDS,
    Backend,
    Generation,
    GenerationError,
    SamplingParams,
    cut_at_stop,
    prompt_seeds,
)
from inpars.safety import mask_secrets

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))



def _looks_like_a_key(name: str) -> bool:
    """A long mixed-case or digit-laden token where a variable name belongs (``sk...``, hex digests)."""
    return len(name) >= 24 and any(c.isdigit() for c in name) and any(c.islower() for c in name)

class _Retryable(Exception):
    """A failure worth retrying (status, timeout, connection error, garbled body)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@BACKENDS.register("openai")
class OpenAIBackend(Backend):
    """An OpenAI-compatible completions or chat endpoint over HTTP (httpx).

    Args:
        model: the model name sent in each request.
        base_url: the API root including ``/v1`` (e.g. ``http://127.0.0.1:8080/v1``).
        api_key_env: name of the environment variable holding the API key (``None``: send no key). A
            missing variable sends no key (local servers need none).
        endpoint: ``"completions"`` (prompt continuation, the InPars setting) or ``"chat"``.
        concurrency: requests in flight at once.
        max_retries: retries after the first attempt of each request.
        timeout: seconds for connecting, and for each read, of one request.
        backoff, max_backoff: first retry wait and its cap, in seconds.
        seed: default seed (sampling seeds and the backoff jitter).
        logprobs: ask for per-token log-probabilities.
        extra_body: more fields merged into every request body (e.g. ``{"cache_prompt": true}``).
    """

    name = "openai"

    @staticmethod
    def check_options(options: dict[str, Any], where: str = "backend_options") -> None:
        """Refuse, without echoing a secret: a ``base_url`` that is not an http(s) URL with a host (a
        password holding ``/``, ``#`` or ``@`` must be percent-encoded; better, give no password in the URL),
        an ``api_key_env`` that is not an environment variable's name (a key given in its place), and a
        non-finite or negative ``timeout``/``backoff``."""
        url = options.get("base_url")
        if isinstance(url, str):
            try:
                parts = urllib.parse.urlsplit(url)
                ok = parts.scheme in ("http", "https") and bool(parts.hostname)
                # an unencoded '/', '#' or '@' in a password moves the host: clients disagree where it is
                ok = ok and not parts.fragment and "@" not in parts.path + parts.query
                parts.port  # noqa: B018  (raises on a port that is no number: a '/' or '#' in a password)
            except ValueError:
                ok = False
            if not ok:
                raise ConfigError(f"{where}.base_url: not an http(s) URL with a host (scheme, host and port; "
                                  "a password in it must be percent-encoded; better, keep it out of the URL)")
        name = options.get("api_key_env")
        if name is not None and not (isinstance(name, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)
                                     and not _looks_like_a_key(name)):
            raise ConfigError(f"{where}.api_key_env: give the name of the environment variable that holds the "
                              "API key (e.g. OPENAI_API_KEY), not the key itself; the value was not recorded")
        for key in ("timeout", "backoff", "max_backoff"):
            value = options.get(key)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{where}.{key}: expected a finite number of seconds, got {value!r}")

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str | None = "OPENAI_API_KEY",
        endpoint: str = "completions",
        concurrency: int = 4,
        max_retries: int = 5,
        timeout: float = 60.0,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        seed: int = 0,
        logprobs: bool = True,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model)
        httpx = require("httpx", "openai", "the OpenAI-compatible backend")
        self.check_options({"base_url": base_url, "api_key_env": api_key_env, "timeout": timeout,
                            "backoff": backoff, "max_backoff": max_backoff})
        if endpoint not in ("completions", "chat"):
            raise ValueError(f"endpoint must be 'completions' or 'chat', got {endpoint!r}")
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError("need concurrency >= 1, max_retries >= 0, timeout > 0")
        self.base_url = base_url.rstrip("/")
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.username or parts.password:  # never record credentials written into the URL
            parts = parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1])

        self.public_url = mask_secrets(urllib.parse.urlunsplit(parts))
        self.root_url = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        self.endpoint = endpoint
        self.url = f"{self.base_url}/{'chat/completions' if endpoint == 'chat' else 'completions'}"
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.seed = seed
        self.logprobs = logprobs
        self.extra_body = dict(extra_body or {})
        self.default_batch_size = max(8, 2 * concurrency)
        key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not key:
            log.warning("environment variable %s is not set: sending requests without an API key", api_key_env)
        self.__key = key or ""
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client: Any = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._httpx = httpx
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._server_tokenizer: bool | None = None
        self.requests_sent = 0  # attempts, retries included

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.public_url!r}, endpoint={self.endpoint!r})"

    # -- helpers -----------------------------------------------------------------------------------------
    def _mask(self, text: str) -> str:
        """``text`` without the API key, nor credentials written into a URL (:func:`inpars.safety.mask_secrets`)."""
        return mask_secrets(text.replace(self.__key, "***") if self.__key else text)

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning(message, *args)

    def _wait(self, attempt: int, tag: str, retry_after: float | None) -> float:
        rng = random.Random(f"{self.seed}:{tag}:{attempt}")
        delay = min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + rng.random())
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff))
        return delay

    def _post_once(self, url: str, body: dict[str, Any]) -> Any:
        """One attempt: the decoded JSON, or :class:`_Retryable`, or :class:`GenerationError`."""
        httpx = self._httpx
        with self._lock:
            self.requests_sent += 1
        try:
            resp = self._client.post(url, json=body)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timeout after {self.timeout} s ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"connection error ({type(exc).__name__}: {exc})") from None
        if resp.status_code in RETRY_STATUS:
            retry_after = None
            with contextlib.suppress(ValueError):
                retry_after = float(resp.headers.get("retry-after", ""))
            raise _Retryable(f"HTTP {resp.status_code}: {resp.text[:300]}", retry_after)
        if resp.status_code >= 400:
            hint = ""
            if resp.status_code in (401, 403):
                hint = f" (check the API key in ${self.api_key_env})" if self.api_key_env else " (no API key sent)"
            raise GenerationError(self._mask(f"{url}: HTTP {resp.status_code}{hint}: {resp.text[:500]}"))
        try:
            return resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Retryable(f"garbled response (not JSON): {resp.text[:200]!r}") from None

    def _post(self, url: str, body: dict[str, Any], tag: str, check: Any = None) -> Any:
        """POST with retries; ``check(data)`` raises ValueError/KeyError/TypeError on a malformed body."""
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                data = self._post_once(url, body)
                return check(data) if check is not None else data
            except _Retryable as exc:
                last, retry_after = str(exc), exc.retry_after
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
                last, retry_after = f"garbled response ({type(exc).__name__}: {exc})", None
            if attempt < self.max_retries:
                delay = self._wait(attempt, tag, retry_after)
                log.info("%s: %s; retry %d/%d in %.2f s", self._mask(url), self._mask(last), attempt + 1, self.max_retries, delay)
                time.sleep(delay)
        raise GenerationError(self._mask(f"{url}: gave up after {self.max_retries + 1} attempts; last error: {last}"))

    # -- generation --------------------------------------------------------------------------------------
    def _body(self, prompt: str, params: SamplingParams, seed: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": seed,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if self.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
            if self.logprobs:
                body["logprobs"] = True
        else:
            body["prompt"] = prompt
            if self.logprobs:
                body["logprobs"] = 1
        body.update(self.extra_body)
        return body

    def _one(self, job: tuple[int, str, SamplingParams, int]) -> Generation:
        index, prompt, params, seed = job
        return self._post(
            self.url,
            self._body(prompt, params, seed),
            tag=f"{index}:{seed}",
            check=lambda data: self._parse(data, params),
        )

    def generate(
        self, prompts: list[str], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[list[Generation]]:
        """For each prompt, ``params.n`` generations (greedy: requested once and repeated)."""
        if params.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {params.n}")
        bases = prompt_seeds(self, params, len(prompts), seeds)
        n_distinct = 1 if params.temperature == 0 else params.n
        jobs = [(i, p, params, bases[i] + j) for i, p in enumerate(prompts) for j in range(n_distinct)]
        if self.concurrency > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                results = list(pool.map(self._one, jobs))
        else:
            results = [self._one(job) for job in jobs]
        out = []
        for i in range(len(prompts)):
            gens = results[i * n_distinct : (i + 1) * n_distinct]
            gens += [copy.deepcopy(gens[0]) for _ in range(params.n - n_distinct)]
            out.append(gens)
        return out

    def _parse(self, data: Any, params: SamplingParams) -> Generation:
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        if "error" in data and "choices" not in data:
            raise ValueError(f"error object in a 200 response: {str(data['error'])[:300]}")
        choice = data["choices"][0]
        if self.endpoint == "chat":
            text = choice["message"]["content"]
        else:
            text = choice["text"]
        if not isinstance(text, str):
            raise TypeError(f"generated text is {type(text).__name__}, not a string")
        lp = choice.get("logprobs")
        log_probs: list[float] = []
        tokens: list[str] = []
        if isinstance(lp, dict) and isinstance(lp.get("content"), list):
            content = lp["content"]
            while content and not content[-1].get("token") and not content[-1].get("bytes"):
                content = content[:-1]  # end-of-generation token
            log_probs = [float(c["logprob"]) for c in content]
            tokens = [str(c.get("token", "")) for c in content]
        elif isinstance(lp, dict) and isinstance(lp.get("token_logprobs"), list):
            values = lp["token_logprobs"]
            names = lp.get("tokens") or [""] * len(values)
            pairs = [(str(t), v) for t, v in zip(names, values, strict=True) if v is not None]
            tokens = [t for t, _ in pairs]
            log_probs = [float(v) for _, v in pairs]
        elif self.logprobs:
            self._warn_once("logprobs", "%s returns no log-probabilities: log_probs will be empty", self.public_url)
        text, found = cut_at_stop(text, params.stop)  # in case the server ignores 'stop'
        if tokens and "".join(tokens) != text:
            keep, acc = 0, ""
            for t in tokens:
                if not text.startswith(acc + t):
                    break
                acc += t
                keep += 1
            tokens, log_probs = tokens[:keep], log_probs[:keep]
        finish = "length" if choice.get("finish_reason") == "length" and not found else "stop"
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") or (data.get("timings") or {}).get("cache_n") or 0
        return Generation(
            text=text,
            log_probs=log_probs,
            tokens=tokens,
            finish_reason=finish,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            cached_tokens=int(cached),
        )

    # -- tokenizer ---------------------------------------------------------------------------------------
    def _tokenize_remote(self, text: str) -> list[int] | None:
        """Token ids from the server's ``/tokenize``; ``None`` when it has none (remembered)."""
        if self._server_tokenizer is False:
            return None
        body = {"content": text, "prompt": text, "model": self.model, "add_special": False, "add_special_tokens": False}
        try:
            ids = self._post(
                f"{self.root_url}/tokenize",
                body,
                tag="tokenize",
                check=lambda d: [int(t if not isinstance(t, dict) else t["id"]) for t in d["tokens"]],
            )
        except GenerationError as exc:
            if self._server_tokenizer is None:
                self._server_tokenizer = False
                self._warn_once(
                    "tokenize",
                    "%s/tokenize is not available (%s): token counts are approximated by whitespace words",
                    self._mask(self.root_url),
                    self._mask(str(exc))[:200],
                )
                return None
            raise GenerationError(self._mask(f"{self.root_url}/tokenize failed: {exc}")) from None
        self._server_tokenizer = True
        return ids

    def tokenize(self, text: str) -> list[int]:
        """The server's token ids, or (without ``/tokenize``) word positions: an approximation."""
        ids = self._tokenize_remote(text)
        return ids if ids is not None else list(range(len(text.split())))

    def detokenize(self, ids: list[int]) -> str:
        if self._server_tokenizer is None:
            self._tokenize_remote("a")
        if not self._server_tokenizer:
            raise NotImplementedError(self._mask(f"{self.root_url} has no /detokenize"))
        data = self._post(
            f"{self.root_url}/detokenize",
            {"tokens": list(ids), "model": self.model},
            tag="detokenize",
            check=lambda d: d["content"] if "content" in d else d["prompt"],
        )
        return str(data)

    def truncate(self, text: str, max_tokens: int) -> str:
        ids = self._tokenize_remote(text)
        if ids is None:
            words = text.split()
            return text if len(words) <= max_tokens else " ".join(words[:max_tokens])
        if len(ids) <= max_tokens:
            return text
        return self.detokenize(ids[:max_tokens]).rstrip("\ufffd")

    def chat_prompt(self, user_message: str) -> str:
        if self.endpoint == "chat":
            return user_message  # the server applies the model's template to the message
        try:
            data = self._post_once(
                f"{self.root_url}/apply-template", {"messages": [{"role": "user", "content": user_message}]}
            )
            return str(data["prompt"])
        except (GenerationError, _Retryable, KeyError, TypeError) as exc:
            self._warn_once(
                "template", "%s/apply-template unavailable (%s): prompt left unchanged; use endpoint='chat'",
                self._mask(self.root_url), self._mask(str(exc))[:200],
            )
            return user_message

    def close(self) -> None:
        self._client.close()

    def describe(self) -> dict[str, Any]:
        """Settings to record; never the API key (only the name of its environment variable)."""
        return {
            "backend": self.name,
            "model": self.model,
            "base_url": self.public_url,
            "endpoint": self.endpoint,
            "api_key_env": self.api_key_env,
            "concurrency": self.concurrency,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
            "seed": self.seed,
            "logprobs": self.logprobs,
            "server_tokenizer": self._server_tokenizer,
            "extra_body": self.extra_body,
        }
