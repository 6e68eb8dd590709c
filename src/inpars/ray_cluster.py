"""What the Ray executor uses: its options, the check of those options, joining or starting a cluster, and
each actor's share of the threads.

Used by :class:`inpars.executors.RayExecutor` (the ``ray`` entry of :data:`inpars.executors.EXECUTORS`),
on which generation (``generate.executor: ray``, :mod:`inpars.generation.ray_engine`) and scoring
(``rerank.executor: ray`` and the ``executor`` of the ``reranker`` and ``consistency`` filter steps,
:mod:`inpars.rerank.ray_scoring`) run their actors. Ray is imported only when a cluster is used.

Options (all runtime only: they never change a result):

- ``address``: the cluster to join (``auto``, ``ray://host:10001``, ``host:6379``); unset: an already
  initialised Ray in this process, else a local cluster started for this run and stopped after it.
- ``actors`` (default 2): actors, each holding one backend or one scorer.
- ``num_cpus``: CPUs of the local cluster started here (default: the cores this process may use).
- ``cpus_per_actor`` (default: the thread budget / ``actors``, at least 1) and ``gpus_per_actor``
  (default 0): what each actor reserves on the cluster.
- ``max_restarts``: restarts of a dead actor (and retries of its work); unset: no limit.
- ``runtime_env``: passed to ``ray.init`` when a cluster is started or joined here (for example
  ``{"worker_process_setup_hook": "mypackage.register_backends"}``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from inpars.errors import ConfigError, require
from inpars.quiet import VERBOSE, verbosity
from inpars.safety import usable_cores

OPTIONS = frozenset(
    {"address", "actors", "num_cpus", "cpus_per_actor", "gpus_per_actor", "max_restarts", "runtime_env"}
)


def check_options(
    engine: str, options: dict[str, Any] | None, *, options_key: str = "generate.executor_options"
) -> dict[str, Any]:
    """Validated Ray options (unknown keys and bad values are a :class:`~inpars.errors.ConfigError` naming
    ``options_key.KEY``); ``engine``: the executor's name, for messages (which executor a name stands for is
    :data:`inpars.executors.EXECUTORS`'s to say).

    >>> check_options("ray", {"actors": 2})["actors"]
    2
    >>> check_options("ray", {"actor": 2}, options_key="rerank.executor_options")
    Traceback (most recent call last):
    ...
    inpars.errors.ConfigError: rerank.executor_options.actor: not an option of the ray engine; options: actors, address, cpus_per_actor, gpus_per_actor, max_restarts, num_cpus, runtime_env
    """
    if options is not None and not isinstance(options, dict):
        raise ConfigError(f"{options_key}: expected a mapping of options, got {options!r:.60}")
    options = dict(options or {})
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ConfigError(
            f"{options_key}.{unknown[0]}: not an option of the {engine} engine; options: " + ", ".join(sorted(OPTIONS))
        )
    for key in ("actors", "num_cpus", "max_restarts"):
        value = options.get(key)
        low = 0 if key == "max_restarts" else 1
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigError(f"{options_key}.{key}: expected a positive integer, got {value!r}")
    for key in ("cpus_per_actor", "gpus_per_actor"):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ConfigError(f"{options_key}.{key}: expected a number >= 0, got {value!r}")
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"{options_key}.{key}: expected a finite number, got {value!r}")
    env = options.get("runtime_env")
    if env is not None and not isinstance(env, dict):
        raise ConfigError(f"{options_key}.runtime_env: expected a mapping (Ray's runtime_env: env_vars, pip, "
                          f"working_dir, ...), got {env!r:.60}")
    address = options.get("address")
    if address is not None and not isinstance(address, str):
        raise ConfigError(f"{options_key}.address: expected a string (auto, ray://HOST:PORT, HOST:PORT), got "
                          f"{address!r:.60}")
    return options


def import_ray(purpose: str) -> Any:
    """``ray``, or a :class:`~inpars.errors.MissingExtraError` naming the ``[ray]`` extra."""
    return require("ray", "ray", purpose)


def cluster_cpus(ray: Any) -> int:
    """CPUs of the cluster this process is connected to (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def connect(ray: Any, options: dict[str, Any], what: str, error: type[Exception] = ConnectionError) -> bool:
    """Join the cluster at ``options['address']``, else start a local one, unless Ray is already
    initialised in this process; returns whether a cluster was started or joined here (the caller then
    calls ``ray.shutdown()`` when done). A failure raises ``error`` with one line naming ``what``."""
    if ray.is_initialized():
        return False
    init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if verbosity() < VERBOSE:  # Ray's start-up lines ("Started a local Ray instance") are INFO
        init["logging_level"] = logging.WARNING
    if options.get("runtime_env"):
        init["runtime_env"] = options["runtime_env"]
    if options.get("address"):
        init["address"] = options["address"]
    else:
        init["num_cpus"] = options.get("num_cpus") or usable_cores()
    try:
        ray.init(**init)
    except Exception as exc:  # Ray raises bare Exceptions (e.g. a node that timed out during start-up)
        where = f"join the Ray cluster at {options['address']}" if options.get("address") else "start a local Ray cluster"
        raise error(f"{what} ray: could not {where}: {exc}") from exc
    return True


def actor_share(ray: Any, options: dict[str, Any], threads: int | None, actors: int) -> tuple[int, float, float]:
    """Each of ``actors`` actors' share: (threads, CPUs it reserves, GPUs it reserves). ``threads`` is the
    total budget (default: the cluster's CPUs), split evenly (at least 1 each); the CPUs reserved are
    that share unless ``cpus_per_actor`` says otherwise; GPUs: ``gpus_per_actor`` (default 0)."""
    per_actor = max(1, int(threads or cluster_cpus(ray)) // actors)
    cpus = options.get("cpus_per_actor")
    return per_actor, float(per_actor if cpus is None else cpus), float(options.get("gpus_per_actor") or 0)


def restart_args(options: dict[str, Any]) -> dict[str, Any]:
    """Ray remote arguments for ``max_restarts`` (restarts of a dead actor and retries of its calls)."""
    if options.get("max_restarts") is None:
        return {}
    return {"max_restarts": options["max_restarts"], "max_task_retries": options["max_restarts"]}
