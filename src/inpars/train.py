"""``python -m inpars.train`` (the original toolkit's command): runs ``inpars train`` (:mod:`inpars.compat`)."""

if __name__ == "__main__":
    from inpars.compat import module_main

    module_main("train")
