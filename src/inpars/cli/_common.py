"""Helpers shared by the subcommands: the ``--config`` flag and flag-over-config merging."""

from __future__ import annotations

import argparse
from typing import Any

from inpars.config import PipelineConfig, load_config, load_config_dict, section_overrides


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", help="YAML config; flags given on the command line override its values"
    )


def resolve_config(
    args: argparse.Namespace, section: str, fields: dict[str, Any], dataset: str | None = None
) -> PipelineConfig:
    """Load ``--config`` (if any) and apply the flags in ``fields`` (None = not given) to ``section``.

    ``dataset`` overrides ``dataset.name``. Without ``--config`` a config is built from the flags alone.
    """
    overrides = section_overrides(section, fields)
    if dataset is not None:
        overrides["dataset.name"] = dataset
    if getattr(args, "config", None):
        return load_config(args.config, overrides)
    data: dict[str, Any] = {}
    from inpars.config import set_dotted

    for key, value in overrides.items():
        set_dotted(data, key, value)
    data.setdefault("dataset", {}).setdefault("name", "")
    return load_config_dict(data, source="command-line flags")
