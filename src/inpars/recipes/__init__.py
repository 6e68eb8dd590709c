"""Recipes: complete run configurations shipped with the package, for ``inpars run --dataset PATH``.

A recipe is a YAML file in this folder without ``dataset`` and ``run_dir``; :func:`recipe_config` adds them::

    >>> "recommended" in recipe_names()
    True
    >>> cfg = recipe_config("recommended", "my-docs")
    >>> cfg.dataset.name, cfg.run_dir, cfg.train.model_type
    ('my-docs', 'runs/my-docs', 'bi-encoder')
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from inpars.config import PipelineConfig, load_config_dict, set_dotted
from inpars.errors import ConfigError

#: the recipe ``inpars run --dataset PATH`` runs when no other is named
DEFAULT_RECIPE = "recommended"


def recipe_names() -> list[str]:
    """The names of the packaged recipes."""
    return sorted(p.name[: -len(".yaml")] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml"))


def recipe_text(name: str) -> str:
    """The YAML text of recipe ``name``."""
    if name not in recipe_names():
        raise ConfigError(f"unknown recipe '{name}'; available: {', '.join(recipe_names())}")
    return resources.files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")


def recipe_config(
    name: str, dataset: str, run_dir: str | None = None, overrides: dict[str, Any] | None = None
) -> PipelineConfig:
    """Recipe ``name`` on collection ``dataset`` (a folder, a name under ``$INPARS_DATA_HOME`` or ``irds:ID``),
    written to ``run_dir`` (default ``runs/<the collection's folder name>``); ``overrides`` as
    :func:`inpars.config.load_config`'s."""
    data = yaml.safe_load(recipe_text(name))
    data["dataset"] = {"name": dataset}
    data["run_dir"] = run_dir or f"runs/{Path(dataset.rstrip('/')).name or 'inpars'}"
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return load_config_dict(data, source=f"recipe '{name}'")
