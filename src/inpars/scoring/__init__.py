"""What a reranker is, below every implementation of one: the scorer protocol and the family protocol.

- :mod:`~inpars.scoring.base`: the :class:`~inpars.scoring.base.Scorer` interface (and the set-up shared by
  the scorers that run in this process);
- :mod:`~inpars.scoring.family`: the :class:`~inpars.scoring.family.Family` interface and the registry of
  families (:data:`~inpars.scoring.family.FAMILIES`);
- :mod:`~inpars.scoring.engines`: the scoring engines (:data:`inpars.catalog.ENGINES`) and bf16 probing;
- :mod:`~inpars.scoring.onnx`, :mod:`~inpars.scoring.classifier`, :mod:`~inpars.scoring.surgery`: ONNX
  export and sessions, classification heads, BERT last-layer surgery (what the families' scorers run on).

:mod:`inpars.families` implements these; :mod:`inpars.rerank` loads and runs scorers (and re-exports this
package's modules under their former names, :mod:`inpars.rerank.base` and so on). Nothing here imports
either of them.
"""
