"""Model families (``model_type``): one module per kind of reranker, registered in :data:`FAMILIES`.

====================  ===============================================================================
``cross-encoder``     :mod:`inpars.families.cross_encoder`: BERT-like encoder + one-logit head
``monot5``            :mod:`inpars.families.monot5`: seq2seq model, score = P(``true``)
``bi-encoder``        :mod:`inpars.families.bi_encoder`: sentence-transformers embeddings, cosine
``query-likelihood``  :mod:`inpars.families.query_likelihood`: causal LM, mean log P(query | document)
====================  ===============================================================================

Adding a family is one module holding a :class:`~inpars.scoring.family.Family` subclass decorated with
:func:`~inpars.scoring.family.register`, imported below, and its name and module in
:data:`inpars.catalog.FAMILIES` (so that its name is known, and its module imported on first use, without
importing this package). Everything that depends on the model type (the type read from a checkpoint, the
scorer, the engines it accepts, training, the model card, the CLI's ``--model-type`` choices, the config's
validation) goes through this registry.

>>> FAMILIES.names()
['bi-encoder', 'cross-encoder', 'monot5', 'query-likelihood']
>>> get_family("monot5").losses
('bce',)
"""

from __future__ import annotations

from inpars.scoring.family import (
    DEFAULT_FAMILY,
    FAMILIES,
    Family,
    detect_model_type,
    family_help,
    get_family,
    register,
    resolve_training,
)

# Importing a family module registers it.
from inpars.families import bi_encoder, cross_encoder, monot5, query_likelihood  # noqa: F401  isort: skip

__all__ = ["DEFAULT_FAMILY", "FAMILIES", "Family", "detect_model_type", "family_help", "get_family", "register", "resolve_training"]
