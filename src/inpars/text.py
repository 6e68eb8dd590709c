"""Text utilities shared by the filters and the negatives: word tokens, query normalisation, copy check.

The unit everywhere is the lowercase word token (``\\w+``); ``min_words``/``max_words`` count
whitespace-separated words (:func:`n_words`). Two queries are duplicates when their :func:`normalize_query`
forms are equal; two documents are duplicates when their :func:`text_key` are equal.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable

from inpars.records import Document

_TOKEN = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Lowercase word tokens (``\\w+``) of a text.

    >>> tokens("Does Vitamin-D reduce COVID-19?")
    ['does', 'vitamin', 'd', 'reduce', 'covid', '19']
    """
    return _TOKEN.findall(text.lower())


def normalize_query(text: str) -> str:
    """The form under which two queries are duplicates: lowercase word tokens joined by spaces.

    >>> normalize_query("What is  p53?") == normalize_query("what is p53")
    True
    """
    return " ".join(tokens(text))


def n_words(text: str) -> int:
    """Whitespace-separated words, the unit of ``min_words``/``max_words``.

    >>> n_words("  vitamin D and  colds ")
    4
    """
    return len(text.split())


def copies_document(query: str, document: str, threshold: float | None = 0.9) -> bool:
    """Whether ``query`` copies ``document``.

    With the query and the document lowercased and cut into word tokens (:func:`tokens`), the query copies
    the document when some run of consecutive query tokens covering at least ``threshold`` of the query's
    tokens occurs verbatim, consecutively, in the document. With 1.0 (or for queries of up to 9 tokens at
    0.9, where 90% rounds up to all of them) this is "the query is a substring of the document", the check
    of the original toolkit. ``threshold=None`` turns the check off (always False); an empty query never
    copies.

    >>> doc = "Vitamin D supplementation reduces respiratory infections in adults."
    >>> copies_document("vitamin D supplementation reduces respiratory infections", doc)
    True
    >>> copies_document("does vitamin d reduce infections", doc)
    False
    >>> long_q = "vitamin d supplementation reduces respiratory infections in adults and in children"
    >>> copies_document(long_q, doc, 0.9), copies_document(long_q, doc, 0.6)
    (False, True)
    """
    if threshold is None:
        return False
    q = tokens(query)
    if not q:
        return False
    need = min(len(q), max(1, math.ceil(threshold * len(q) - 1e-9)))
    haystack = " " + " ".join(tokens(document)) + " "
    return any(" " + " ".join(q[i : i + need]) + " " in haystack for i in range(len(q) - need + 1))


def text_key(text: str) -> str:
    """A hash of a text with its whitespace normalised: documents with equal keys are duplicates.

    >>> text_key("a  b\\n") == text_key("a b"), text_key("a b") == text_key("A b")
    (True, False)
    """
    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()


def same_text_groups(docs: Iterable[Document]) -> dict[str, frozenset[str]]:
    """For every document that has exact duplicates (same ``full_text`` up to whitespace), all their ids.

    Documents without duplicates and empty documents are left out.

    >>> docs = [Document("a", "x y"), Document("b", "x  y"), Document("c", "z")]
    >>> sorted(same_text_groups(docs)["a"])
    ['a', 'b']
    >>> "c" in same_text_groups(docs)
    False
    """
    by_key: dict[str, list[str]] = {}
    for d in docs:
        text = d.full_text
        if text.strip():
            by_key.setdefault(text_key(text), []).append(d.doc_id)
    out: dict[str, frozenset[str]] = {}
    for ids in by_key.values():
        if len(ids) > 1:
            group = frozenset(ids)
            for i in ids:
                out[i] = group
    return out
