"""Worker side of tests/test_ray.py, imported in every Ray worker by the cluster's setup hook.

:func:`setup` registers, as backend ``fake``, the fake backend of :mod:`fakes` with one addition: when the
file named by ``$INPARS_TEST_RAY_ARM`` exists and holds ``exit WORD`` or ``raise WORD``, the first batch
whose document contains WORD removes the file (so it fires once) and kills its worker process or raises.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from fakes import FakeBackend
from inpars.generation.base import BACKENDS, Generation, SamplingParams

ARM_ENV = "INPARS_TEST_RAY_ARM"


class ArmedFakeBackend(FakeBackend):
    def generate(
        self, prompts: list[str], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[list[Generation]]:
        arm = os.environ.get(ARM_ENV)
        if arm and os.path.exists(arm):
            with open(arm, encoding="utf-8") as f:
                mode, word = f.read().split()
            if any(word in p.rsplit("Document:", 1)[-1].split() for p in prompts):
                try:
                    os.unlink(arm)
                except FileNotFoundError:  # the other actor fired first
                    return super().generate(prompts, params, seeds)
                if mode == "exit":
                    os._exit(1)
                raise RuntimeError(f"injected failure on a document with {word!r}")
        return super().generate(prompts, params, seeds)


def setup() -> None:
    if "fake" not in BACKENDS:
        BACKENDS.register("fake")(ArmedFakeBackend)
