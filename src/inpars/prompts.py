"""Prompts that turn a document into the text an LLM continues with a query.

=================  ===========================================================================================
name               what
=================  ===========================================================================================
``inpars``         InPars v1 "vanilla" prompt: 3 fixed MS MARCO examples, ``Document:`` / ``Relevant Query:``
                   (Bonifacio et al. 2022, "InPars: Data Augmentation for Information Retrieval using Large
                   Language Models", arXiv 2202.05144).
``inpars-forms``  The ``inpars`` examples with each query in three forms (question, keywords, claim); query ``i``
                   of a document is asked in form ``i mod 3`` (:class:`InParsFormsPrompt`).
``inpars-gbq``     InPars "guided by bad questions": the same 3 documents, each with a good and a bad
                   question; the model continues after ``Good Question:`` (same paper).
``promptagator``   Promptagator few-shot prompt: ``k`` (default 8) ``Article:`` / ``Query:`` pairs drawn with a
                   fixed seed from the target dataset's own *train* split (Dai et al. 2022, "Promptagator:
                   Few-shot Dense Retrieval From 8 Examples", arXiv 2209.11755).
``promptagator-*`` The original toolkit's per-dataset Promptagator prompts (``promptagator-scifact``,
                   ``-arguana``, ``-fiqa``, ``-hotpotqa``, ``-dbpedia-entity``, ``-nfcorpus``,
                   ``-webis-touche2020``, ``-trec-covid``, ``-scidocs``, ``-fever``): :class:`DatasetPromptagatorPrompt`.
``template``       A user template file with the placeholders ``{document}``, ``{title}``, ``{examples}``.
``<a file path>``  The same as ``template`` with that file: ``--prompt my_prompt.txt``.
=================  ===========================================================================================

The texts of ``inpars`` and ``inpars-gbq`` are those of the original InPars toolkit (GitHub
``zetaalphavector/InPars``, ``inpars/prompts/templates.yaml``; Abonizio et al. 2023, arXiv 2307.04601),
kept byte for byte, including the toolkit's duplicated sentence in the second vanilla example
("...inedible.assiflora herbertiana..."); they live in ``inpars/prompts_data/``.

Every prompt takes the same keyword-only options, so a stage can pass them uniformly:

- ``truncate(text, max_tokens) -> text``: the generator's tokenizer-based truncation (for instance
  ``backend.truncate``); documents are cut to ``max_doc_tokens`` *tokens of the generator*. Without it,
  documents are cut to ``max_doc_tokens`` whitespace-separated words (an approximation).
- ``count_tokens(text) -> int``: the generator's token count (``backend.count_tokens``), used to respect
  ``max_prompt_tokens``; without it, whitespace words are counted (an approximation).
- ``max_doc_tokens=256``, ``n_examples=None`` (the prompt's default), ``seed=0``, ``dataset=None``,
  ``train_split=None`` (label-free; name a labelled split to draw examples from), ``template=None``,
  ``max_prompt_tokens=None``, ``use_title=True``, ``examples_file=None`` (few-shot examples from a JSONL
  file in the original toolkit's format, :func:`~inpars.prompt_templates.file_examples`, instead of a split).

Document text is whitespace-normalised (runs of spaces and newlines become one space) before it goes into a
prompt, because a newline inside a document would look like the end of a generated query.

>>> p = get_prompt("inpars")
>>> built = p.build(Document("d1", "Aspirin lowers the risk of heart attack.", "Aspirin"))
>>> built.text.endswith("Example 4:\\nDocument: Aspirin Aspirin lowers the risk of heart attack.\\nRelevant Query:")
True
>>> built.fewshot_examples
[]

A new prompt is one class: subclass :class:`Prompt`, implement :meth:`Prompt.build` and decorate it with
``@PROMPTS.register("name")``. Template files and few-shot examples live in :mod:`inpars.prompt_templates`,
the base class and its text helpers in :mod:`inpars.prompt_parts` (both re-exported here).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inpars.errors import InputError
from inpars.prompt_parts import BuiltPrompt, Prompt, count_words, normalize_space, truncate_words
from inpars.prompt_templates import (
    ALLOWED_FIELDS,
    Example,
    Template,
    file_examples,
    packaged_template,
    promptagator_templates,
    train_examples,
)
from inpars.records import Document
from inpars.registry import Registry, UnknownNameError

log = logging.getLogger(__name__)


def _is_path(name: str) -> bool:
    return "/" in name or os.sep in name or Path(name).suffix in (".txt", ".tmpl", ".prompt") or Path(name).is_file()


class _PromptRegistry(Registry[type[Prompt]]):
    """The prompt names, and template file paths: a name that is not registered but names a file (or looks
    like a path) is the ``template`` prompt with that file."""

    def get(self, name: str) -> type[Prompt]:
        if name in self._items or not _is_path(name):
            try:
                return super().get(name)
            except UnknownNameError as exc:
                raise UnknownNameError(f"{exc}; or give the path of a template file") from None
        Template.load(name)  # a clear InputError now if the file is missing or malformed
        return type("TemplateFilePrompt", (TemplatePrompt,), {"file": name})

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or (isinstance(name, str) and _is_path(name) and Path(name).is_file())


PROMPTS = _PromptRegistry("prompt")


def get_prompt(name: str, **options: Any) -> Prompt:
    """Instantiate the prompt registered as ``name`` (or the ``template`` prompt of the template file
    ``name``) with keyword options (see the module docstring)."""
    return PROMPTS.get(name)(**options)


class _FewShotPrompt(Prompt):
    """Shared machinery: a seeded pool of train-split examples, formatted and fitted to the context."""

    doc_label = "Article"
    query_label = "Query"
    separator = "\n\n"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._pool: list[Example] | None = None
        self._formatted: dict[str, str] = {}

    def pool(self) -> list[Example]:
        if self._pool is None:
            if self.examples_file is not None:
                self._pool = file_examples(self.examples_file, self.seed)
            elif self.dataset is None:
                raise ValueError(f"prompt '{self.name}' needs a dataset (its train split gives the examples)")
            else:
                self._pool = train_examples(self.dataset, self.train_split, self.seed)
            if len(self._pool) < self.n_examples:
                log.warning(
                    "prompt '%s': only %d labelled pairs in split '%s', fewer than n_examples=%d",
                    self.name,
                    len(self._pool),
                    self.train_split,
                    self.n_examples,
                )
        return self._pool

    def examples_for(self, doc: Document) -> list[Example]:
        """The first ``n_examples`` of the pool whose document is not ``doc`` (so the answer is never shown)."""
        if self.n_examples == 0:
            return []
        chosen = [ex for ex in self.pool() if ex.doc_id != doc.doc_id]
        return chosen[: self.n_examples]

    def format_example(self, ex: Example) -> str:
        if ex.id not in self._formatted:
            doc = self.truncate(ex.document.full_text if self.use_title else ex.document.text)
            self._formatted[ex.id] = f"{self.doc_label}: {doc}\n{self.query_label}: {normalize_space(ex.query)}"
        return self._formatted[ex.id]

    def fit(self, render: Callable[[list[Example]], str], examples: list[Example]) -> tuple[str, list[Example]]:
        """Render with ``examples``, dropping examples from the end until ``max_prompt_tokens`` is respected
        (so that documents share the longest possible prefix)."""
        text = render(examples)
        if self.max_prompt_tokens is None:
            return text, examples
        while self.count_tokens(text) > self.max_prompt_tokens:
            if not examples:
                raise ValueError(
                    f"prompt '{self.name}' does not fit in max_prompt_tokens={self.max_prompt_tokens} even without "
                    f"examples ({self.count_tokens(text)} tokens); lower max_doc_tokens"
                )
            examples = examples[:-1]
            text = render(examples)
        return text, examples

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(doc_label=self.doc_label, query_label=self.query_label)
        if self.dataset is not None:
            out["dataset"] = getattr(self.dataset, "name", None)
        return out


# --------------------------------------------------------------------------------------------------------
# The prompts


class _StaticPrompt(Prompt):
    """A packaged template with fixed examples; only ``{document}`` varies."""

    filename = ""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._template = packaged_template(self.filename)

    def build(self, doc: Document) -> BuiltPrompt:
        return BuiltPrompt(self._template.render(document=self.doc_text(doc), title=normalize_space(doc.title)))

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["n_examples"] = 3
        return out


@PROMPTS.register("inpars")
class InParsPrompt(_StaticPrompt):
    """InPars v1 "vanilla" prompt (Bonifacio et al. 2022, arXiv 2202.05144): three fixed MS MARCO
    (document, relevant query) examples, then the document, ending with ``Relevant Query:``.

    Text of the original toolkit (``zetaalphavector/InPars``, ``inpars/prompts/templates.yaml``), kept
    byte for byte. ``n_examples``, ``dataset`` and ``seed`` are ignored (the examples are fixed).

    >>> text = InParsPrompt().build(Document("d", "Some text.")).text
    >>> text.startswith("Example 1:\\nDocument: We don't know a lot about the effects of caffeine")
    True
    >>> text.count("Relevant Query:"), text.endswith("Example 4:\\nDocument: Some text.\\nRelevant Query:")
    (4, True)
    """

    name = "inpars"
    default_n_examples = 3
    filename = "inpars.txt"


@PROMPTS.register("inpars-forms")
class InParsFormsPrompt(_StaticPrompt):
    """The ``inpars`` prompt's three MS MARCO documents, each with a relevant query in three forms, in turn a
    ``Question`` (the original example), ``Keywords`` and a ``Claim`` (a statement the document bears on);
    query ``i`` of a document continues after the label of form ``i mod 3``. The forms are those of BEIR's
    queries (questions: NQ, FiQA, HotpotQA; keywords: TREC-COVID titles, DBPedia-Entity; claims: FEVER,
    Climate-FEVER, SciFact), so that without any example query of a collection the synthetic queries cover
    the forms its users may write; with ``queries_per_doc: 3`` each document gets one of each. The prompt
    differs only in its last line, so the backend's prefix cache is shared by a document's queries.

    The keyword and claim examples were written for inpars (the documents and questions are the original
    toolkit's, ``inpars/prompts_data/NOTICE``).

    >>> p = InParsFormsPrompt()
    >>> [p.build_for(Document("d", "Some text."), i).text.splitlines()[-1] for i in (0, 1, 2, 3)]
    ['Question:', 'Keywords:', 'Claim:', 'Question:']
    >>> p.build(Document("d", "Some text.")).text == p.build_for(Document("d", "Some text."), 0).text
    True
    """

    name = "inpars-forms"
    default_n_examples = 3
    filename = "inpars_forms.txt"
    forms = ("Question", "Keywords", "Claim")
    varies_with_index = True

    def build(self, doc: Document) -> BuiltPrompt:
        return self.build_for(doc, 0)

    def build_for(self, doc: Document, index: int) -> BuiltPrompt:
        body = self._template.render(document=self.doc_text(doc), title=normalize_space(doc.title)).rstrip()
        return BuiltPrompt(f"{body}\n{self.forms[index % len(self.forms)]}:")


@PROMPTS.register("inpars-gbq")
class InParsGBQPrompt(_StaticPrompt):
    """InPars "guided by bad questions" prompt (Bonifacio et al. 2022, arXiv 2202.05144, Sec. 3): each of the
    three MS MARCO examples shows a ``Good Question`` (relevant, specific) and a ``Bad Question`` (answered
    by the document but too generic); the model continues after ``Good Question:``.

    Text of the original toolkit (``inpars/prompts/templates.yaml``, ``inpars-gbq``).

    >>> InParsGBQPrompt().build(Document("d", "Some text.")).text.endswith("Document: Some text.\\nGood Question:")
    True
    """

    name = "inpars-gbq"
    default_n_examples = 3
    filename = "inpars_gbq.txt"


@PROMPTS.register("promptagator")
class PromptagatorPrompt(_FewShotPrompt):
    """Promptagator few-shot prompt (Dai et al. 2022, "Promptagator: Few-shot Dense Retrieval From 8
    Examples", arXiv 2209.11755): ``k`` (default 8) labelled pairs of the *target* dataset, each as
    ``Article: <document>\\nQuery: <query>``, separated by blank lines, then ``Article: <doc>\\nQuery:``.

    - The examples are drawn once with ``seed`` from ``dataset``'s ``train_split`` judgements (one pair per
      query); every document gets the same examples in the same order (so the backend's prefix cache is
      reused), except that an example whose document is the target document is skipped.
    - Example documents are truncated like the target (``max_doc_tokens``); with ``max_prompt_tokens``,
      examples are dropped from the end until the prompt fits.
    - ``fewshot_examples`` holds ``"<query_id>:<doc_id>"`` of the examples shown.
    - A dataset without the split raises :class:`~inpars.errors.InputError` naming dataset and split.

    The paper uses dataset-specific labels (e.g. ``Argument``/``Counter argument`` for ArguAna); this
    implementation uses its generic ``Article``/``Query`` pair.
    """

    name = "promptagator"
    default_n_examples = 8

    def build(self, doc: Document) -> BuiltPrompt:
        target = f"{self.doc_label}: {self.doc_text(doc)}\n{self.query_label}:"

        def render(examples: list[Example]) -> str:
            return "".join(self.format_example(ex) + self.separator for ex in examples) + target

        text, shown = self.fit(render, self.examples_for(doc))
        return BuiltPrompt(text, [ex.id for ex in shown])


class DatasetPromptagatorPrompt(_FewShotPrompt):
    """The original toolkit's Promptagator prompt for one BEIR dataset (``promptagator-<dataset>``), e.g.
    for SciFact ``{document}\\nFinding: {query}\\n`` per example, as its ``DynamicPrompt`` renders them: the
    examples one after the other, then the target document with an empty query, trailing whitespace
    stripped. Examples come as for ``promptagator`` (seeded, from ``dataset``'s ``train_split``, or from
    ``examples_file`` in the original's few-shot format), truncated to ``max_doc_tokens`` and dropped from
    the end to fit ``max_prompt_tokens``; the target document is never one of them.

    >>> p = get_prompt("promptagator-scifact", n_examples=0)
    >>> p.build(Document("d", "Aspirin lowers the risk.")).text
    'Aspirin lowers the risk.\\nFinding:'
    """

    template_text = ""

    def format_example(self, ex: Example) -> str:
        if ex.id not in self._formatted:
            doc = self.truncate(ex.document.full_text if self.use_title else ex.document.text)
            self._formatted[ex.id] = self.template_text.format(document=doc, query=normalize_space(ex.query))
        return self._formatted[ex.id]

    def build(self, doc: Document) -> BuiltPrompt:
        target = self.template_text.format(document=self.doc_text(doc), query="").rstrip()

        def render(examples: list[Example]) -> str:
            return "".join(self.format_example(ex) for ex in examples) + target

        text, shown = self.fit(render, self.examples_for(doc))
        return BuiltPrompt(text, [ex.id for ex in shown])

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["template_text"] = self.template_text
        for key in ("doc_label", "query_label"):
            out.pop(key, None)
        return out


for _name, _text in promptagator_templates().items():
    PROMPTS.register(_name)(
        type(f"Promptagator_{_name.split('-', 1)[1].replace('-', '_')}", (DatasetPromptagatorPrompt,),
             {"name": _name, "default_n_examples": 8, "template_text": _text})
    )


@PROMPTS.register("template")
class TemplatePrompt(_FewShotPrompt):
    """A user template file (option ``template``): UTF-8 text with the named placeholders ``{document}``
    (required: the truncated document text), ``{title}`` (the document title) and ``{examples}``
    (``n_examples``, default 3, train-split pairs of ``dataset`` formatted as ``Document: ...\\nQuery: ...``
    and separated by blank lines). Literal braces are written ``{{`` and ``}}``. The file is validated on
    load (:meth:`Template.parse`): an unknown placeholder or a missing ``{document}`` is an
    :class:`~inpars.errors.InputError` naming the file. Trailing whitespace of the rendered prompt is
    stripped, as in the original toolkit. Templates of the original toolkit ending in ``{query}`` work.

    When the template has ``{title}``, ``{document}`` is the text without the title.
    """

    name = "template"
    default_n_examples = 3
    doc_label = "Document"
    file: str | None = None  # set on the classes that PROMPTS.get makes for a template file path

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.file is not None:
            if self.template is not None and str(self.template) != self.file:
                raise ValueError(f"prompt file {self.file} and template {self.template} both given; give one")
            self.template = self.file
        if self.template is None:
            raise ValueError("prompt 'template' needs the option template=<path of a template file>")
        self._tmpl = Template.load(self.template)
        if "examples" in self._tmpl.fields and self.n_examples > 0 and self.dataset is None and not self.examples_file:
            raise InputError(
                "the template uses '{examples}', which needs a dataset with a train split (or n_examples=0)",
                path=self._tmpl.source,
            )

    def build(self, doc: Document) -> BuiltPrompt:
        has_title = "title" in self._tmpl.fields
        document = self.truncate(doc.text if has_title or not self.use_title else doc.full_text)
        title = normalize_space(doc.title)
        if "examples" not in self._tmpl.fields:
            return BuiltPrompt(self._tmpl.render(document=document, title=title))

        def render(examples: list[Example]) -> str:
            return self._tmpl.render(
                document=document, title=title, examples=self.separator.join(self.format_example(ex) for ex in examples)
            )

        text, shown = self.fit(render, self.examples_for(doc))
        return BuiltPrompt(text, [ex.id for ex in shown])

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["template"] = str(self.template)
        out["template_text"] = self._tmpl.text
        return out


__all__ = [
    "ALLOWED_FIELDS", "PROMPTS", "BuiltPrompt", "DatasetPromptagatorPrompt", "Example", "InParsFormsPrompt",
    "InParsGBQPrompt", "InParsPrompt", "Prompt", "PromptagatorPrompt", "Template", "TemplatePrompt", "count_words",
    "file_examples", "get_prompt", "normalize_space", "packaged_template", "train_examples", "truncate_words",
]
