"""``python -m inpars.generate_triples`` (the original toolkit's command): runs ``inpars negatives``
(:mod:`inpars.compat`)."""

if __name__ == "__main__":
    from inpars.compat import module_main

    module_main("generate_triples")
