"""Text utilities shared by the filters and the negatives: word tokens, query normalisation, copy check.

The unit everywhere is the lowercase word token (``\\w+``); ``min_words``/``max_words`` count
whitespace-separated words (:func:`n_words`). Two queries are duplicates when their :func:`normalize_query`
forms are equal; two documents are duplicates when their :func:`text_key` are equal.
"""

from __future__ import annotations

import hashlib
import math
import re

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


def text_key(text: str) -> int:
    """A 64-bit hash of a text with its whitespace normalised (BLAKE2b, the same in every process): documents
    with equal keys are duplicates. Two different texts share a key about once in 500,000 collections of
    8.8M documents; they are then treated as duplicates (left out of each other's negatives).

    >>> text_key("a  b\\n") == text_key("a b"), text_key("a b") == text_key("A b")
    (True, False)
    """
    digest = hashlib.blake2b(" ".join(text.split()).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)
