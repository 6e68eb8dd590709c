"""Where work runs: the executors, by name (``generate.executor``, ``rerank.executor`` and the ``executor``
of the ``reranker`` and ``consistency`` filter steps).

>>> EXECUTORS.names()
['local', 'ray']
>>> EXECUTORS.get("spark")
Traceback (most recent call last):
...
inpars.registry.UnknownNameError: unknown executor 'spark'; available: local, ray

An executor (a subclass of :class:`Executor` registered in :data:`EXECUTORS`) says

- ``in_process``: whether its work runs in this process (a caller then uses its own objects directly:
  generation writes as it goes, a rerank uses the scorer it loaded);
- :meth:`~Executor.check_options`: its validated ``executor_options``;
- :meth:`~Executor.workers`: how many workers its options ask for;
- :meth:`~Executor.pool`: a :class:`Pool` of workers, each built as ``worker(*args, threads=SHARE,
  **kwargs)`` (``SHARE``: its share of the thread budget), with one distribution mechanism,
  :meth:`Pool.map`: a method of the workers applied to items, the results yielded in input order as they
  come. A pool is a context manager; :meth:`Pool.close` stops its workers.

``local``: one worker in this process, the items handled one after the other. ``ray``: actors on a Ray
cluster (:mod:`inpars.ray_cluster`: options, joining or starting a cluster, the actors' shares); an actor
is given its next item as soon as it is free, results are held until all those before them are yielded,
and a dead actor is restarted with its item retried (``max_restarts``; unset: no limit). Ray is imported
only when a Ray pool is opened.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import inpars.ray_cluster as ray_cluster
from inpars.errors import ConfigError
from inpars.registry import Registry

log = logging.getLogger(__name__)

#: how long opening a Ray pool waits for CPUs that closed pools' actors are still giving back
RELEASE_WAIT_SECONDS = 20.0
#: results a Ray pool may hold ahead of the next one to yield, per actor (bounds what waits in the driver)
AHEAD_PER_ACTOR = 4
#: open Ray pools on a cluster that one of them started: it is stopped when the last of them closes
_USERS = {"started": False, "open": 0}


class Pool:
    """Workers of one executor: ``size`` of them, each with ``threads`` threads (its share of ``budget``)."""

    size: int = 1
    threads: int | None = None
    budget: int | None = None

    def map(self, method: str, items: Iterable[Any]) -> Iterator[Any]:
        """``worker.method(item)`` for each item on some worker, the results in the order of ``items``,
        each yielded as soon as it and all before it are done. An exception raised for an item is raised
        when its turn comes (the results before it have been yielded)."""
        raise NotImplementedError

    def each(self, method: str) -> list[Any]:
        """``worker.method()`` on every worker (one result per worker; it waits until all have started)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the workers; the pool is unusable afterwards. Closing twice does nothing."""

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Executor:
    """Where work runs (see the module's description). Subclasses set ``name`` and ``in_process``."""

    name: ClassVar[str] = "executor"
    in_process: ClassVar[bool] = False

    @classmethod
    def check_options(cls, options: Mapping[str, Any] | None, key: str = "executor_options") -> dict[str, Any]:
        """The validated options (a :class:`~inpars.errors.ConfigError` naming ``key`` or ``key.OPTION``)."""
        raise NotImplementedError

    @classmethod
    def workers(cls, options: Mapping[str, Any]) -> int:
        """The workers that ``options`` (checked) ask for."""
        return 1

    @classmethod
    def pool(
        cls, worker: type, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, *, size: int = 1,
        threads: int | None = None, options: Mapping[str, Any] | None = None, key: str = "executor",
        error: type[Exception] = ConnectionError,
    ) -> Pool:
        """A pool of ``size`` workers ``worker(*args, threads=SHARE, **kwargs)``; ``threads``: the total
        budget; ``options``: checked ones; ``key``: the executor's setting, named in messages (an executor
        that cannot reach its workers raises ``error``)."""
        raise NotImplementedError


EXECUTORS: Registry[type[Executor]] = Registry("executor")


def _check_mapping(options: Any, key: str) -> None:
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(f"{key}: expected a mapping of options, got {options!r:.60}")


class LocalPool(Pool):
    """One worker in this process (whatever ``size`` was asked); it gets the whole thread budget."""

    def __init__(self, worker: type, args: Sequence[Any], kwargs: Mapping[str, Any], threads: int | None) -> None:
        self.threads = self.budget = threads
        self._worker: Any = worker(*args, threads=threads, **kwargs)

    def _live(self) -> Any:
        if self._worker is None:
            raise RuntimeError("the pool is closed")
        return self._worker

    def map(self, method: str, items: Iterable[Any]) -> Iterator[Any]:
        call = getattr(self._live(), method)
        return (call(item) for item in items)

    def each(self, method: str) -> list[Any]:
        return [getattr(self._live(), method)()]

    def close(self) -> None:
        worker, self._worker = getattr(self, "_worker", None), None
        closer = getattr(worker, "close", None)
        if callable(closer):
            closer()


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """This process. It takes no options: a mapping given is ignored (the options of another executor,
    left in a configuration whose executor is ``local``, do nothing here)."""

    name = "local"
    in_process = True

    @classmethod
    def check_options(cls, options: Mapping[str, Any] | None, key: str = "executor_options") -> dict[str, Any]:
        """No options: an empty mapping (any mapping given is ignored; anything else is refused).

        >>> LocalExecutor.check_options(None), LocalExecutor.check_options({"actors": 2})
        ({}, {})
        """
        _check_mapping(options, key)
        return {}

    @classmethod
    def pool(
        cls, worker: type, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, *, size: int = 1,
        threads: int | None = None, options: Mapping[str, Any] | None = None, key: str = "executor",
        error: type[Exception] = ConnectionError,
    ) -> Pool:
        return LocalPool(worker, args, dict(kwargs or {}), threads)


class RayPool(Pool):
    """``size`` actors on a Ray cluster (joined or started here, see :func:`inpars.ray_cluster.connect`;
    a cluster started here is stopped when the last pool on it closes)."""

    def __init__(self, worker: type, args: Sequence[Any], kwargs: Mapping[str, Any], *, size: int,
                 threads: int | None, options: Mapping[str, Any], key: str, error: type[Exception]) -> None:
        ray = ray_cluster.import_ray(f"{key} 'ray'")
        self._ray = ray
        self._actors: list[Any] = []
        if ray_cluster.connect(ray, dict(options), key, error):
            _USERS["started"] = True
        self._own_cluster = bool(_USERS["started"])
        _USERS["open"] += self._own_cluster
        try:
            self.size = max(1, size)
            self.budget = int(threads or ray_cluster.cluster_cpus(ray))
            self.threads, cpus, gpus = ray_cluster.actor_share(ray, dict(options), threads, self.size)
            _wait_for_cpus(ray, self.size, cpus, options, key)
            remote = ray.remote(worker).options(
                num_cpus=cpus, num_gpus=gpus,
                **(ray_cluster.restart_args(dict(options)) or {"max_restarts": -1, "max_task_retries": -1}),
            )
            self._actors = [remote.remote(*args, threads=self.threads, **kwargs) for _ in range(self.size)]
        except BaseException:
            self.close()
            raise
        log.info("ray: %d actors of %s (%d threads, %g CPUs, %g GPUs each)", self.size, worker.__name__,
                 self.threads, cpus, gpus)

    def _live(self) -> list[Any]:
        if not self._actors:
            raise RuntimeError("the pool is closed")
        return self._actors

    def map(self, method: str, items: Iterable[Any]) -> Iterator[Any]:
        return _ordered_map(self._ray, list(self._live()), method, items)

    def each(self, method: str) -> list[Any]:
        return list(self._ray.get([getattr(a, method).remote() for a in self._live()]))

    def close(self) -> None:
        actors, self._actors = getattr(self, "_actors", []), []
        ray = getattr(self, "_ray", None)
        if ray is None:
            return
        for actor in actors:
            with contextlib.suppress(Exception):  # already dead: nothing to stop
                ray.kill(actor, no_restart=True)
        if getattr(self, "_own_cluster", False):
            self._own_cluster = False
            _USERS["open"] -= 1
            if _USERS["open"] <= 0 and _USERS["started"]:
                _USERS.update(started=False, open=0)
                ray.shutdown()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit: nothing to report to
            self.close()


def _wait_for_cpus(ray: Any, n: int, cpus: float, options: Mapping[str, Any], key: str) -> None:
    """Wait (up to :data:`RELEASE_WAIT_SECONDS`) for the CPUs of ``n`` actors; on a local cluster, which
    never grows, too few is a :class:`~inpars.errors.ConfigError` rather than a wait without end."""
    need = n * cpus
    free = float(ray.available_resources().get("CPU", 0))
    # actors just killed (a pool closed a moment ago) give their CPUs back asynchronously
    deadline = time.monotonic() + RELEASE_WAIT_SECONDS
    while need > free and time.monotonic() < deadline:
        time.sleep(0.2)
        free = float(ray.available_resources().get("CPU", 0))
    if need > free and not options.get("address"):
        raise ConfigError(
            f"{key}_options: {n} actors need {need:g} CPUs of the Ray cluster, {free:g} are free "
            f"(another scorer holds them?); set {key}_options.cpus_per_actor or actors"
        )


def _ordered_map(ray: Any, actors: list[Any], method: str, items: Iterable[Any]) -> Iterator[Any]:
    """:meth:`Pool.map` on Ray actors: a free actor takes the next item at once; a result waits until
    those before it are yielded (at most ``AHEAD_PER_ACTOR`` per actor are held ahead)."""
    todo = iter(enumerate(items))
    idle = list(actors)
    running: dict[Any, tuple[int, Any]] = {}
    done: dict[int, Any] = {}
    ahead = AHEAD_PER_ACTOR * len(actors)
    next_pos = submitted = 0
    while True:
        while idle and submitted < next_pos + ahead:
            step = next(todo, None)
            if step is None:
                break
            actor = idle.pop()
            running[getattr(actor, method).remote(step[1])] = (step[0], actor)
            submitted += 1
        if next_pos in done:
            yield ray.get(done.pop(next_pos))  # an item that failed raises here, in its turn
            next_pos += 1
            continue
        if not running:
            return
        ready, _ = ray.wait(list(running), num_returns=1)
        for ref in ready:
            pos, actor = running.pop(ref)
            done[pos] = ref
            idle.append(actor)


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Actors on a Ray cluster; options: those of :mod:`inpars.ray_cluster`."""

    name = "ray"
    in_process = False

    @classmethod
    def check_options(cls, options: Mapping[str, Any] | None, key: str = "executor_options") -> dict[str, Any]:
        """The options of :func:`inpars.ray_cluster.check_options`.

        >>> RayExecutor.check_options({"actors": 3})
        {'actors': 3}
        """
        _check_mapping(options, key)
        return ray_cluster.check_options(cls.name, None if options is None else dict(options), options_key=key)

    @classmethod
    def workers(cls, options: Mapping[str, Any]) -> int:
        return int(options.get("actors") or 2)

    @classmethod
    def pool(
        cls, worker: type, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, *, size: int = 1,
        threads: int | None = None, options: Mapping[str, Any] | None = None, key: str = "executor",
        error: type[Exception] = ConnectionError,
    ) -> Pool:
        return RayPool(worker, args, dict(kwargs or {}), size=size, threads=threads, options=dict(options or {}),
                       key=key, error=error)
