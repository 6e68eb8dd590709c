"""Worker side of tests/test_ray.py, imported in every Ray worker by the cluster's setup hook.

:func:`setup` registers, as backend ``fake``, the fake backend of :mod:`fakes` with one addition: when the
file named by ``$INPARS_TEST_RAY_ARM`` exists and holds ``exit WORD`` or ``raise WORD``, the first batch
whose document contains WORD removes the file (so it fires once) and kills its worker process or raises.
The scoring actors of :mod:`inpars.rerank.ray_scoring` get the same arm, fired by the first shard with a
query that contains WORD (tests/test_ray_scoring.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from fakes import FakeBackend
from inpars.generation.base import BACKENDS, Generation, SamplingParams
from inpars.rerank.ray_scoring import ScoreActor

ARM_ENV = "INPARS_TEST_RAY_ARM"


def init_test_cluster(arm: Path) -> None:
    """Start the tests' local Ray cluster (2 CPUs): workers import tests/ and src/, run :func:`setup`, and
    see the arm file and the offline settings of this process."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    tests = Path(__file__).resolve().parent
    pythonpath = os.pathsep.join([str(tests), str(tests.parent / "src"), os.environ.get("PYTHONPATH", "")])
    env = {"PYTHONPATH": pythonpath, ARM_ENV: str(arm), "TOKENIZERS_PARALLELISM": "false"}
    env.update({k: os.environ[k] for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "INPARS_DATA_HOME") if k in os.environ})
    init = dict(num_cpus=2, include_dashboard=False, log_to_driver=False,
                runtime_env={"worker_process_setup_hook": "ray_helpers.setup", "env_vars": env})
    try:
        ray.init(**init)
    except Exception:  # Ray waits a fixed 30 s for its node to start: a loaded machine may need a second try
        ray.shutdown()
        ray.init(**init)


class ArmedFakeBackend(FakeBackend):
    def generate(
        self, prompts: list[str], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[list[Generation]]:
        mode = _claim(lambda word: any(word in p.rsplit("Document:", 1)[-1].split() for p in prompts))
        if mode == "exit":
            os._exit(1)
        if mode is not None:
            raise RuntimeError("injected failure on an armed document")
        return super().generate(prompts, params, seeds)


def _claim(hit: Callable[[str], bool]) -> str | None:
    """The armed mode when the arm file's word satisfies ``hit``, else None. The caller that removes the
    file fires; one that finds it gone (not armed, or another worker fired first) gets None: reading is not
    preceded by an existence check, which another worker's removal could make stale."""
    arm = os.environ.get(ARM_ENV)
    if not arm:
        return None
    try:
        with open(arm, encoding="utf-8") as f:
            mode, word = f.read().split()
        if not hit(word):
            return None
        os.unlink(arm)
    except FileNotFoundError:
        return None
    return mode


def _armed_score(self: ScoreActor, pairs: list[tuple[str, str]]) -> list[float]:
    mode = _claim(lambda word: any(word in q.split() for q, _ in pairs))
    if mode == "exit":
        os._exit(1)
    if mode == "raise":
        raise RuntimeError("injected failure while scoring")
    return _plain_score(self, pairs)


_plain_score = ScoreActor.score


def setup() -> None:
    if "fake" not in BACKENDS:
        BACKENDS.register("fake")(ArmedFakeBackend)
    ScoreActor.score = _armed_score  # type: ignore[method-assign]
