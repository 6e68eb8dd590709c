"""``python -m inpars.rerank`` (the original toolkit's command): runs ``inpars rerank`` (:mod:`inpars.compat`)."""

from inpars.compat import module_main

module_main("rerank")
