"""The base class of every prompt (:class:`Prompt`), what it builds (:class:`BuiltPrompt`), its text helpers.

The prompts themselves and their registry are in :mod:`inpars.prompts`, which re-exports these names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inpars.records import Document

if TYPE_CHECKING:
    from inpars.datasets import Dataset

Truncate = Callable[[str, int], str]
CountTokens = Callable[[str], int]


@dataclass
class BuiltPrompt:
    """A prompt ready for a backend, and the ids of the few-shot examples it shows.

    For prompts whose examples come from a dataset, each id is ``"<query_id>:<doc_id>"``.
    """

    text: str
    fewshot_examples: list[Any] = field(default_factory=list)


def normalize_space(text: str) -> str:
    """Collapse every run of whitespace (newlines included) into one space.

    >>> normalize_space("  a\\n\\tb  c ")
    'a b c'
    """
    return " ".join(text.split())


def truncate_words(text: str, max_words: int) -> str:
    """Keep the first ``max_words`` whitespace-separated words (the fallback without a tokenizer).

    >>> truncate_words("one two  three four", 2)
    'one two'
    """
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words])


def count_words(text: str) -> int:
    """Number of whitespace-separated words (the fallback token count without a tokenizer)."""
    return len(text.split())


class Prompt(ABC):
    """Base class: holds the options every prompt accepts; subclasses implement :meth:`build`.

    ``truncate`` cuts a document to ``max_doc_tokens`` with the generator's tokenizer; without it the
    document is cut to ``max_doc_tokens`` whitespace words.
    """

    name: str = "prompt"
    default_n_examples: int = 0

    def __init__(
        self,
        *,
        truncate: Truncate | None = None,
        count_tokens: CountTokens | None = None,
        max_doc_tokens: int = 256,
        n_examples: int | None = None,
        seed: int = 0,
        dataset: Dataset | None = None,
        train_split: str | None = None,
        template: str | Path | None = None,
        max_prompt_tokens: int | None = None,
        use_title: bool = True,
        examples_file: str | Path | None = None,
    ) -> None:
        if max_doc_tokens < 1:
            raise ValueError(f"max_doc_tokens must be >= 1, got {max_doc_tokens}")
        if n_examples is not None and n_examples < 0:
            raise ValueError(f"n_examples must be >= 0, got {n_examples}")
        self._truncate = truncate
        self._count_tokens = count_tokens
        self.max_doc_tokens = max_doc_tokens
        self.n_examples = self.default_n_examples if n_examples is None else n_examples
        self.seed = seed
        self.dataset = dataset
        self.train_split = train_split
        self.template = template
        self.max_prompt_tokens = max_prompt_tokens
        self.use_title = use_title
        self.examples_file = examples_file

    #: whether the prompt differs between a document's query indices (:meth:`build_for`)
    varies_with_index: bool = False

    @abstractmethod
    def build(self, doc: Document) -> BuiltPrompt:
        """The prompt for ``doc``."""

    def build_for(self, doc: Document, index: int) -> BuiltPrompt:
        """The prompt for query ``index`` of ``doc``: :meth:`build`'s, unless the prompt varies with the index."""
        return self.build(doc)

    # helpers shared by the subclasses
    def truncate(self, text: str, max_tokens: int | None = None) -> str:
        """Whitespace-normalise ``text`` and cut it to ``max_tokens`` (default ``max_doc_tokens``) tokens."""
        limit = self.max_doc_tokens if max_tokens is None else max_tokens
        text = normalize_space(text)
        if self._truncate is None:
            return truncate_words(text, limit)
        return normalize_space(self._truncate(text, limit))

    def count_tokens(self, text: str) -> int:
        return self._count_tokens(text) if self._count_tokens is not None else count_words(text)

    def doc_text(self, doc: Document) -> str:
        """The document as shown in the prompt: title + text (or text only), normalised and truncated."""
        return self.truncate(doc.full_text if self.use_title else doc.text)

    def describe(self) -> dict[str, Any]:
        """What to record in outputs and manifests about this prompt."""
        return {
            "prompt": self.name,
            "max_doc_tokens": self.max_doc_tokens,
            "n_examples": self.n_examples,
            "seed": self.seed,
            "train_split": self.train_split,
            "max_prompt_tokens": self.max_prompt_tokens,
            "use_title": self.use_title,
            "tokenizer_truncation": self._truncate is not None,
        }


__all__ = [
    "BuiltPrompt", "CountTokens", "Prompt", "Truncate", "count_words", "normalize_space", "truncate_words",
]
