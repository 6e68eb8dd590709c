"""Prompt templates (validated ``{document}``/``{title}``/``{examples}`` files) and few-shot examples.

The prompt classes that use them are in :mod:`inpars.prompts`, which re-exports these names.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from inpars.errors import InputError
from inpars.io import read_jsonl
from inpars.records import Document

if TYPE_CHECKING:
    from inpars.datasets import Dataset


# --------------------------------------------------------------------------------------------------------
# Templates


ALLOWED_FIELDS = ("document", "title", "examples")


@dataclass(frozen=True)
class Template:
    """A validated prompt template: ``text`` with named placeholders among ``{document}``, ``{title}``,
    ``{examples}``; ``{{`` and ``}}`` are literal braces. ``source`` names the file in error messages.

    >>> t = Template.parse("Title: {title}\\nDocument: {document}\\nQuery:", "inline")
    >>> t.fields
    ('title', 'document')
    >>> t.render(document="d", title="t")
    'Title: t\\nDocument: d\\nQuery:'
    """

    text: str
    source: str
    fields: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, source: str) -> Template:
        """Validate ``text`` with :class:`string.Formatter`; errors name ``source``.

        A trailing ``{query}`` (the original toolkit's templates end with one) is accepted and dropped: the
        prompt ends where the query starts. Anything else is an error: an unknown or positional
        placeholder, a conversion or format spec, unbalanced braces, or no ``{document}``.
        """
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise InputError(f"malformed template ({exc}); write literal braces as '{{{{' and '}}}}'", path=source) from None
        fields: list[str] = []
        for i, (_literal, name, spec, conversion) in enumerate(parsed):
            if name is None:
                continue
            if name == "query":
                rest_literal = "".join(lit for lit, *_ in parsed[i + 1 :])
                if any(n is not None for _, n, _, _ in parsed[i + 1 :]) or rest_literal.strip():
                    raise InputError(
                        "'{query}' may only end the template (the prompt stops where the query starts); "
                        "remove it",
                        path=source,
                    )
                # drop '{query}' and what follows; Formatter un-escaped '{{'/'}}', so rebuild the text
                return cls.parse(_reescape(parsed[: i + 1]), source)
            if name == "" or name.isdigit():
                raise InputError(
                    f"positional placeholder '{{{name}}}' is not allowed; use named ones: "
                    + ", ".join("{" + f + "}" for f in ALLOWED_FIELDS),
                    path=source,
                )
            if name not in ALLOWED_FIELDS:
                raise InputError(
                    f"unknown placeholder '{{{name}}}'; allowed: " + ", ".join("{" + f + "}" for f in ALLOWED_FIELDS),
                    path=source,
                )
            if spec or conversion:
                raise InputError(f"placeholder '{{{name}}}' may not have a conversion or format spec", path=source)
            fields.append(name)
        if "document" not in fields:
            raise InputError("the template has no '{document}' placeholder", path=source)
        return cls(text=text, source=source, fields=tuple(fields))

    @classmethod
    def load(cls, path: str | Path) -> Template:
        """Read and validate a UTF-8 template file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError("template file not found", path=path) from None
        except UnicodeDecodeError as exc:
            raise InputError(f"template is not valid UTF-8 ({exc.reason} at byte {exc.start})", path=path) from None
        return cls.parse(text, str(path))

    def render(self, **values: str) -> str:
        """Fill the placeholders; trailing whitespace is stripped (the model writes the leading space)."""
        return self.text.format(**{k: values.get(k, "") for k in ALLOWED_FIELDS}).rstrip()


def _reescape(parsed: list[tuple[str, str | None, str | None, str | None]]) -> str:
    """Rebuild template text from Formatter.parse() output up to (excluding) the last field."""
    out = []
    for j, (lit, name, spec, conv) in enumerate(parsed):
        out.append(lit.replace("{", "{{").replace("}", "}}"))
        if name is not None and j < len(parsed) - 1:
            out.append("{" + name + ("!" + conv if conv else "") + (":" + spec if spec else "") + "}")
    return "".join(out)


def promptagator_templates() -> dict[str, str]:
    """The original toolkit's per-dataset Promptagator templates, ``{"promptagator-<dataset>": text}``, from
    ``inpars/prompts_data/promptagator.yaml`` (Apache-2.0, see ``prompts_data/NOTICE``). Each text has the
    placeholders ``{document}`` and ``{query}`` and ends with a newline.
    """
    import yaml

    text = resources.files("inpars").joinpath("prompts_data", "promptagator.yaml").read_text(encoding="utf-8")
    return {name: entry["template"] for name, entry in yaml.safe_load(text).items()}


def packaged_template(filename: str) -> Template:
    """A template shipped in ``inpars/prompts_data``."""
    text = resources.files("inpars").joinpath("prompts_data", filename).read_text(encoding="utf-8")
    return Template.parse(text, f"inpars/prompts_data/{filename}")


# --------------------------------------------------------------------------------------------------------
# Few-shot examples from a dataset's train split


@dataclass(frozen=True)
class Example:
    """One labelled (query, relevant document) pair used as a few-shot example."""

    query_id: str
    doc_id: str
    query: str
    document: Document

    @property
    def id(self) -> str:
        return f"{self.query_id}:{self.doc_id}"


def file_examples(path: str | Path, seed: int = 0) -> list[Example]:
    """Few-shot examples from a JSONL file in the original toolkit's format (its Hugging Face set
    ``inpars/fewshot-examples``): one object per line with ``query_id``, ``doc_id``, ``query`` and
    ``document`` (the document text), in a seeded random order. Errors name the file, line and field.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("few-shot examples file not found", path=path)
    out: list[Example] = []
    for i, obj in read_jsonl(path):  # blank lines skipped; invalid JSON or a non-object: file and line
        for key in ("query_id", "doc_id", "query", "document"):
            if not isinstance(obj.get(key), (str, int)) or not str(obj[key]).strip():
                raise InputError("missing or empty", path, i, key)
        doc_id = str(obj["doc_id"])
        out.append(Example(str(obj["query_id"]), doc_id, str(obj["query"]), Document(doc_id, str(obj["document"]))))
    if not out:
        raise InputError("no few-shot examples in the file", path=path)
    random.Random(seed).shuffle(out)
    return out


def train_examples(dataset: Dataset, split: str | None = None, seed: int = 0) -> list[Example]:
    """All usable labelled pairs of ``split`` in a seeded random order: one per query (its first relevant
    document by id), skipping pairs whose query or document is missing or empty.

    Raises :class:`InputError` naming the dataset and split when the split does not exist or has no usable
    pair. Only ``split`` is read (the test split is guarded by the dataset and raises ``LeakageError``).
    """
    name = getattr(dataset, "name", type(dataset).__name__)
    if split is None:
        raise InputError(
            "few-shot examples from the dataset need labelled pairs, and this run is label-free: name a labelled "
            "split (dataset.train_split, --train-split) to opt in, or use a prompt with its own examples ('inpars')",
            field="train_split",
        )
    if not dataset.has_split(split):
        raise InputError(
            f"dataset '{name}' has no '{split}' split with relevance judgements (splits: "
            f"{', '.join(dataset.splits()) or 'none'}); few-shot examples need labelled pairs: choose a "
            "dataset with a train split, another train_split, or the 'inpars' prompt",
            field="train_split",
        )
    qrels = dataset.qrels_dict(split)
    queries = dataset.queries(split)
    docs = dataset.docs()
    pairs: list[Example] = []
    for qid in sorted(qrels):
        text = (queries.get(qid) or "").strip()
        if not text:
            continue
        relevant = sorted(d for d, rel in qrels[qid].items() if rel > 0 and d in docs and docs[d].full_text.strip())
        if relevant:
            pairs.append(Example(qid, relevant[0], text, docs[relevant[0]]))
    if not pairs:
        raise InputError(
            f"dataset '{name}' split '{split}' has no usable (query, relevant document) pair for few-shot examples",
            field="train_split",
        )
    random.Random(seed).shuffle(pairs)
    return pairs
