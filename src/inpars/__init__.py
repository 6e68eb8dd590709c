"""inpars: turn any document collection into a trained neural reranker with no human labels.

An LLM writes queries for documents (InPars, Promptagator), the best (document, query) pairs are kept,
hard negatives are mined with BM25, a reranker is trained on them, and the result is measured on BEIR.

Heavy dependencies (torch, transformers, llama.cpp) are imported lazily, inside the functions that need them.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__"]
