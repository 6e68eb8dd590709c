"""Flags of a generated query: problems found at generation time (the filtering stage decides what to drop).

- ``empty``: no text after stripping whitespace;
- ``repeats_prompt``: the query equals a line of the prompt (e.g. a few-shot example's query) that is not
  part of the document;
- ``copies_document``: the query is a verbatim (case-insensitive) piece of the document, the original
  toolkit's ``--skip_questions_copied_from_context`` rule;
- ``truncated``: the generation hit ``max_new_tokens`` before the stop string (over-long output).
"""

from __future__ import annotations

FLAG_EMPTY = "empty"
FLAG_REPEATS_PROMPT = "repeats_prompt"
FLAG_COPIES_DOCUMENT = "copies_document"
FLAG_TRUNCATED = "truncated"
FLAGS = (FLAG_EMPTY, FLAG_REPEATS_PROMPT, FLAG_COPIES_DOCUMENT, FLAG_TRUNCATED)


def _norm(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .?!:;\"'`")


def _prompt_segments(prompt_text: str) -> set[str]:
    """Normalised lines of a prompt, and what follows a ``Label:`` on each line."""
    out: set[str] = set()
    for line in prompt_text.splitlines():
        out.add(_norm(line))
        if ":" in line:
            out.add(_norm(line.split(":", 1)[1]))
            out.add(_norm(line.rsplit(":", 1)[1]))
    out.discard("")
    return out


def flag_generation(query: str, prompt_text: str, doc_text: str, finish_reason: str = "stop") -> list[str]:
    """The flags (see the module docstring) of one generated query.

    >>> flag_generation("", "Query:", "doc")
    ['empty']
    >>> flag_generation("what is aspirin", "Document: x\\nQuery: what is aspirin\\n\\nDocument: y\\nQuery:", "y")
    ['repeats_prompt']
    >>> flag_generation("Aspirin lowers risk", "Document: Aspirin lowers risk.\\nQuery:", "Aspirin lowers risk.")
    ['copies_document']
    >>> flag_generation("does aspirin lower the risk of", "...", "...", finish_reason="length")
    ['truncated']
    """
    flags: list[str] = []
    q = _norm(query)
    if not q:
        flags.append(FLAG_EMPTY)
    else:
        in_doc = q in _norm(doc_text)
        if not in_doc and q in _prompt_segments(prompt_text):
            flags.append(FLAG_REPEATS_PROMPT)
        if in_doc:
            flags.append(FLAG_COPIES_DOCUMENT)
    if finish_reason == "length":
        flags.append(FLAG_TRUNCATED)
    return flags
