"""The executors (:mod:`inpars.executors`): the registry, the options, the pools' one ordered ``map``, and
the callers that look an executor up by name. Fast: no Ray cluster (the Ray pool's ordered map runs on a
stand-in for ``ray``; the generation runner of an out-of-process executor runs on the local pool)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import generated_records
from fakes import register_fake_backend
from inpars import executors
from inpars.config import FilterStep
from inpars.errors import ConfigError
from inpars.executors import EXECUTORS, LocalExecutor, RayExecutor
from inpars.registry import UnknownNameError


def test_the_registry_names_the_executors_and_refuses_an_unknown_one() -> None:
    assert EXECUTORS.names() == ["local", "ray"]
    assert EXECUTORS.get("local").in_process and not EXECUTORS.get("ray").in_process
    assert [EXECUTORS.get(n).name for n in EXECUTORS.names()] == ["local", "ray"]
    with pytest.raises(UnknownNameError, match=r"^unknown executor 'spark'; available: local, ray$"):
        EXECUTORS.get("spark")


def test_options_of_each_executor() -> None:
    assert LocalExecutor.check_options(None) == LocalExecutor.check_options({}) == {}
    assert LocalExecutor.check_options({"actors": 2}) == {}  # another executor's options: ignored here
    with pytest.raises(ConfigError, match=r"^rerank\.executor_options: expected a mapping"):
        LocalExecutor.check_options(["actors"], "rerank.executor_options")  # type: ignore[arg-type]
    assert RayExecutor.check_options({"actors": 3}) == {"actors": 3}
    assert (RayExecutor.workers({}), RayExecutor.workers({"actors": 3}), LocalExecutor.workers({"actors": 3})) == (2, 3, 1)
    with pytest.raises(ConfigError, match=r"^executor_options\.actor: not an option of the ray engine"):
        RayExecutor.check_options({"actor": 2})
    with pytest.raises(ConfigError, match=r"^generate\.executor_options\.actors: expected a positive integer"):
        RayExecutor.check_options({"actors": 0}, "generate.executor_options")


class Doubler:
    """A worker that records what it was given."""

    def __init__(self, offset: int, *, threads: int | None = None, calls: list[Any]) -> None:
        self.offset, self.threads, self.calls = offset, threads, calls
        self.closed = False

    def double(self, x: int) -> int:
        self.calls.append(x)
        return 2 * x + self.offset

    def describe(self) -> dict[str, Any]:
        return {"threads": self.threads}

    def close(self) -> None:
        self.closed = True


def test_local_pool_maps_in_order_item_by_item_and_closes() -> None:
    calls: list[Any] = []
    with LocalExecutor.pool(Doubler, (1,), {"calls": calls}, size=4, threads=3) as pool:
        assert (pool.size, pool.threads, pool.budget) == (1, 3, 3)  # one worker in this process, all threads
        assert pool.each("describe") == [{"threads": 3}]
        results = pool.map("double", iter([5, 1, 4]))
        assert calls == []  # streamed: nothing is computed before it is asked for
        assert next(results) == 11 and calls == [5]
        assert list(results) == [3, 9] and calls == [5, 1, 4]
        worker = pool._worker  # type: ignore[attr-defined]
    assert worker.closed
    with pytest.raises(RuntimeError, match="closed"):
        pool.map("double", [1])
    pool.close()  # twice: nothing


class FakeRef:
    def __init__(self, pos: int, value: Any = None, error: Exception | None = None) -> None:
        self.pos, self.value, self.error = pos, value, error


class FakeRay:
    """Stands in for ``ray``: a call finishes at once, but ``wait`` reports the latest submitted first,
    so that results come back out of order."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.fail_on = fail_on
        self.submitted: list[tuple[int, int]] = []  # (actor, item)
        self.most_held = 0
        self.held: set[int] = set()

    def actor(self, k: int) -> Any:
        fake = self

        class Method:
            def remote(self, item: int) -> FakeRef:
                fake.submitted.append((k, item))
                fake.held.add(item)
                fake.most_held = max(fake.most_held, len(fake.held))
                if item == fake.fail_on:
                    return FakeRef(item, error=RuntimeError(f"failed on {item}"))
                return FakeRef(item, value=item * 10)

        class Actor:
            square = Method()

        return Actor()

    def wait(self, refs: list[FakeRef], num_returns: int = 1) -> tuple[list[FakeRef], list[FakeRef]]:
        latest = max(refs, key=lambda r: r.pos)
        return [latest], [r for r in refs if r is not latest]

    def get(self, ref: FakeRef) -> Any:
        self.held.discard(ref.pos)
        if ref.error is not None:
            raise ref.error
        return ref.value


