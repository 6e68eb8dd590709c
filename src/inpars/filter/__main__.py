"""``python -m inpars.filter`` (the original toolkit's command): runs ``inpars filter`` (:mod:`inpars.compat`)."""

from inpars.compat import module_main

module_main("filter")
