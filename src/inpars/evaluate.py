"""``python -m inpars.evaluate`` (the original toolkit's command): runs ``inpars evaluate`` (:mod:`inpars.compat`)."""

if __name__ == "__main__":
    from inpars.compat import module_main

    module_main("evaluate")
