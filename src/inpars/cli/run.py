"""``inpars run CONFIG.yaml``: the whole pipeline from one config."""

from __future__ import annotations

import argparse

from inpars.config import load_config
from inpars.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from inpars.layout import STAGES

    p = sub.add_parser("run", help="run the whole pipeline from a YAML config (resumes; skips finished stages)")
    p.add_argument("config", help="YAML config file")
    p.add_argument("--from", dest="from_stage", choices=STAGES, help="redo this stage and the ones after it")
    p.add_argument("--until", choices=STAGES, help="stop after this stage")
    p.add_argument("--force", action="store_true", help="redo every stage")
    p.add_argument("--run-dir", help="override run_dir")
    p.add_argument("--seed", type=int, help="override seed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config value by its dotted path, e.g. --set generate.n_docs=50 (YAML value)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from inpars.pipeline import run_pipeline

    overrides: dict[str, object] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got '{item}'")
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: the value is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if args.run_dir:
        overrides["run_dir"] = args.run_dir
    if args.seed is not None:
        overrides["seed"] = args.seed
    cfg = load_config(args.config, overrides)

    def progress(name: str, res: object) -> None:
        skipped = getattr(res, "skipped", False)
        seconds = getattr(res, "manifest", {}).get("seconds", 0.0)
        print(f"[{name}] {'up to date' if skipped else f'done in {seconds:.1f} s'}", flush=True)

    result = run_pipeline(cfg, from_stage=args.from_stage, force=args.force, until=args.until, progress=progress)
    if result.table:
        print()
        print(result.table)
    print(f"\nrun folder: {result.run_dir} ({result.seconds:.1f} s)")
    return 0