def test_ray_pools_ordered_map_yields_in_input_order_and_keeps_actors_busy() -> None:
    fake = FakeRay()
    actors = [fake.actor(k) for k in range(3)]
    out = list(executors._ordered_map(fake, actors, "square", range(40)))
    assert out == [i * 10 for i in range(40)]
    assert sorted(item for _, item in fake.submitted) == list(range(40))
    assert {k for k, _ in fake.submitted} == {0, 1, 2}
    assert fake.most_held <= executors.AHEAD_PER_ACTOR * len(actors)  # what waits in the driver is bounded


def test_ray_pools_ordered_map_raises_a_failure_in_its_turn() -> None:
    fake = FakeRay(fail_on=7)
    results: Iterator[Any] = executors._ordered_map(fake, [fake.actor(0), fake.actor(1)], "square", range(20))
    got = []
    with pytest.raises(RuntimeError, match="failed on 7"):
        for value in results:
            got.append(value)
    assert got == [i * 10 for i in range(7)]  # every result before the failed item, in order


def test_load_scorer_looks_the_executor_up_in_the_registry() -> None:
    from inpars.rerank import load_scorer

    with pytest.raises(UnknownNameError, match=r"^unknown executor 'nope'; available: local, ray$"):
        load_scorer("minilm-l6", executor="nope")
    with pytest.raises(ConfigError, match=r"^executor_options\.actor: not an option"):
        load_scorer("minilm-l6", executor="ray", executor_options={"actor": 2})


def test_a_filter_step_passes_an_out_of_process_executor_only() -> None:
    from inpars.filter.base import executor_kwargs

    assert executor_kwargs(FilterStep(name="reranker")) == {}
    ray_step = FilterStep(name="reranker", executor="ray", executor_options={"actors": 3})
    assert executor_kwargs(ray_step) == {"executor": "ray", "executor_options": {"actors": 3}}


def test_generation_on_an_out_of_process_executor_writes_the_records_of_one_process(
    tiny_beir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner of :mod:`inpars.generation.ray_engine` (workers, batches, ordered map, one appender), its
    pool replaced by the local one."""
    from inpars.generate import generate_queries

    register_fake_backend()
    monkeypatch.setattr(RayExecutor, "pool", LocalExecutor.pool)
    kw: dict[str, Any] = dict(backend="fake", model="fake", n_docs=6, batch_size=2, progress=False)
    local, pooled = tmp_path / "local.jsonl", tmp_path / "pooled.jsonl"
    generate_queries(tiny_beir, local, **kw)
    generate_queries(tiny_beir, pooled, **{**kw, "n_docs": 3})
    s = generate_queries(tiny_beir, pooled, executor="ray", executor_options={"actors": 2}, **kw)
    assert s.n_generated == 3 and s.n_skipped_existing == 3
    assert generated_records(pooled) == generated_records(local)


def test_a_backends_model_check_comes_from_its_class(monkeypatch: pytest.MonkeyPatch) -> None:
    from fakes import FakeBackend
    from inpars.generation.base import BACKENDS, check_backend

    seen: list[tuple[str, str]] = []
    monkeypatch.setattr("inpars.safety.check_model", lambda model, key: seen.append((model, key)))
    with pytest.raises(ConfigError, match=r"^generate\.model: /no/such\.gguf does not exist \(give a \.gguf file"):
        check_backend("llamacpp", "/no/such.gguf", {})
    check_backend("transformers", "org/model", {}, what="pipeline.generate")
    assert seen == [("org/model", "pipeline.generate.model")]

    class GgufFake(FakeBackend):
        model_check = "gguf"

    monkeypatch.setitem(BACKENDS._items, "gguf-fake", GgufFake)
    monkeypatch.setitem(BACKENDS._items, "fake-unchecked", FakeBackend)
    check_backend("fake-unchecked", "/no/such.gguf", {})  # no model check declared: nothing refused
    with pytest.raises(ConfigError, match="does not exist"):
        check_backend("gguf-fake", "/no/such.gguf", {})
